"""`synthkd run` on every task kind, and the CLI's stages giving what `run` gives.

Real subprocesses, real Prefect, Delta tables, MiniLM critic and students; the teacher is
the fake OpenAI server (tests/fakes), the only fake, standing at the network edge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.fake_teacher import (
    annotate_recipe,
    answer,
    labelled_recipe,
    synthkd,
    teacher_spec,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One response cache and model cache for the module (the critic's int8 encoder)."""
    return tmp_path_factory.mktemp("cache")


def run(recipe: Path, out: Path, cache: Path, *extra: str) -> tuple[object, int]:
    with FaultyOpenAIServer(answer=answer) as server:
        result = synthkd(
            "run", recipe, "--out", out, "--teacher", teacher_spec(server), *extra, cache=cache
        )
        requests = server.stats.requests
    assert result.returncode == 0, result.stderr[-3000:]
    return result, requests


def test_annotate_recipe_runs_end_to_end_on_soft_labels(tmp_path, cache):
    recipe = annotate_recipe(tmp_path, student="minilm")
    out = tmp_path / "run"
    result, _ = run(recipe, out, cache)
    rounds = json.loads((out / "metrics.json").read_text())
    assert len(rounds) == 1 and rounds[0]["val_accuracy"] is not None
    assert "every input text labelled once" in result.stdout

    rows = CorpusStore(out / "corpus").read().to_pylist()
    assert len(rows) == 24  # 25 input texts, one of them repeated
    dists = [
        json.loads(r["soft_labels"]) if isinstance(r["soft_labels"], str) else r["soft_labels"]
        for r in rows
    ]
    assert all(abs(sum(d.values()) - 1) < 1e-6 and set(d) == {"sport", "tech"} for d in dists)
    assert any(max(d.values()) < 0.99 for d in dists), "the teacher's full distribution is kept"
    rejects = CorpusStore(out / "rejects").read().to_pylist()
    assert [r["reason"] for r in rejects] == ["duplicate"]
    assert rounds[0]["generated"] == 25

    assert (out / "critic" / "critic.json").exists()  # trained on the shots_file
    manifest = json.loads((out / "student" / "student.json").read_text())
    assert manifest["kind"] == "minilm" and manifest["soft_label_examples"] > 0
    assert "Best student: round 0" in (out / "report.md").read_text()


def test_recipe_without_validation_holds_out_a_split_and_an_edited_seed_file_is_seen(
    tmp_path, cache
):
    recipe = labelled_recipe(tmp_path, validation=False)
    out = tmp_path / "run"
    run(recipe, out, cache)
    first = json.loads((out / "metrics.json").read_text())
    assert first[0]["val_accuracy"] is not None
    student = json.loads((out / "rounds" / "round-0" / "student" / "student.json").read_text())
    assert student["validation_examples"] >= 2  # a stratified split of corpus + seeds
    critic_before = json.loads((out / "critic" / "critic.json").read_text())

    # the same command in the same folder, after an edit of the seed file: fresh results
    seeds = tmp_path / "seeds.jsonl"
    rows = [json.loads(line) for line in seeds.read_text().splitlines()]
    rows[0]["text"] = "The striker scored twice in the cup final as the home side won 3-1."
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, requests = run(recipe, out, cache)
    assert requests > 0, "generation came back from Prefect's cache, blind to the new seeds"
    critic_after = json.loads((out / "critic" / "critic.json").read_text())
    assert critic_after != critic_before, "the critic was not retrained on the new seeds"


@pytest.mark.parametrize("name", ["commonsense", "document_kg"])
def test_triple_recipes_train_score_and_guide_a_generative_student(tmp_path, cache, name):
    """Issue 14: a generative student per round (a tiny Llama stands in for SmolLM2 here),
    scored on held-out gold, a guided round for the weakest relations, student vs teacher."""
    from tests.fixtures.triples_run import VAL_KEYS, tiny_triples_recipe

    out = tmp_path / "run"
    run(tiny_triples_recipe(name, tmp_path), out, cache, "--rounds", "2")
    assert (out / "student" / "adapter" / "adapter_model.safetensors").exists()
    assert (out / "student" / "README.md").exists()
    rows = json.loads((out / "metrics.json").read_text())
    assert len(rows) == 2
    assert all(row[key] is not None for row in rows for key in VAL_KEYS[name])
    summary = json.loads((out / "summary.json").read_text())
    per = rows[0]["per_relation"]
    mean = sum(per.values()) / len(per)
    weakest = sorted((r for r, v in per.items() if v <= mean), key=lambda r: (per[r], r))
    asked = summary["guided_focus"]["1"]["labels"]
    assert asked and asked == weakest[: len(asked)]
    assert summary["teacher"]["triples_per_s"] is not None
    report = (out / "report.md").read_text()
    assert "Best student: round" in report and "Student vs teacher" in report


def test_cli_stages_give_what_run_gives(tmp_path, cache):
    """generate, critic evidence, critic train, critic score, train == run --rounds 1."""
    recipe = labelled_recipe(tmp_path)
    by_run, by_cli = tmp_path / "run", tmp_path / "cli"
    run(recipe, by_run, cache, "--rounds", "1")
    with FaultyOpenAIServer(answer=answer) as server:
        teacher = teacher_spec(server)
        steps = [
            ("generate", recipe, "--out", by_cli, "--teacher", teacher, "--json"),
            ("critic", "evidence", recipe, "--corpus", by_cli, "--teacher", teacher),
            ("critic", "train", recipe, "--corpus", by_cli, "--out", by_cli / "critic"),
            ("critic", "score", by_cli / "critic", "--corpus", by_cli, "--recipe", recipe),
            ("train", recipe, "--corpus", by_cli, "--out", by_cli / "student", "--no-progress"),
        ]
        for step in steps:
            result = synthkd(*step, cache=cache)
            assert result.returncode == 0, (step[:2], result.stderr[-3000:])

    def corpus(folder: Path) -> dict:
        rows = CorpusStore(folder / "corpus").read().to_pylist()
        return {r["id"]: (r["accepted"], round(r["critic_score"], 6)) for r in rows}

    assert corpus(by_cli) == corpus(by_run) and len(corpus(by_run)) > 0
    critic = [json.loads((f / "critic" / "critic.json").read_text()) for f in (by_cli, by_run)]
    for key in ("threshold", "metrics", "label_counts"):
        assert critic[0][key] == critic[1][key], key
    cli_student = json.loads((by_cli / "student" / "student.json").read_text())
    run_student = json.loads(
        (by_run / "rounds" / "round-0" / "student" / "student.json").read_text()
    )
    for key in ("train_examples", "validation_examples", "labels"):
        assert cli_student[key] == run_student[key], key
    for key in ("val_accuracy", "val_macro_f1"):
        assert cli_student["metrics"][key] == run_student["metrics"][key], key
