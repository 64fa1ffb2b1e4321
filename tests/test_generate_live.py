"""Live generation with the embedded default teacher (Gemma 3 270M in llama.cpp), real
Delta tables, real response cache: small runs, a resume, a teacher mix and annotation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd.data import BufferedWriter, CorpusStore
from synthkd.generators import (
    AnnotateTaskConfig,
    LabelledTaskConfig,
    Sampling,
    TeacherSlot,
    done_samples,
    generate,
    make_task,
    teacher_from_spec,
)

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "examples" / "news_topics"
LABELS = ["sport", "tech"]

pytestmark = pytest.mark.slow


def two_label_seeds(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in (NEWS / "seeds.jsonl").read_text().splitlines()]
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"] in LABELS))
    return path


def tiny_recipe(tmp_path: Path) -> Path:
    seeds = two_label_seeds(tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"""\
name: tiny_news
task:
  kind: labelled
  seeds: {seeds.name}
  document_title: "BBC News - Top stories"
  samples_per_prompt: 2
  shots: 3
  labels:
    sport: {{subtopics: [tennis, cricket]}}
    tech: {{subtopics: [mobile phones, broadband]}}
teacher:
  spec: llamacpp:gemma-3-270m
  sampling: {{temperature: 0.9, seed: 11}}
"""
    )
    return path


def run_cli(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_cli_writes_a_corpus_with_lineage_and_a_rerun_asks_nothing(tmp_path):
    recipe = tiny_recipe(tmp_path)
    out = tmp_path / "run"
    first = run_cli(str(recipe), "--n", "2", "--out", str(out))
    assert first["records"] >= 3
    assert first["records"] + sum(first["rejects"].values()) == first["samples"]
    corpus = CorpusStore(out / "corpus")
    rows = corpus.read().to_pylist()
    assert len(rows) == first["corpus_rows"] >= 3
    for row in rows:
        assert row["label"] in LABELS and row["recipe"] == "tiny_news"
        assert (row["teacher_backend"], row["teacher_model"]) == ("llamacpp", "gemma-3-270m")
        assert len(row["template_hash"]) == 16 and len(row["sample_key"]) == 64
        assert " ".join(row["raw_completion"].split()) == row["text"]
        assert json.loads(row["sampling"])["temperature"] == 0.9
        assert json.loads(row["meta"])["subtopic"] in {
            "tennis",
            "cricket",
            "mobile phones",
            "broadband",
        }
    assert CorpusStore(out / "rejects").is_rejects

    again = run_cli(str(recipe), "--n", "2", "--out", str(out))
    assert again["records"] == 0 and sum(again["rejects"].values()) == 0
    assert again["skipped_samples"] == first["samples"]
    assert again["teacher_completion_tokens"] == 0
    assert CorpusStore(out / "corpus").count() == len(rows)

    # without --json the summary is a table a person reads
    table = subprocess.run(
        [sys.executable, "-m", "synthkd", "generate", str(recipe), "--n", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
    )
    assert table.returncode == 0, table.stderr
    for line in ("requests", "records/s", "acceptance", "teacher completion tokens", "sport"):
        assert line in table.stdout


def labelled_task(tmp_path: Path):
    config = LabelledTaskConfig(
        labels={"sport": {"subtopics": ["tennis"]}, "tech": {"subtopics": ["broadband"]}},
        seeds=str(two_label_seeds(tmp_path)),
        samples_per_prompt=2,
        shots=3,
        document_title="BBC News - Top stories",
    )
    return make_task(config)


class Interrupted(Exception):
    """Stands for Ctrl-C (a real KeyboardInterrupt would escape the event loop of the test)."""


async def run_into(out: Path, teacher, *, n: int, stop_after: int | None = None):
    """One generation into out/; `stop_after` batches simulates an interruption."""
    task = labelled_task(out.parent)
    corpus = CorpusStore.create(out / "corpus", "labelled")
    rejects = CorpusStore.create(out / "rejects", "labelled", rejects=True)
    done = done_samples(corpus, rejects, task.group_column)
    batches = 0

    def interrupt(_):
        nonlocal batches
        batches += 1
        if stop_after is not None and batches >= stop_after:
            raise Interrupted

    with BufferedWriter(corpus, "gen") as writer, BufferedWriter(rejects, "gen") as rw:
        report = await generate(
            task,
            [TeacherSlot(teacher, sampling=Sampling(seed=3))],
            writer,
            rw,
            recipe="resume_test",
            n=n,
            done=done,
            batch_size=1,
            max_attempts=1,
            progress=interrupt,
        )
    return report, corpus


def test_an_interrupted_run_resumes_from_store_and_cache_to_the_same_corpus(tmp_path):
    teacher = teacher_from_spec("llamacpp:gemma-3-270m", cache_path=str(tmp_path / "cache.sqlite"))

    async def scenario():
        with pytest.raises(Interrupted):
            await run_into(tmp_path / "a", teacher, n=2, stop_after=1)
        partial = CorpusStore(tmp_path / "a" / "corpus").count()
        tokens_before = teacher.usage.completion_tokens
        resumed, corpus = await run_into(tmp_path / "a", teacher, n=2)
        assert resumed.skipped_samples == 2  # the first request (2 samples) was stored
        assert teacher.usage.completion_tokens > tokens_before  # the rest was really asked
        assert corpus.count() >= partial
        # an uninterrupted run of the same plan: every sample answered by the cache
        calls_before = teacher.usage.completion_tokens
        replay, fresh = await run_into(tmp_path / "b", teacher, n=2)
        assert teacher.usage.completion_tokens == calls_before
        assert replay.usage.cache_hits == replay.samples == 4
        assert corpus.ids() == fresh.ids()
        await teacher.aclose()

    asyncio.run(scenario())


def test_a_teacher_mix_base_and_chat_keeps_who_wrote_what(tmp_path):
    gemma = teacher_from_spec("llamacpp:gemma-3-270m")
    smol = teacher_from_spec("llamacpp:smollm2-135m-instruct")
    task = labelled_task(tmp_path)
    corpus = CorpusStore.create(tmp_path / "corpus", "labelled")
    rejects = CorpusStore.create(tmp_path / "rejects", "labelled", rejects=True)
    slots = [
        TeacherSlot(gemma, weight=1.0, sampling=Sampling(seed=5)),
        TeacherSlot(smol, weight=1.0, sampling=Sampling(seed=5, temperature=0.7)),
    ]
    assert [s.resolved_style() for s in slots] == ["completion", "chat"]

    async def scenario():
        with BufferedWriter(corpus, "mix") as writer, BufferedWriter(rejects, "mix") as rw:
            report = await generate(task, slots, writer, rw, recipe="mix", n=4, max_attempts=1)
        for slot in slots:
            await slot.teacher.aclose()
        return report, rw.stats.skipped_duplicates

    report, identical_rejects = asyncio.run(scenario())
    rows = corpus.read().to_pylist() + rejects.read().to_pylist()
    # every sample is a record or a reject (a record written twice becomes a "duplicate"
    # reject); only an identical reject twice is stored once
    assert len(rows) + identical_rejects == report.records + report.rejected == report.samples == 8
    models = {row["teacher_model"] for row in rows}
    assert models == {"gemma-3-270m", "smollm2-135m-instruct"}
    hashes = {row["teacher_model"]: row["template_hash"] for row in rows}
    assert hashes["gemma-3-270m"] != hashes["smollm2-135m-instruct"]  # one template per style
    chat_rows = [r for r in corpus.read().to_pylist() if r["teacher_model"].startswith("smollm2")]
    for row in chat_rows:  # the chat teacher answered in the JSON schema
        assert json.loads(row["raw_completion"])["text"].strip()


def test_the_teacher_labels_unmistakable_texts(tmp_path):
    config = AnnotateTaskConfig(
        input=str(NEWS / "unlabelled.csv"),
        labels={name: {} for name in ["business", "entertainment", "politics", "sport", "tech"]},
        shots_file=str(NEWS / "seeds.jsonl"),
        shots=1,
    )
    task = make_task(config)
    corpus = CorpusStore.create(tmp_path / "corpus", "labelled")
    rejects = CorpusStore.create(tmp_path / "rejects", "labelled", rejects=True)
    teacher = teacher_from_spec("llamacpp:gemma-3-270m")

    async def scenario():
        with BufferedWriter(corpus, "annotate") as writer, BufferedWriter(rejects, "a") as rw:
            report = await generate(task, teacher, writer, rw, recipe="annotate", n=25)
        await teacher.aclose()
        return report

    report = asyncio.run(scenario())
    truth = {row["text"]: row["label"] for row in task_rows()}
    rows = corpus.read().to_pylist()
    assert report.records == len(rows) == 25  # the first 25 rows: 5 per label
    right = 0
    for row in rows:
        soft = json.loads(row["soft_labels"])
        assert set(soft) == set(config.labels)
        assert abs(sum(soft.values()) - 1) < 1e-6
        assert row["label"] == max(soft, key=soft.get)
        assert row["teacher_confidence"] == pytest.approx(soft[row["label"]])
        right += row["label"] == truth[row["text"]]
    assert right / len(rows) >= 0.6, f"teacher got {right}/{len(rows)} right"


def task_rows():
    import csv

    with (NEWS / "unlabelled.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))
