"""User prompt templates run in Jinja2's sandbox: reaching for Python internals, or for
files outside the template folder, fails with one clear line and asks no teacher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthkd.errors import SynthkdError
from synthkd.generators.prompting import Templates
from tests.fakes import FaultyOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"

ESCAPES = {
    "class": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cycler.__init__.__globals__.os.environ }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "self": "{{ self.__init__.__globals__ }}",
    "format": "{{ '{0.__class__}'.format(label) }}",
    "attr filter": "{{ label | attr('__class__') }}",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_a_template_reaching_for_python_internals_fails_cleanly(tmp_path, name):
    (tmp_path / "labelled.completion.jinja").write_text(ESCAPES[name] + "\nStory:")
    with pytest.raises(SynthkdError, match=r"labelled\.completion\.jinja.*unsafe") as caught:
        Templates(tmp_path).render("labelled", "completion", {"label": "sport"})
    assert "\n" not in str(caught.value)


def test_an_include_cannot_leave_the_template_folder(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the teacher")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "labelled.completion.jinja").write_text("{% include '../secret.txt' %}")
    with pytest.raises(SynthkdError, match="secret.txt"):
        Templates(folder).render("labelled", "completion", {})


def test_generate_with_an_unsafe_template_is_one_line_and_asks_no_teacher(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "labelled.completion.jinja").write_text(ESCAPES["class"])
    with FaultyOpenAIServer() as srv:
        recipe = {
            "name": "unsafe",
            "task": {
                "kind": "labelled",
                "seeds": str(NEWS / "seeds.jsonl"),
                "labels": ["business", "entertainment", "politics", "sport", "tech"],
                "per_label": 2,
            },
            "teacher": {"spec": f"openai:fake@{srv.base_url}", "prompt_style": "completion"},
            "templates": str(folder),
        }
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        out = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-m", "synthkd", "generate", str(path), "--out", str(out)],
            cwd=ROOT,
            env={**os.environ, "SYNTHKD_CACHE": str(tmp_path / "cache")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        asked = srv.stats.requests
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the (empty) progress bar
    assert last.startswith("error: prompt template") and "unsafe" in last and "__class__" in last
    assert asked == 0
    assert not out.exists()
