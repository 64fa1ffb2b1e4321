"""What a run costs, as a user sees it: prices, money per round, `loop.max_cost`, and
`synthkd run --estimate`, which must not ask the teacher anything.

The teacher is the fake OpenAI-compatible server on 127.0.0.1 (tests/fakes), the only
fake; the flow, the Delta tables and the students are the real ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synthkd.errors import SynthkdError
from synthkd.stages import budget_stop, cost_section, cost_summary, parse_price
from synthkd.stages.cost import Price, money
from tests.fakes.openai_server import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, set_loop, synthkd, teacher_spec

PRICE = "0.15,0.60"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _with_loop(recipe: Path, loop: str) -> Path:
    return set_loop(recipe, loop)


def test_prices_are_per_million_tokens_and_a_mix_is_charged_at_its_highest():
    openai = Price("openai:a", 0.15, 0.60)
    assert money([openai], 1_000_000, 0) == pytest.approx(0.15)
    assert money([openai], 2_000, 1_000) == pytest.approx(0.0009)
    assert money([Price("llamacpp:gemma-3-270m", 0.0, 0.0)], 10**9, 10**9) == 0.0
    assert money([openai, Price("openai:b", None, None)], 10, 10) is None  # never guessed
    assert money([openai, Price("openai:b", 1.0, 0.1)], 1_000_000, 1_000_000) == 1.6
    assert parse_price(" 0.15 , 0.6") == (0.15, 0.6)
    for bad in ("0.15", "a,b", "-1,2", "1,2,3", "nan,1"):
        with pytest.raises(SynthkdError, match="PROMPT,COMPLETION"):
            parse_price(bad)


def test_budget_stop_before_a_round_that_would_pass_it():
    last = {"teacher_cost": 0.4, "generated": 20}
    assert budget_stop(None, 99.0, last, {"a": 10}) is None
    assert budget_stop(1.0, 0.4, last, {"a": 10}) is None  # 0.4 + 0.2 fits
    assert "next round would cost about 0.8" in budget_stop(1.0, 0.4, last, {"a": 40})
    assert "spent 1.0" in budget_stop(1.0, 1.0, last, None)


def test_cost_per_point_over_the_real_examples_only_student():
    rows = [
        {"round": 0, "run_id": "a", "teacher_prompt_tokens": 10, "teacher_completion_tokens": 5,
         "teacher_cost": 0.3},
        {"round": 1, "run_id": "b", "teacher_prompt_tokens": 20, "teacher_completion_tokens": 5,
         "teacher_cost": 0.2},
    ]  # fmt: skip
    summary = {
        "loop_student_accuracy": 0.85,
        "real_only": {"name": "real examples only (linear)", "cv_accuracy": 0.80},
        "test": {
            "models": {
                "loop student (corpus + real)": {"accuracy": 0.70},
                "real examples only (linear)": {"accuracy": 0.75},
            }
        },
    }
    cost = cost_summary(rows, summary, [Price("openai:x", 1.0, 2.0)], run_id="b")
    assert cost["run_cost"] == 0.2 and cost["total_cost"] == 0.5
    assert cost["run_prompt_tokens"] == 20 and cost["total_prompt_tokens"] == 30
    assert cost["validation"]["points"] == 5.0
    assert cost["validation"]["cost_per_point"] == pytest.approx(0.1)  # 0.5 over 5 points
    assert cost["test"]["points"] == -5.0 and cost["test"]["cost_per_point"] is None
    report = "".join(cost_section(rows, {"cost": cost}))
    assert "## Cost" in report and "| 1 | b | 20 | 5 | 0.2000 | – |" in report
    assert "+5.00 points; 0.1000 per point" in report and "-5.00 points; no price" in report


def test_estimate_prints_round0_and_asks_the_teacher_nothing(tmp_path):
    recipe = labelled_recipe(tmp_path)
    out = tmp_path / "run"
    with FaultyOpenAIServer(answer=answer) as server:
        done = synthkd(
            "run", recipe, "--out", out, "--teacher", teacher_spec(server),
            "--price", PRICE, "--estimate", cache=tmp_path / "cache",
        )  # fmt: skip
        seen = (server.stats.requests, set(server.stats.authorization))
    assert done.returncode == 0, done.stderr
    assert seen == (0, set()), "no HTTP request at all may reach the teacher"
    assert not out.exists(), "an estimate writes no run folder"
    last = _lines(done.stdout)[-1]
    found = re.match(
        r"estimate: (\d+) requests, (\d+) samples \((\d+) cached\), (\d+) prompt tokens, "
        r"at most (\d+) completion tokens, cost at most ([\d.]+)$",
        last,
    )
    assert found, last
    requests, samples, cached, prompt, completion = map(int, found.groups()[:5])
    # two labels, 12 records each, two samples per prompt: 12 prompts of 2 samples
    assert (requests, samples, cached) == (12, 24, 0)
    assert prompt > 0 and completion > 0
    assert float(found[6]) == pytest.approx((prompt * 0.15 + completion * 0.60) / 1e6, abs=1e-4)


def test_max_cost_without_a_price_is_one_line_before_anything(tmp_path):
    recipe = _with_loop(labelled_recipe(tmp_path), "{rounds: 2, max_cost: 1.0}")
    out = tmp_path / "run"
    done = synthkd(
        "run", recipe, "--out", out, "--teacher", "openai:gpt-4o-mini@http://127.0.0.1:9/v1",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 2
    lines = _lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: loop.max_cost needs a price"), lines
    assert not out.exists()


# the two whole runs of a budgeted run and its --continue: tests/test_continue.py
