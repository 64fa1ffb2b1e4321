"""Recipes: the shipped ones load; a bad one is one line naming the file, the line and the field."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synthkd.errors import SynthkdError
from synthkd.generators import (
    AnnotateTaskConfig,
    CommonsenseTaskConfig,
    DocumentKGTaskConfig,
    LabelledTaskConfig,
    make_task,
)
from synthkd.recipe import (
    AnnotateTaskSection,
    CommonsenseTaskSection,
    DocumentKGTaskSection,
    LabelledTaskSection,
    load_recipe,
)

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"

GOOD = f"""\
name: tiny
task:
  kind: labelled
  seeds: {NEWS / "seeds.jsonl"}
  labels:
    sport: matches and players
    tech:
      description: gadgets
      subtopics: [phones]
teacher:
  spec: llamacpp:gemma-3-270m
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SynthkdError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["news_topics", "commonsense", "document_kg"])
def test_shipped_recipes_load_and_build_their_task(name):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert recipe.name == name
    task = make_task(recipe.task.model_dump(), recipe.templates)
    assert task.groups
    # paths were resolved relative to the recipe file
    assert Path(
        recipe.task.model_dump().get("seeds") or recipe.task.model_dump().get("seed_events") or ROOT
    ).exists()


def test_news_recipe_has_five_labels_with_subtopics():
    recipe = load_recipe(ROOT / "recipes" / "news_topics.yaml")
    assert set(recipe.task.labels) == {"business", "entertainment", "politics", "sport", "tech"}
    assert all(len(spec.subtopics) >= 8 for spec in recipe.task.labels.values())


def test_relative_paths_are_taken_from_the_recipe_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "seeds.jsonl").write_text((NEWS / "seeds.jsonl").read_text())
    path = write(tmp_path, GOOD.replace(str(NEWS / "seeds.jsonl"), "data/seeds.jsonl"))
    recipe = load_recipe(path)
    assert recipe.task.seeds == str((tmp_path / "data" / "seeds.jsonl").resolve())
    assert recipe.task.labels["sport"].description == "matches and players"
    assert recipe.teacher_sections()[0].spec == "llamacpp:gemma-3-270m"


def test_unknown_field_names_file_line_and_field(tmp_path):
    path = write(tmp_path, GOOD.replace("  kind: labelled\n", "  kind: labelled\n  per_lable: 3\n"))
    assert error_of(path) == f"{path}:4: task.per_lable: unknown field"


def test_wrong_type_names_its_line(tmp_path):
    text = GOOD + "loop:\n  rounds: many\n"
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:13: loop.rounds: ")
    assert "integer" in message


def test_missing_required_field_points_at_its_section(tmp_path):
    text = GOOD.replace(f"  seeds: {NEWS / 'seeds.jsonl'}\n", "")
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:3: task.seeds: required field is missing"


def test_unknown_task_kind(tmp_path):
    path = write(tmp_path, GOOD.replace("kind: labelled", "kind: poetry"))
    message = error_of(path)
    assert message.startswith(f"{path}:3: task.kind: unknown task kind")


def test_missing_file_names_field_and_path(tmp_path):
    path = write(tmp_path, GOOD.replace(str(NEWS / "seeds.jsonl"), "nowhere/seeds.jsonl"))
    message = error_of(path)
    assert (
        message == f"{path}:4: task.seeds: file not found: {tmp_path / 'nowhere' / 'seeds.jsonl'}"
    )


def test_invalid_yaml_names_its_line(tmp_path):
    path = write(tmp_path, "name: x\ntask: [unclosed\nteacher: {}\n")
    assert error_of(path).startswith(f"{path}:3: not valid YAML")


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, GOOD + "name: again\n")
    assert error_of(path) == f"{path}:12: key 'name' appears twice"


def test_teacher_and_teachers_together_is_an_error(tmp_path):
    path = write(tmp_path, GOOD + "teachers:\n  - spec: openai:gpt-4o-mini\n")
    assert "give either teacher or teachers" in error_of(path)


def test_bad_teacher_spec_in_a_mix_names_the_item(tmp_path):
    text = GOOD.replace("teacher:\n  spec: llamacpp:gemma-3-270m\n", "")
    text += "teachers:\n  - spec: llamacpp:gemma-3-270m\n    weight: 2\n  - spec: nocolon\n"
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:13: teachers[1].spec: ")


def test_a_teacher_mix_keeps_weights(tmp_path):
    text = GOOD.replace("teacher:\n  spec: llamacpp:gemma-3-270m\n", "")
    text += (
        "teachers:\n  - spec: llamacpp:gemma-3-270m\n    weight: 3\n  - spec: openai:gpt-4o-mini\n"
    )
    recipe = load_recipe(write(tmp_path, text))
    assert [(t.spec, t.weight) for t in recipe.teacher_sections()] == [
        ("llamacpp:gemma-3-270m", 3.0),
        ("openai:gpt-4o-mini", 1.0),
    ]


@pytest.mark.parametrize(
    ("section", "config"),
    [
        (LabelledTaskSection, LabelledTaskConfig),
        (CommonsenseTaskSection, CommonsenseTaskConfig),
        (DocumentKGTaskSection, DocumentKGTaskConfig),
        (AnnotateTaskSection, AnnotateTaskConfig),
    ],
)
def test_task_sections_are_the_task_configs_with_a_help_line_per_field(section, config):
    assert section is config  # one declaration: the recipe's section is the room's config
    for item in dataclasses.fields(config):
        assert item.name == "kind" or item.metadata.get("help"), item.name


def test_cli_prints_one_line_and_exits_2_on_a_bad_recipe(tmp_path):
    path = write(tmp_path, GOOD.replace("  kind: labelled\n", "  kind: labelled\n  per_lable: 3\n"))
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}:4: task.per_lable: unknown field"
    assert not out.exists()  # nothing half-written
