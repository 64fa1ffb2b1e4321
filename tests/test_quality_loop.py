"""Issue 13 through `synthkd run`: labels from evidence, the real-examples-only rival, and a
`test:` file that no part of the loop reads.

Real subprocesses, Prefect, Delta tables and MiniLM; the teacher is the fake OpenAI server
(the only fake, at the network edge), whose stories carry their asked-for label's words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, synthkd, teacher_spec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(recipe: Path, out: Path, cache: Path):
    with FaultyOpenAIServer(answer=answer) as server:
        result = synthkd(
            "run",
            recipe,
            "--out",
            out,
            "--teacher",
            teacher_spec(server),
            cache=cache,
            timeout=1200,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _with_test(folder: Path, flip: bool) -> Path:
    """A test file: the validation texts, labels flipped when `flip` (poison if read)."""
    rows = [json.loads(x) for x in (folder / "validation.jsonl").read_text().splitlines()]
    other = {"sport": "tech", "tech": "sport"}
    (folder / "test.jsonl").write_text(
        "".join(
            json.dumps({"text": r["text"], "label": other[r["label"]] if flip else r["label"]})
            + "\n"
            for r in rows
        )
    )
    recipe = folder / "recipe.yaml"
    text = recipe.read_text().replace(
        "  seeds: seeds.jsonl\n", "  seeds: seeds.jsonl\n  test: test.jsonl\n"
    )
    recipe.write_text(text)
    return recipe


def test_evidence_rival_and_untouched_test_file(tmp_path):
    cache = tmp_path / "cache"
    plain_dir, poisoned_dir = tmp_path / "plain", tmp_path / "poisoned"
    plain_dir.mkdir(), poisoned_dir.mkdir()
    labelled_recipe(plain_dir, student="linear", per_label=16)
    plain = _run(plain_dir / "recipe.yaml", plain_dir / "run", cache)
    labelled_recipe(poisoned_dir, student="linear", per_label=16)
    poisoned = _run(_with_test(poisoned_dir, flip=True), poisoned_dir / "run", cache)

    # labels from evidence: every generated record was judged, and the report shows it
    rounds = json.loads((poisoned_dir / "run" / "metrics.json").read_text())
    evidence = rounds[0]["label_evidence"]
    judged = evidence["kept"] + evidence["relabelled"] + evidence["rejected"]
    assert judged > 0 and set(evidence["per_label"]) == {"sport", "tech"}
    assert "generate" in rounds[0]["stage_seconds"]
    report = (poisoned_dir / "run" / "report.md").read_text()
    assert "## Labels from evidence" in report and "## Time per stage" in report
    rows = CorpusStore(poisoned_dir / "run" / "corpus").read().to_pylist()
    assert all(r["soft_labels"] for r in rows), "kept records carry the agreed distribution"

    # the real-examples-only rival: always trained, and the shipped student is no worse
    summary = json.loads((poisoned_dir / "run" / "summary.json").read_text())
    rival = summary["real_only"]
    assert rival["cv_accuracy"] is not None and summary["shipped"]["which"]
    assert summary["student_accuracy"] >= rival["cv_accuracy"]
    assert "## Shipped student vs your examples alone" in report
    # ... judged on the same real examples: the loop's student on the 20 validation rows
    # against the real-only student's out-of-fold predictions on them
    loop_vs_real = summary["shipped"]["paired"]["loop vs real only"]
    assert loop_vs_real["examples"] == 20 and 0 <= loop_vs_real["p"] <= 1
    if summary["shipped"]["which"] == "the loop's student (corpus + your examples)":
        # it clearly beat the CV winner (loop.ship_alpha)
        tests = summary["shipped"]["paired"]
        assert any(t["p"] <= 0.1 for name, t in tests.items() if name.startswith("loop vs"))
    if summary["shipped"]["which"] == rival["name"]:  # a lead of a few examples is not enough
        assert loop_vs_real["p"] > 0.1
    assert "McNemar" in report and "correct" not in json.dumps(rival)

    # the test file is scored at the end only: the flipped labels make every model look
    # wrong there, and nothing the loop did changed (same corpus, same round metrics)
    test = summary["test"]
    assert test["examples"] == 20 and test["models"]["shipped student"]["accuracy"] <= 0.2
    assert "untouched test file" in poisoned.stdout
    plain_rounds = json.loads((plain_dir / "run" / "metrics.json").read_text())
    for key in ("accepted", "val_accuracy", "critic_accepted"):
        assert rounds[0][key] == plain_rounds[0][key], key
    for key in ("kept", "relabelled", "rejected", "per_label"):
        assert evidence[key] == plain_rounds[0]["label_evidence"][key], key
    plain_ids = sorted(
        r["id"] for r in CorpusStore(plain_dir / "run" / "corpus").read().to_pylist()
    )
    assert sorted(r["id"] for r in rows) == plain_ids
    assert "test" not in plain.stdout.split("student validation accuracy")[-1]
