"""Names never become paths outside the folder the user chose.

Corpus names, recipe names (the default run folder), split names (export file names)
and Hub repo ids are checked before anything touches the disk; and a whole `synthkd
generate` writes nothing outside its run folder and its response cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from synthkd.data import (
    CorpusStore,
    check_name,
    corpus_path,
    export_dataset,
    parse_splits,
    publish_dataset,
)
from synthkd.errors import SynthkdError
from synthkd.recipe import load_recipe
from tests.fakes import FaultyOpenAIServer
from tests.test_reliability_chaos import story

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"
ESCAPES = ["../x", "..", "a/../../b", "/etc/passwd", "a/b", ".hidden", "~root", "a\\..\\b", ""]
NAMES = st.text(alphabet=st.sampled_from("ab./\\~-_ \x00"), max_size=12) | st.sampled_from(ESCAPES)


def inside(path: str | Path, root: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(root.resolve())


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_a_corpus_name_is_refused_or_stays_inside_its_root(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp() / "corpora"
    try:
        path = corpus_path(root, name)
    except SynthkdError as exc:
        assert "\n" not in str(exc)
        return
    assert inside(path, root) and Path(path).parent == root
    assert check_name(name) == name


@pytest.mark.parametrize("name", [n for n in ESCAPES if n])
def test_a_recipe_name_cannot_aim_the_run_folder_elsewhere(tmp_path, name):
    path = tmp_path / "recipe.yaml"
    recipe = {
        "name": name,
        "task": {"kind": "labelled", "seeds": str(NEWS / "seeds.jsonl"), "labels": ["a", "b"]},
    }
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(SynthkdError, match="name"):
        load_recipe(path)


@pytest.mark.parametrize("split", ["../train", "train/../../x", "/tmp/x", "a b", ".."])
def test_split_names_cannot_become_paths_outside_the_export(tmp_path, split):
    with pytest.raises(SynthkdError):
        parse_splits(f"{split}=1.0")
    corpus = CorpusStore.create(tmp_path / "corpus", "labelled")
    with pytest.raises(SynthkdError, match="split"):
        export_dataset(corpus, tmp_path / "export", splits={split: 1.0})
    assert not (tmp_path / "export").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]


@pytest.mark.parametrize("repo", ["../../x", "org/../x", "org/name/../../y", "/abs/name"])
def test_a_hub_repo_id_cannot_be_a_path(tmp_path, repo):
    corpus = CorpusStore.create(tmp_path / "corpus", "labelled")
    with pytest.raises(SynthkdError, match="repo-id"):
        publish_dataset(corpus, repo, token="hf_fake")


def test_generate_writes_only_inside_its_run_folder_and_its_cache(tmp_path):
    home = tmp_path / "home"  # HOME and the working directory are watched too
    home.mkdir()
    with FaultyOpenAIServer(answer=story) as srv:
        recipe = tmp_path / "recipe.yaml"
        task = {
            "kind": "labelled",
            "seeds": str(NEWS / "seeds.jsonl"),
            "labels": ["business", "entertainment", "politics", "sport", "tech"],
            "per_label": 2,
        }
        teacher = {"spec": f"openai:fake@{srv.base_url}", "prompt_style": "completion"}
        recipe.write_text(yaml.safe_dump({"name": "contained", "task": task, "teacher": teacher}))
        before = set(tmp_path.rglob("*"))
        out = tmp_path / "run"
        result = subprocess.run(
            [sys.executable, "-m", "synthkd", "generate", str(recipe), "--out", str(out)],
            cwd=tmp_path,
            env={
                **os.environ,
                "HOME": str(home),
                "SYNTHKD_CACHE": str(tmp_path / "cache"),
                "PYTHONPATH": str(ROOT),
                "PYTHONDONTWRITEBYTECODE": "1",
            },
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr
    new = sorted(str(p) for p in set(tmp_path.rglob("*")) - before)
    allowed = (out, tmp_path / "cache")
    stray = [p for p in new if not any(inside(p, a) for a in allowed)]
    assert not stray, stray
    assert any(inside(p, out) for p in new) and any(inside(p, tmp_path / "cache") for p in new)
