"""Recipes are user files: a YAML alias bomb, deep nesting, a self-referring alias or a
huge file is refused with one line and exit code 2 before anything walks the expanded
tree; a template reaching for Python internals fails in Jinja's sandbox, asking no teacher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.errors import SynthkdError
from synthkd.recipe import MAX_DEPTH, MAX_NODES, load_recipe
from tests.fakes import FaultyOpenAIServer

ROOT = Path(__file__).resolve().parents[1]


def alias_bomb(levels: int = 9, inside: str = "task") -> str:
    """Billion laughs: 9 levels of 9 aliases each expand to 9**9 (387 million) strings."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "name: bomb\n" + "\n".join(lines) + f"\n{inside}: *l{levels}\n"


CASES = {
    "alias bomb": (alias_bomb(), "once aliases are expanded"),
    "alias bomb in a field": (
        alias_bomb(inside="critic:\n  banned_patterns"),
        "once aliases are expanded",
    ),
    "deep nesting": ("name: deep\ntask: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
    "deep mappings": ("name: deep\ntask: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nested"),
    "deep block nesting": (
        "name: deep\ntask:\n" + "".join(" " * i + "a:\n" for i in range(1, 200)),
        "nested deeper",
    ),
    "huge file": ("name: big\n" + "# padding\n" * 200_000, "byte limit for a recipe"),
    "self-referring alias": ("name: loop\ntask: &t [*t]\n", "refers to a value that holds it"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_yaml_is_one_line(tmp_path, case):
    text, words = CASES[case]
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(SynthkdError, match=words) as caught:
        load_recipe(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_aliases_within_the_limits_still_load(tmp_path):
    """Aliases are fine: each node is checked once, however often it is referred to."""
    news = ROOT / "examples" / "news_topics"
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"name: ok\ntask:\n  kind: labelled\n  seeds: {news / 'seeds.jsonl'}\n"
        "  labels: [sport, tech]\n  styles: &s [report, interview]\n  lengths: *s\n"
    )
    assert load_recipe(path).task.lengths == ["report", "interview"]
    assert MAX_DEPTH >= 16 and MAX_NODES >= 10_000


@pytest.mark.parametrize("case", ["alias bomb", "deep nesting"])
def test_run_refuses_hostile_yaml_with_one_line_and_exit_2(tmp_path, case):
    text, words = CASES[case]
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "run", str(path), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,  # unbounded expansion took minutes; bounded, it is refused at once
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in result.stderr
    assert words in result.stderr
    assert not out.exists()


def test_run_with_a_template_reaching_for_python_internals_is_one_line(tmp_path):
    """Templates render in Jinja's sandbox: `synthkd run` stops at the first render, before
    any teacher request, with one line and exit 2."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "labelled.completion.jinja").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    )
    news = ROOT / "examples" / "news_topics"
    with FaultyOpenAIServer() as srv:
        path = tmp_path / "recipe.yaml"
        path.write_text(
            f"name: unsafe\ntemplates: {folder}\ntask:\n  kind: labelled\n"
            f"  seeds: {news / 'seeds.jsonl'}\n  validation: {news / 'validation.jsonl'}\n"
            "  labels: [business, entertainment, politics, sport, tech]\n  per_label: 2\n"
            f"teacher:\n  spec: openai:fake@{srv.base_url}\n  prompt_style: completion\n"
            "loop:\n  rounds: 1\nstudent:\n  kind: linear\n"
        )
        out = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-m", "synthkd", "run", str(path), "--out", str(out)],
            cwd=ROOT,
            env={**os.environ, "SYNTHKD_CACHE": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        asked = srv.stats.requests
    assert result.returncode == 2, result.stderr
    assert asked == 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: prompt template") and "unsafe" in last and "__class__" in last
    assert not out.exists()
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr
    assert "Traceback" not in result.stderr
