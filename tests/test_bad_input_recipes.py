"""Bad recipes, generated: every mutation of a valid recipe is refused with one line.

Hypothesis mutates a recipe that loads (wrong types, unknown keys, missing files,
negative budgets, huge numbers, missing required fields, garbled YAML text); the user
must get one SynthkdError line that names the field or the file, never a traceback.
`load_recipe` is checked in-process with many examples; the CLI (`python -m synthkd
generate`, a few seconds per start) with one example of each kind: exit code 2, one
line on stderr, nothing written, and no teacher called.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthkd.errors import SynthkdError
from synthkd.recipe import (
    CriticSection,
    LabelledTaskSection,
    LoopSection,
    Recipe,
    SamplingSection,
    StudentSection,
    TeacherSection,
    load_recipe,
)
from tests.fakes import FaultyOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"


def valid_recipe(spec: str = "llamacpp:gemma-3-270m") -> dict[str, Any]:
    return {
        "name": "fuzzed",
        "task": {
            "kind": "labelled",
            "seeds": str(NEWS / "seeds.jsonl"),
            "validation": str(NEWS / "validation.jsonl"),
            "labels": {
                "business": {"description": "money", "subtopics": ["markets"]},
                "entertainment": "film and music",
                "politics": "elections",
                "sport": "matches",
                "tech": "gadgets",
            },
            "per_label": 4,
            "shots": 2,
            "samples_per_prompt": 2,
            "styles": ["report"],
            "headline": False,
        },
        "teacher": {
            "spec": spec,
            "concurrency": 2,
            "max_retries": 1,
            "timeout_s": 5.0,
            "prompt_style": "completion",
            "sampling": {"temperature": 0.7, "top_p": 0.9, "max_tokens": 32, "seed": 1},
        },
        "critic": {"target_precision": 0.9, "min_chars": 10, "near_duplicate_threshold": 0.8},
        "student": {"kind": "linear", "epochs": 2, "learning_rate": 0.001, "lora_dropout": 0.1},
        "loop": {"rounds": 1, "patience": 1, "token_budget": 100000},
    }


# field path -> what kind of value it holds (decides which values are wrong for it)
FIELDS: dict[tuple[str, ...], str] = {
    ("name",): "str",
    ("task", "per_label"): "count",
    ("task", "shots"): "count0",
    ("task", "samples_per_prompt"): "count",
    ("task", "styles"): "list",
    ("task", "headline"): "bool",
    ("task", "text_column"): "str",
    ("teacher", "spec"): "str",
    ("teacher", "concurrency"): "count",
    ("teacher", "max_retries"): "count0",
    ("teacher", "timeout_s"): "positive",
    ("teacher", "weight"): "positive",
    ("teacher", "sampling", "temperature"): "positive",
    ("teacher", "sampling", "top_p"): "positive",
    ("teacher", "sampling", "max_tokens"): "count",
    ("critic", "target_precision"): "positive",
    ("critic", "min_chars"): "count0",
    ("critic", "near_duplicate_threshold"): "positive",
    ("student", "epochs"): "count",
    ("student", "learning_rate"): "positive",
    ("student", "batch_size"): "count",
    ("loop", "rounds"): "count",
    ("loop", "patience"): "count0",
    ("loop", "token_budget"): "count",
}
FILES = [("task", "seeds"), ("task", "validation"), ("templates",), ("critic", "labels_file")]
SECTIONS = {
    (): Recipe,
    ("task",): LabelledTaskSection,
    ("teacher",): TeacherSection,
    ("teacher", "sampling"): SamplingSection,
    ("critic",): CriticSection,
    ("student",): StudentSection,
    ("loop",): LoopSection,
}
REQUIRED = [("name",), ("task",), ("task", "kind"), ("task", "seeds"), ("task", "labels")]
BUDGETS = [p for p, kind in FIELDS.items() if kind.startswith("count") and p[-1] != "token_budget"]


def wrong_values(kind: str) -> st.SearchStrategy:
    """Values no field of this kind accepts (pydantic's lax mode coerces some others)."""
    junk = st.one_of(
        st.lists(st.integers(), min_size=1, max_size=3),
        st.dictionaries(st.sampled_from("abc"), st.integers(), min_size=1, max_size=2),
    )
    if kind in ("count", "count0"):
        return st.one_of(junk, st.sampled_from(["many", "1e3x", "", "ten"]), st.just(2.5))
    if kind == "positive":
        return st.one_of(junk, st.sampled_from(["fast", "", "nan%"]))
    if kind == "bool":
        return st.one_of(junk, st.sampled_from(["maybe", "2", "sometimes"]))
    if kind == "list":
        return st.one_of(st.integers(), st.dictionaries(st.just("a"), st.integers(), min_size=1))
    return junk  # str fields: pydantic refuses lists and mappings


def negative_values(kind: str) -> st.SearchStrategy:
    if kind == "count0":
        return st.integers(max_value=-1)
    if kind == "count":
        return st.integers(max_value=0)
    return st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=True)


def field_names(section: type) -> set[str]:
    """A section's field names: a room config (dataclass) or a recipe-only pydantic model."""
    if dataclasses.is_dataclass(section):
        return {f.name for f in dataclasses.fields(section)}
    return set(section.model_fields)


def setting(recipe: dict, path: tuple[str, ...], value: Any) -> dict:
    mutated = copy.deepcopy(recipe)
    node = mutated
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return mutated


def removing(recipe: dict, path: tuple[str, ...]) -> dict:
    mutated = copy.deepcopy(recipe)
    node = mutated
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return mutated


@st.composite
def mutations(draw) -> tuple[str, dict, list[str]]:
    """(what, mutated recipe, words the error must contain: the field or the file)."""
    recipe = valid_recipe()
    what = draw(
        st.sampled_from(["wrong type", "unknown key", "missing file", "negative", "missing"])
    )
    if what == "wrong type":
        path, kind = draw(st.sampled_from(sorted(FIELDS.items())))
        return what, setting(recipe, path, draw(wrong_values(kind))), [".".join(path)]
    if what == "negative":
        path, kind = draw(
            st.sampled_from(
                sorted(
                    (p, k) for p, k in FIELDS.items() if k != "str" and k != "list" and k != "bool"
                )
            )
        )
        return what, setting(recipe, path, draw(negative_values(kind))), [".".join(path)]
    if what == "unknown key":
        section = draw(st.sampled_from(sorted(SECTIONS)))
        known = field_names(SECTIONS[section])
        key = draw(st.from_regex(r"\A[a-z][a-z_]{0,11}\Z").filter(lambda k: k not in known))
        return (
            what,
            setting(recipe, (*section, key), draw(st.integers() | st.text(max_size=5))),
            [
                key,
                "unknown field",
            ],
        )
    if what == "missing file":
        path = draw(st.sampled_from(FILES))
        name = draw(st.from_regex(r"\A[a-z]{1,8}(/[a-z]{1,8})?(\.jsonl)?\Z"))
        return what, setting(recipe, path, f"nowhere-{name}"), [".".join(path), f"nowhere-{name}"]
    path = draw(st.sampled_from(REQUIRED))
    return what, removing(recipe, path), [".".join(path)]


def load_text(text: str | bytes) -> Recipe:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recipe.yaml"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return load_recipe(path)


def refusal(recipe: dict) -> str:
    with pytest.raises(SynthkdError) as caught:
        load_text(yaml.safe_dump(recipe, sort_keys=False))
    message = str(caught.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def test_the_base_recipe_is_valid():
    assert load_text(yaml.safe_dump(valid_recipe())).name == "fuzzed"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_every_mutated_recipe_is_refused_with_one_line_naming_the_field(mutation):
    what, recipe, words = mutation
    message = refusal(recipe)
    for word in words:
        assert word in message, f"{what}: {message!r} does not name {word!r}"


def printable(piece: bytes) -> bool:
    """PyYAML refuses control characters while reading; test_control_character covers them."""
    text = piece.decode("utf-8", errors="ignore")
    return all(ch.isprintable() or ch in "\n\t " for ch in text)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=40),
    (st.binary(max_size=8) | st.text(max_size=8).map(str.encode)).filter(printable),
)
def test_garbled_yaml_loads_or_is_refused_with_one_line(at, cut, piece):
    """Bytes cut out or spliced in anywhere (also invalid UTF-8): a Recipe or one line."""
    text = yaml.safe_dump(valid_recipe(), sort_keys=False).encode()
    garbled = text[:at] + piece + text[at + cut :]
    try:
        load_text(garbled)
    except SynthkdError as exc:
        assert str(exc) and "\n" not in str(exc)


def test_control_character_in_a_recipe_is_one_line():
    text = yaml.safe_dump(valid_recipe(), sort_keys=False).replace("name: fuzzed", "name: f\x1fz")
    with pytest.raises(SynthkdError, match="recipe.yaml"):
        load_text(text)


@pytest.mark.parametrize("path", BUDGETS, ids=".".join)
@settings(max_examples=10, deadline=None)
@given(value=st.integers(min_value=10**9, max_value=10**30))
def test_huge_budgets_are_refused_with_one_line(path, value):
    message = refusal(setting(valid_recipe(), path, value))
    assert ".".join(path) in message


# ------------------------------------------------------------------ the CLI


CLI_CASES = {
    "wrong type": (("loop", "rounds"), "many"),
    "unknown key": (("teacher", "temprature"), 0.5),
    "missing file": (("task", "seeds"), "nowhere/seeds.jsonl"),
    "negative budget": (("task", "per_label"), -5),
    "nan temperature": (("teacher", "sampling", "temperature"), float("nan")),
}


@pytest.fixture(scope="module")
def teacher():
    with FaultyOpenAIServer() as srv:
        yield srv


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_generate_refuses_a_bad_recipe_with_one_line_exit_2_and_nothing_written(
    case, teacher, tmp_path
):
    path, value = CLI_CASES[case]
    recipe = setting(valid_recipe(f"openai:fake@{teacher.base_url}"), path, value)
    file = tmp_path / "recipe.yaml"
    file.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = tmp_path / "run"
    before = teacher.stats.requests
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", str(file), "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "SYNTHKD_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert path[-1] in lines[0]
    assert result.stdout == ""
    assert not out.exists()
    assert teacher.stats.requests == before
