"""`synthkd label` driven through a pseudo-terminal: every answer is saved the moment it
is given, quitting half-way loses nothing, and the same command continues the sample."""

from __future__ import annotations

import csv
import os
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from synthkd.critics import labels_from_file
from synthkd.data import RunStore
from tests.fixtures.critic_data import news_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def run_dir(tmp_path):
    rows, _ = news_corpus()
    run = RunStore.create(tmp_path / "run", "labelled")
    run.corpus.append(rows[:20], "round 0: generation")
    return tmp_path / "run"


def spawn(*args: str) -> pexpect.spawn:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "TERM": "xterm"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "synthkd", "label", *args],
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=90,
        dimensions=(40, 120),
    )


def answers(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def shown_text(child: pexpect.spawn) -> str:
    """The story text of the record on screen (the line after 'Text: ')."""
    child.expect(r"Text: ")
    child.expect(r"[^\r\n│]+")
    return child.after.strip()


def test_label_quits_half_way_with_every_answer_saved_then_resumes(run_dir, tmp_path):
    out = tmp_path / "labels.csv"
    child = spawn(str(run_dir), "--n", "6", "--out", str(out))
    given = []
    for position, key in zip(range(1, 5), ["y", "n", "s", "y"], strict=True):
        child.expect(f"record {position} of 6")
        text = shown_text(child)
        child.expect("quit")
        if position == 4:  # a wrong key is refused, nothing is saved for it
            child.send("x")
            child.expect("press y, n, s or q")
        child.send(key)
        child.expect("saved ")
        given.append((key, text))
        saved = answers(out)
        assert len(saved) == position  # on disk before the next record is shown
    child.expect("record 5 of 6")
    child.send("q")
    child.expect("stopped: 2 acceptable, 1 not acceptable, 1 skipped")
    child.expect("2 left")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    saved = answers(out)
    expected_accept = {"y": "1", "n": "0", "s": ""}
    assert [row["accept"] for row in saved] == [expected_accept[key] for key, _ in given]
    for row, (_, text) in zip(saved, given, strict=True):
        assert text.startswith(row["text"][:40])  # the answer belongs to the record shown

    # The same command continues with the rest of the same sample.
    child = spawn(str(run_dir), "--n", "6", "--out", str(out))
    child.expect("record 5 of 6")
    child.send("n")
    child.expect("record 6 of 6")
    child.send("y")
    child.expect("done: 3 acceptable, 2 not acceptable, 1 skipped")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    saved = answers(out)
    assert len(saved) == 6 and len({row["id"] for row in saved}) == 6

    corpus = RunStore.open(run_dir).corpus.read()
    found = labels_from_file(out, corpus)
    assert sorted(label.accept for label in found.labels) == [0, 0, 1, 1, 1]
    assert found.dropped == {"human: skipped": 1}


def test_killed_labelling_session_keeps_its_answers(run_dir, tmp_path):
    out = tmp_path / "labels.parquet"
    child = spawn(str(run_dir), "--n", "5", "--out", str(out))
    for position, key in ((1, "y"), (2, "n")):
        child.expect(f"record {position} of 5")
        child.expect("quit")
        child.send(key)
    child.expect("record 3 of 5")
    child.kill(signal.SIGKILL)
    child.close()
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table.column("accept").to_pylist() == [1, 0]
    assert not list(tmp_path.glob(".*partial"))


def test_label_rejects_a_bad_output_file(run_dir, tmp_path):
    child = spawn(str(run_dir), "--n", "3", "--out", str(tmp_path / "labels.txt"))
    child.expect("error: label file must end in .csv or .parquet")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert not (tmp_path / "labels.txt").exists()
