"""One declaration of each setting: the recipe's sections are the rooms' config classes,
each field has its default, bound and help line in one place, and a bad value is one line
whether it comes from YAML or from Python. Shared tables (ATOMIC relation phrases) are
one table for the teacher prompts, the critic and the student."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from synthkd.critics import CriticConfig
from synthkd.critics.records import pair_of
from synthkd.data import DEFAULT_RELATIONS, RELATION_PHRASES, relation_phrase
from synthkd.errors import SynthkdError
from synthkd.generators import (
    AnnotateTaskConfig,
    CommonsenseTaskConfig,
    DocumentKGTaskConfig,
    LabelledTaskConfig,
    Sampling,
)
from synthkd.generators.teachers import TeacherConfig
from synthkd.recipe import LoopSection, Recipe, TeacherSection, load_recipe
from synthkd.training import StudentConfig
from synthkd.training._triples import commonsense_prompt

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"
CONFIGS = [
    CriticConfig,
    StudentConfig,
    TeacherConfig,
    TeacherSection,
    Sampling,
    LabelledTaskConfig,
    CommonsenseTaskConfig,
    DocumentKGTaskConfig,
    AnnotateTaskConfig,
    LoopSection,
]


def test_the_recipe_sections_are_the_rooms_configs():
    fields = Recipe.model_fields
    assert fields["critic"].annotation is CriticConfig
    assert fields["student"].annotation is StudentConfig
    assert issubclass(TeacherSection, TeacherConfig)
    assert {f.name for f in dataclasses.fields(TeacherConfig)} <= {
        f.name for f in dataclasses.fields(TeacherSection)
    }


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_a_help_line(config):
    missing = [name for name, text in config.help().items() if not text and name != "kind"]
    assert not missing, f"{config.__name__}: no help for {missing}"


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: CriticConfig(target_precision=2), "critic.target_precision must be at most 1"),
        (lambda: CriticConfig(min_chars=50, max_chars=10), "min_chars"),
        (lambda: CriticConfig(tpyo=1), "critic.tpyo: unknown setting"),
        (lambda: StudentConfig(kind="huge"), "student.kind"),
        (lambda: StudentConfig(epochs=0), "student.epochs must be at least 1"),
        (lambda: TeacherConfig(concurrency=0), "teacher.concurrency must be at least 1"),
        (lambda: Sampling(top_p=0), "teacher.sampling.top_p must be more than 0"),
        (lambda: LabelledTaskConfig(labels=["one"], seeds="s.jsonl"), "task.labels"),
    ],
)
def test_a_bad_value_in_python_is_one_line_naming_the_field(build, words):
    with pytest.raises(SynthkdError) as caught:
        build()
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_the_same_bound_in_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"name: x\ntask:\n  kind: labelled\n  seeds: {NEWS / 'seeds.jsonl'}\n"
        "  labels: [a, b]\nstudent:\n  epochs: 0\n"
    )
    with pytest.raises(SynthkdError) as caught:
        load_recipe(path)
    assert str(caught.value) == f"{path}:7: student.epochs must be at least 1, not 0"


def test_sections_hand_over_to_rooms_unchanged():
    recipe = load_recipe(ROOT / "recipes" / "news_topics.yaml")
    assert CriticConfig(**recipe.critic.model_dump()) == recipe.critic
    assert StudentConfig(**recipe.student.model_dump()) == recipe.student
    options = recipe.teacher_sections()[0].options()
    assert (
        TeacherConfig.from_options(options).concurrency == recipe.teacher_sections()[0].concurrency
    )
    assert Recipe.model_validate(recipe.model_dump()).model_dump() == recipe.model_dump()


def test_labelled_task_fields_for_real_data_resolve_relative_to_the_recipe(tmp_path):
    for name in ("seeds.jsonl", "validation.jsonl"):
        (tmp_path / name).write_text((NEWS / name).read_text())
    (tmp_path / "pool.csv").write_text("body\nsome text\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: real
            task:
              kind: labelled
              seeds: seeds.jsonl
              test: validation.jsonl
              unlabelled: pool.csv
              unlabelled_text_column: body
              labels: [business, sport]
            loop:
              cv_folds: 3
            """
        )
    )
    recipe = load_recipe(path)
    assert recipe.task.test == str(tmp_path / "validation.jsonl")
    assert recipe.task.unlabelled == str(tmp_path / "pool.csv")
    assert recipe.task.unlabelled_text_column == "body"
    assert recipe.loop.cv_folds == 3
    assert load_recipe(ROOT / "recipes" / "news_topics.yaml").loop.cv_folds == 5
    path.write_text(path.read_text().replace("unlabelled: pool.csv", "unlabelled: gone.csv"))
    with pytest.raises(SynthkdError, match=r"recipe.yaml:6: task.unlabelled: file not found"):
        load_recipe(path)
    path.write_text(path.read_text().replace("cv_folds: 3", "cv_folds: 1"))
    with pytest.raises(SynthkdError, match="loop.cv_folds must be at least 2"):
        load_recipe(path)


def test_one_relation_table_for_teacher_critic_and_student():
    defaults = CommonsenseTaskConfig(seed_events="e.txt", seed_triples="t.jsonl").relations
    assert defaults == {name: RELATION_PHRASES[name] for name in DEFAULT_RELATIONS}
    row = {"head": "PersonX buys a car", "relation": "xNeed", "tail": "to save money"}
    _, critic_side = pair_of(row, "commonsense")
    assert critic_side == f"{RELATION_PHRASES['xNeed']} to save money"
    prompt = commonsense_prompt(row["head"], "xNeed")
    assert prompt == f"PersonX buys a car {relation_phrase('xNeed', mid_sentence=True)} [GEN]"
    assert relation_phrase("xNeed", mid_sentence=True) == "before that, PersonX needed"
    assert relation_phrase("xAttr", mid_sentence=True) == "PersonX is seen as"
    assert relation_phrase("madeUp") == "madeUp"
