"""An output folder that cannot be written (read-only, or a full disk): one clear line,
exit code 2, and no partial corpus version.

Real file systems, not mocks: a tmpfs mounted read-only or nearly full (root only; the
test skips when mounting is not allowed, as in most CI containers). Without root, a
read-only folder is a chmod.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.data import CorpusStore
from synthkd.errors import SynthkdError
from tests.fakes import FaultyOpenAIServer
from tests.test_reliability_chaos import recipe, story

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int):
    """A small tmpfs at `path`, unmounted on exit; skips the test when mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder nobody may write to: a read-only mount for root, a chmod for the rest."""
    if os.geteuid() == 0:
        with tmpfs(path, 1024):
            remount_read_only(path)
            yield path
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    try:
        yield path
    finally:
        path.chmod(0o755)


def generate(recipe_path: Path, out: Path, cache: Path, *extra: str):
    env = {**os.environ, "SYNTHKD_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", str(recipe_path), "--out", str(out), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def assert_one_clear_line(result, *words: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: "), result.stderr
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def server():
    with FaultyOpenAIServer(answer=story) as srv:
        yield srv


def test_a_read_only_output_folder_is_one_clear_line(tmp_path, server):
    path = recipe(tmp_path, server.base_url, per_label=2)
    with read_only_folder(tmp_path / "ro") as folder:
        result = generate(path, folder / "run", tmp_path / "cache")
        assert_one_clear_line(result, str(folder / "run"))
        assert not (folder / "run").exists()
    assert server.stats.requests == 0  # refused before the teacher was paid


def test_creating_a_corpus_on_a_read_only_disk_is_one_clear_line(tmp_path):
    with read_only_folder(tmp_path / "ro") as folder:
        with pytest.raises(SynthkdError, match="cannot create corpus") as caught:
            CorpusStore.create(folder / "corpus", "labelled")
        assert "\n" not in str(caught.value) and str(folder / "corpus") in str(caught.value)
        assert not (folder / "corpus").exists()


def test_a_run_folder_gone_read_only_keeps_its_last_version(tmp_path, server):
    path = recipe(tmp_path, server.base_url, per_label=2)
    with tmpfs(tmp_path / "mnt", 4096) as mnt:
        out = mnt / "run"
        first = generate(path, out, tmp_path / "cache")
        assert first.returncode == 0, first.stderr
        before = [(v.version, v.rows) for v in CorpusStore(out / "corpus").versions()]
        remount_read_only(mnt)
        result = generate(path, out, tmp_path / "cache", "--n", "6")
        assert_one_clear_line(result, "Read-only file system")
        corpus = CorpusStore(out / "corpus")
        assert [(v.version, v.rows) for v in corpus.versions()] == before
        assert corpus.read().num_rows == before[-1][1]


def test_a_full_disk_is_one_clear_line_and_no_partial_version(tmp_path):
    with tmpfs(tmp_path / "mnt", 256) as mnt, FaultyOpenAIServer(answer=story) as server:
        path = recipe(tmp_path, server.base_url, per_label=12)
        free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
        (mnt / "filler").write_bytes(b"\0" * (free - 24 * 1024))  # room for the empty tables
        out = mnt / "run"
        result = generate(path, out, tmp_path / "cache")
        assert_one_clear_line(result, "No space left on device", str(out / "corpus"))
        if (out / "corpus" / "_delta_log").exists():  # only ever complete versions
            corpus = CorpusStore(out / "corpus")
            assert corpus.versions()[-1].rows == corpus.read().num_rows
            assert corpus.read().column("text").null_count == 0
    # every answer the teacher gave is in the response cache (outside the full disk)
    with FaultyOpenAIServer(answer=story, port=server.port) as again:
        rerun = generate(path, tmp_path / "elsewhere", tmp_path / "cache")
        assert rerun.returncode == 0, rerun.stderr
    answered = {sid for sid, n in server.stats.answered_ok.items() if n}
    assert not answered & set(again.stats.attempts)
