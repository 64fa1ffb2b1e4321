"""The loop's CV choices never see a held-out example's label through the corpus (issue 13).

The label evidence decides each generated record's label with every real example, so a
corpus + real student of a training fold would already know the held-out fold. The fold
judge (`stages.FoldEvidence`) decides every judged record again from the training fold
alone, from the label it was asked for. Real Delta corpus, real MiniLM, real label evidence.
"""

from __future__ import annotations

import json

from synthkd import stages
from synthkd.training import LabelledExamples
from tests.fixtures.critic_data import labelled, news
from tests.fixtures.fake_teacher import LABELS, labelled_recipe

OTHER = {"sport": "tech", "tech": "sport"}


def _run(tmp_path, name: str, flip_held_out: bool):
    """A run whose round 0 (some asked-for labels wrong) went through the label evidence;
    with FLIP_HELD_OUT the last 5 validation examples per label carry the other label."""
    folder = tmp_path / name
    folder.mkdir()
    recipe = labelled_recipe(folder, student="linear")
    validation = folder / "validation.jsonl"
    rows = [json.loads(line) for line in validation.read_text().splitlines()]
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        row["held_out"] = seen[row["label"]] > 5
        if flip_held_out and row["held_out"]:
            row["label"] = OTHER[row["label"]]
    validation.write_text(
        "".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in rows)
    )
    ctx = stages.open_context(recipe, folder / "run")
    items = [item for item in news() if item["label"] in LABELS]
    records = [
        labelled(item["text"], OTHER[item["label"]] if n % 3 == 0 else item["label"], f"g-{n}")
        for n, item in enumerate(items)
    ]
    ctx.stores().corpus.append(records, "round 0: generation")
    evidence = stages.label_round(ctx, 0)
    seeds = [json.loads(line) for line in (folder / "seeds.jsonl").read_text().splitlines()]
    fold = seeds + [r for r in rows if not r["held_out"]]
    fold_real = LabelledExamples(
        [r["text"] for r in fold], [r["label"] for r in fold], [None] * len(fold)
    )
    return ctx, evidence, fold_real


def _stored(ctx) -> dict[str, str]:
    table = ctx.stores().corpus.read(columns=["text", "label"]).to_pylist()
    return {row["text"]: row["label"] for row in table}


def test_a_fold_trains_on_labels_its_held_out_examples_did_not_decide(tmp_path):
    plain, evidence, fold_real = _run(tmp_path, "plain", flip_held_out=False)
    flipped, _, flipped_fold = _run(tmp_path, "flipped", flip_held_out=True)
    assert flipped_fold.labels == fold_real.labels  # the training fold is the same
    # the stored labels followed the held-out examples: the leak the judge guards against
    assert _stored(plain) != _stored(flipped)

    def fold_corpus(ctx, fold):
        rows = ctx.stores().corpus.read(columns=["round", "text", "label", "meta"]).to_pylist()
        out = stages.FoldEvidence(ctx).corpus(rows)(fold)
        return sorted(zip(out.texts, out.labels, strict=True))

    assert fold_corpus(plain, fold_real) == fold_corpus(flipped, flipped_fold)

    # a relabelled record keeps the label it was asked for, which each fold starts from
    assert evidence["relabelled"] > 0, evidence
    corpus = plain.stores().corpus.read(columns=["text", "label", "meta"]).to_pylist()
    relabelled = [r for r in corpus if "asked_label" in json.loads(r["meta"] or "{}")]
    assert len(relabelled) == evidence["relabelled"]
    assert all(json.loads(r["meta"])["asked_label"] == OTHER[r["label"]] for r in relabelled)


def test_with_every_real_example_the_judge_decides_as_the_loop_did(tmp_path):
    ctx, evidence, _ = _run(tmp_path, "plain", flip_held_out=False)
    real = stages.real_examples(ctx)
    every = LabelledExamples(real["text"].tolist(), real["label"].tolist(), [None] * len(real))
    rows = ctx.stores().corpus.read(columns=["round", "text", "label", "meta"]).to_pylist()
    out = stages.FoldEvidence(ctx).corpus(rows)(every)
    # rejects included: the judge saw every record the evidence judged, and left out the same
    assert dict(zip(out.texts, out.labels, strict=True)) == _stored(ctx)
    assert len(out.texts) == evidence["kept"] + evidence["relabelled"]


def test_rounds_the_evidence_never_judged_keep_their_labels(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    ctx = stages.open_context(labelled_recipe(folder, student="linear"), folder / "run")
    items = [item for item in news() if item["label"] in LABELS][:10]
    records = [labelled(i["text"], OTHER[i["label"]], f"u-{n}") for n, i in enumerate(items)]
    ctx.stores().corpus.append(records, "round 0: written by hand")
    real = stages.real_examples(ctx)
    every = LabelledExamples(real["text"].tolist(), real["label"].tolist(), [None] * len(real))
    rows = ctx.stores().corpus.read(columns=["round", "text", "label", "meta"]).to_pylist()
    out = stages.FoldEvidence(ctx).corpus(rows)(every)
    assert sorted(zip(out.texts, out.labels, strict=True)) == sorted(
        (r["text"], r["label"]) for r in records
    )
