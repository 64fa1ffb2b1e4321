"""Scheduled runs continue the loop: a second run on a run folder goes on from the first.

`synthkd run --continue` (and every scheduled run: `synthkd serve`, prefect.yaml) on a
folder that holds a finished run numbers its rounds after the last one, samples with new
seeds into a new corpus version, starts from the kept student and its focus, adds its
rows to metrics.json under its own run id and keeps the best student across runs.
The flow runs twice for real (Prefect, Delta, students); the teacher is the fake
OpenAI-compatible server on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from synthkd.errors import SynthkdError
from synthkd.stages import finish_run, open_context, save_round, start_run
from tests.fakes.openai_server import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, set_loop, synthkd, teacher_spec

T = 1200  # seconds a run may take on a busy 2-core machine


def _recipe(folder: Path, loop: str) -> Path:
    recipe = labelled_recipe(folder, per_label=8)
    return set_loop(recipe, loop)


def _table(run: Path, name: str = "corpus"):
    return CorpusStore(run / name).read().to_pandas()


def test_start_run_resumes_replays_continues_or_refuses(tmp_path):
    recipe = _recipe(tmp_path, "{rounds: 2}")
    out = tmp_path / "run"
    ctx, start = start_run(open_context(recipe, out), continue_loop=True, run_id="a")
    assert (start.first_round, start.seed_offset, start.students) == (0, 0, {})  # nothing before
    again, same = start_run(open_context(recipe, out), continue_loop=False, run_id="b")
    assert same.run_id == "a", "an unfinished run is resumed, whatever was asked"

    best = {"val_macro_f1": 0.7, "rounds": [0, 1], "path": "p"}
    focus = ({"labels": ["tech"]}, {"tech": 4})
    save_round(ctx, start, 1, best, focus, {"version": "c1"})
    (out / "metrics.json").write_text(json.dumps([{"round": 0}, {"round": 1}]))
    finish_run(ctx, start, "round budget (2)", 2)
    _, replay = start_run(open_context(recipe, out), continue_loop=False, run_id="c")
    assert (replay.run_id, replay.first_round) == ("a", 0), "a plain rerun replays the run"
    finish_run(ctx, replay, "round budget (2)", 2)

    ctx2, second = start_run(open_context(recipe, out), continue_loop=True, run_id="d")
    assert (second.run_id, second.first_round) == ("d", 2)
    assert ctx2.seed_offset == second.seed_offset != 0, "new seeds"
    assert second.students == {1: best} and second.best_f1 == 0.7
    assert (second.focus, second.wanted) == focus and second.included == [0, 1]
    assert second.critic == {"version": "c1"}, "unchanged inputs: the critic is reused"
    assert [r["round"] for r in second.history] == [0, 1]
    finish_run(ctx2, second, "round budget (2)", 2)
    with pytest.raises(SynthkdError, match="--continue"):
        start_run(open_context(recipe, out), continue_loop=False)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two whole runs
def test_a_second_run_continues_the_loop_of_the_first(tmp_path):
    """Also the cost test's two runs (one pair of whole runs for both): a round of 24
    samples of ~140 prompt tokens at 100 per million costs about 0.35, so each run stops
    after one round on `max_cost`, and --continue goes on with a new budget."""
    recipe = _recipe(
        tmp_path, "{rounds: 4, patience: 4, epsilon: 0, cv_folds: 2, max_cost: 0.0005}"
    )
    out, cache = tmp_path / "run", tmp_path / "cache"
    price = ("--price", "100,100")
    with FaultyOpenAIServer(answer=answer, max_lifetime_s=3000) as server:
        spec = teacher_spec(server)
        first = synthkd(
            "run", recipe, "--out", out, "--teacher", spec, *price, cache=cache, timeout=T
        )
        assert first.returncode == 0, first.stderr[-3000:]
        _assert_first_run_cost(out)
        before = _table(out)
        versions_before = len(CorpusStore(out / "corpus").versions())
        state = json.loads((out / "loop_state.json").read_text())
        asked_before = set(server.stats.attempts)

        second = synthkd(
            "run", recipe, "--out", out, "--teacher", spec, *price, "--continue",
            cache=cache, timeout=T,
        )  # fmt: skip
        assert second.returncode == 0, second.stderr[-3000:]
        repeated = server.stats.repeated_after_ok()
        asked_after = set(server.stats.attempts) - asked_before
        payloads = [server.stats.payloads[sid] for sid in asked_after]

    rows = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in rows] == [0, 1]
    ids = [r["run_id"] for r in rows]
    assert ids[0] != ids[1]
    assert rows[1]["teacher_cost"] > 0  # a new budget per run, the total over both
    total = json.loads((out / "summary.json").read_text())["cost"]
    assert total["total_cost"] == pytest.approx(rows[0]["teacher_cost"] + rows[1]["teacher_cost"])

    # new seeds: the second run asked the teacher for new samples only, each once
    assert asked_after and not repeated
    after = _table(out)
    assert len(CorpusStore(out / "corpus").versions()) > versions_before
    new = after[after["round"] >= 1]
    assert len(new) > 0 and not set(new["sample_key"]) & set(before["sample_key"])
    # rows already in the corpus were not filtered again, and dedup covered them
    old = after[after["round"] == 0]
    assert set(old["id"]) == set(before["id"])
    assert not set(new["text"]) & set(old["text"])

    # it started from the kept student and its focus
    run2 = json.loads((out / "loop_state.json").read_text())["runs"][1]
    kept = state["current"]
    assert run2["start"]["best_round"] == kept["best_round"] is not None
    assert run2["start"]["focus"] == kept["focus"] is not None
    guided = rows[0]["generated"]
    assert rows[1]["generated"] < guided, "a guided round asks for the weak classes only"
    asked = kept["focus"]["labels"]
    hard = [
        json.dumps(" ".join(h["text"].split()[:5]))[1:-1]  # shots are clipped: first words
        for h in kept["focus"]["hard_negatives"]
        if asked is None or h["label"] in asked
    ]
    prompts = [json.dumps(p["subject"]) for p in payloads]  # a prompt, or chat messages
    if hard:  # the kept student's hard negatives are shown to the teacher as shots
        assert any(text in prompt for text in hard for prompt in prompts)

    # the best student across both runs is the one kept
    summary = json.loads((out / "summary.json").read_text())
    scores = [r["val_macro_f1"] for r in rows]
    assert summary["best_round"] == scores.index(max(scores))
    assert summary["run_id"] == ids[1]

    # a plain run would replay the first run only: refused, one line, nothing touched
    plain = synthkd("run", recipe, "--out", out, cache=cache)
    assert plain.returncode == 2
    assert "--continue" in plain.stderr and len(plain.stderr.strip().splitlines()) == 1


def _assert_first_run_cost(out: Path) -> None:
    """The first round spent the budget: the run stopped cleanly and says what it cost."""
    rows = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 1 and summary["stop_reason"].startswith("cost budget")
    row = rows[0]
    expected = (row["teacher_prompt_tokens"] + row["teacher_completion_tokens"]) * 100 / 1e6
    assert row["teacher_cost"] == pytest.approx(expected) and row["teacher_cost"] > 0.0005
    assert row["run_cost"] == row["teacher_cost"] and row["run_id"] == summary["run_id"]
    cost = summary["cost"]
    assert cost["run_cost"] == cost["total_cost"] == row["teacher_cost"]
    assert cost["validation"]["real_only"] is not None
    assert (out / "student").is_dir()
    report = (out / "report.md").read_text()
    assert "## Cost" in report and "per point" in report
