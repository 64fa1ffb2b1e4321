"""Label evidence per cross-validation fold: the honest judge of a corpus.

Each generated record's label was decided with every real example (the `real` and `oof`
signals of `label_evidence`), so a student trained on corpus + a training fold has already
seen the held-out fold through the corpus, and corpus + real CV leans optimistic. On the
saved tweets run, frozen corpus + real scored 0.667 by CV against 0.587 for real only; on
the test split the two were 0.583 and 0.579. Decided again per fold, corpus + real scored
0.556 by CV.

So every CV choice that trains on the corpus (a guided round, the critic's cut, the
unlabelled pool, the rival's corpus + real candidates) sees it through `FoldEvidence`. For
each training fold, each round's records are decided again from that fold's real examples
only, starting from the label they were asked for (`meta.asked_label` when the evidence
relabelled them). The round's `label_disagreement` rejects are included: leaving them out
leaves the held-out fold's say in which records survived. The pool's texts are labelled
again by the fold's own classifier.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from synthkd.stages.context import RunContext
from synthkd.stages.evidence import asked_label, shared_embeddings
from synthkd.stages.pool import _source

Rows = Sequence[Mapping[str, Any]]
JUDGED = re.compile(r"^label evidence .* round (\d+)$")
"""Commit message of `stages.label_round`: which rounds the evidence decided."""


_DECIDED: dict[tuple[str, str, str], dict[str, tuple[str, Any]]] = {}
"""(labels, fold, records) digests -> what that fold's evidence kept: a process-wide cache,
so a round's decision, the next round's and the rival decide each earlier round once per
fold (the folds are the same: one seed)."""


def _digest(texts: Sequence[str], labels: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text}\0{label}\1".encode())
    return digest.hexdigest()


def _fold_key(fold_real: Any) -> str:
    return _digest(fold_real.texts, fold_real.labels)


class FoldEvidence:
    """A run's generated records with their asked-for labels, decided again per CV fold.

    `corpus(rows)` is what the training room's CV functions take as a corpus: a function
    from a training fold's real examples to ROWS labelled from that fold only.
    """

    def __init__(self, ctx: RunContext) -> None:
        from synthkd.critics.evidence_result import REASON
        from synthkd.critics.pool import SOURCE

        self.labels = list(ctx.labels)
        self.embed = shared_embeddings()
        self.pool_source = SOURCE
        self._asked: dict[int, dict[str, str]] = defaultdict(dict)
        """round -> text -> asked-for label: every record the evidence judged."""
        self._rejected: dict[int, set[str]] = defaultdict(set)
        run = ctx.stores()
        # rounds the label evidence decided (the others keep their labels)
        self._judged: set[int] = {
            int(found.group(1))
            for message in run.corpus.messages()
            if (found := JUDGED.match(message))
        }
        for row in run.corpus.read(columns=["round", "text", "label", "meta"]).to_pylist():
            if not self._pooled(row):
                self._asked[row["round"]][row["text"]] = asked_label(row)
        if run.rejects is not None:
            columns = ["round", "text", "label", "reason"]
            for row in run.rejects.read(columns=columns).to_pylist():
                if row["reason"] == REASON and row["text"]:
                    self._asked[row["round"]].setdefault(row["text"], row["label"])
                    self._rejected[row["round"]].add(row["text"])
        self._pool: dict[tuple[int, str, tuple[str, ...]], dict[str, str]] = {}

    def _pooled(self, row: Mapping[str, Any]) -> bool:
        return _source(row.get("meta")) == self.pool_source

    def decided(self, round: int, fold_real: Any) -> dict[str, tuple[str, Any]]:
        """text -> (label, agreed distribution) of ROUND's records that the evidence of
        FOLD_REAL keeps."""
        from synthkd.critics import label_evidence

        asked = self._asked.get(round) or {}
        records = [{"text": t, "label": label} for t, label in sorted(asked.items())]
        key = (
            "\x1f".join(self.labels),
            _fold_key(fold_real),
            _digest([r["text"] for r in records], [r["label"] for r in records]),
        )
        if key not in _DECIDED:
            kept: dict[str, tuple[str, Any]] = {}
            if records:
                evidence = label_evidence(
                    records, fold_real.texts, fold_real.labels, self.labels, embed=self.embed
                )
                for row, decision, final, soft in zip(
                    records,
                    evidence.decisions,
                    evidence.final_labels,
                    evidence.soft_labels,
                    strict=True,
                ):
                    if decision != "rejected":
                        kept[row["text"]] = (final, soft)
            _DECIDED[key] = kept
        return _DECIDED[key]

    def _pool_labels(self, round: int, texts: list[str], fold_real: Any) -> dict[str, str]:
        """The pool texts the fold's classifier (its real examples + the round's decided
        records) labels confidently enough, as `stages.pool_round` does without the teacher."""
        from synthkd.critics.pool import label_pool
        from synthkd.training import LabelledExamples
        from synthkd.training.frozen import frozen_student

        key = (round, _fold_key(fold_real), tuple(sorted(texts)))
        if key not in self._pool:
            decided = self.decided(round, fold_real)
            train = LabelledExamples(
                list(fold_real.texts) + list(decided),
                list(fold_real.labels) + [label for label, _ in decided.values()],
                [None] * len(fold_real.texts) + [soft for _, soft in decided.values()],
            )
            proba = frozen_student(train, self.labels, self.embed).predict_proba(texts)
            found = label_pool(texts, proba, self.labels, None, loop_round=round)
            self._pool[key] = {r["text"]: r["label"] for r in found}
        return self._pool[key]

    def corpus(self, rows: Rows) -> Callable[[Any], Any]:
        """ROWS (corpus rows with `round` and `meta`: those chosen for training) as a
        function of the training fold's real examples: each round's records decided again
        from that fold, the rows left out of ROWS (a cut, a round turned down) left out,
        the round's evidence rejects included (they have no critic score to cut on)."""
        from synthkd.training import LabelledExamples, labelled_examples

        chosen: dict[int, set[str]] = defaultdict(set)
        pooled: dict[int, list[str]] = defaultdict(list)
        as_stored = []  # rounds the evidence never judged: no real example decided them
        for row in rows:
            round = int(row["round"])
            if self._pooled(row):
                pooled[round].append(row["text"])
            elif round in self._judged:
                chosen[round].add(row["text"])
            else:
                as_stored.append(row)
        stored = labelled_examples(as_stored, what="the corpus") if as_stored else None

        def for_fold(fold_real: Any) -> Any:
            out = LabelledExamples([], [], [])
            if stored is not None:
                out.texts += stored.texts
                out.labels += stored.labels
                out.soft_labels += stored.soft_labels
            for round in sorted(chosen):
                wanted = chosen[round] | self._rejected.get(round, set())
                for text, (label, soft) in self.decided(round, fold_real).items():
                    if text in wanted:
                        out.texts.append(text)
                        out.labels.append(label)
                        out.soft_labels.append(soft)
            for round in sorted(pooled):
                for text, label in self._pool_labels(round, pooled[round], fold_real).items():
                    out.texts.append(text)
                    out.labels.append(label)
                    out.soft_labels.append(None)
            return out if out.texts else None

        return for_fold


__all__ = ["FoldEvidence"]
