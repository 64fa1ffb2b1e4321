"""The unlabelled pool (issue 13, item 6): the user's real unlabelled texts, labelled by
self-training, join the first round only where the loop's CV over the real examples does
not drop, with lineage `meta.source = "unlabelled_pool"`.

Real Delta corpus, real MiniLM embeddings, real scikit-learn CV; the teacher is the fake
OpenAI-compatible server (its label scores are made up, so the stage must weigh it by its
accuracy on the real examples). The pool holds hand-written news leads whose labels the
test knows and the stage does not.
"""

from __future__ import annotations

import csv
import json

from synthkd import stages
from synthkd.critics.pool import SOURCE
from synthkd.data import export_dataset
from synthkd.flows.report_choices import pool_section
from tests.fakes.openai_server import FaultyOpenAIServer
from tests.fixtures.critic_data import labelled, news
from tests.fixtures.fake_teacher import LABELS, answer, labelled_recipe, teacher_spec


def _setup(tmp_path, validation: bool = True, cap: int | None = None):
    """A two-label recipe naming a pool; round 0 of the corpus written by hand (8 leads
    per label); the pool: 12 other leads per label, one repeated, plus one of the
    recipe's own seeds."""
    recipe = labelled_recipe(tmp_path, validation=validation)
    pool = "  unlabelled: pool.csv\n" + (f"  unlabelled_max: {cap}\n" if cap else "")
    text = recipe.read_text().replace("  kind: labelled\n", "  kind: labelled\n" + pool)
    recipe.write_text(text)
    items = [item for item in news() if item["label"] in LABELS]
    by_label = {label: [i for i in items if i["label"] == label] for label in LABELS}
    corpus = [
        labelled(i["text"], label, f"r0-{label}-{n}")
        for label, chosen in by_label.items()
        for n, i in enumerate(chosen[:8])
    ]
    truth = {i["text"]: label for label, chosen in by_label.items() for i in chosen[8:20]}
    seed = json.loads((tmp_path / "seeds.jsonl").read_text().splitlines()[0])["text"]
    with (tmp_path / "pool.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text"])
        for t in [*truth, next(iter(truth)), seed]:
            writer.writerow([t])
    return recipe, corpus, truth, seed


def _pool_rows(ctx) -> list[dict]:
    table = ctx.stores().corpus.read()
    rows = table.to_pylist()
    return [r for r in rows if r["meta"] and json.loads(r["meta"]).get("source") == SOURCE]


def test_pool_texts_join_round_zero_with_their_lineage_once(tmp_path):
    recipe, corpus, truth, seed = _setup(tmp_path)
    with FaultyOpenAIServer(answer=answer) as server:
        ctx = stages.open_context(recipe, tmp_path / "run", teacher=teacher_spec(server))
        ctx.stores().corpus.append(corpus, "round 0")
        result = stages.pool_round(ctx, 0)
        assert result["pool_texts"] == len(truth), result  # the repeat and the seed left out
        assert result["left_out"] == {"duplicate": 1, "a real example": 1}
        assert result["candidates"] >= 4, result
        teacher = result["teacher"]  # it votes only where clearly above chance (k = 2)
        assert teacher["used"] == (teacher["accuracy"] >= 0.6 and teacher["skill"] > 0)
        assert result["joined"] and result["cv_after"] >= result["cv_before"], result
        rows = _pool_rows(ctx)
        assert len(rows) == result["candidates"] == result["appended"]
        assert sum(result["per_label"].values()) == len(rows)
        texts = {r["text"] for r in rows}
        assert texts <= set(truth) and seed not in texts
        assert not texts & (set(ctx.inputs.real["text"]) | set(ctx.inputs.validation["text"]))
        assert all(r["round"] == 0 for r in rows)
        right = sum(r["label"] == truth[r["text"]] for r in rows)
        assert right >= 0.9 * len(rows), [(r["text"], r["label"]) for r in rows]
        for r in rows:  # the label is the classifier's (and the teacher's, where it voted)
            soft = json.loads(r["soft_labels"])
            assert max(soft, key=soft.get) == r["label"]

        again = stages.pool_round(ctx, 0)  # a rerun after a kill appends nothing twice
    assert again["appended"] == 0 and again["candidates"] == result["candidates"]
    table = ctx.stores().corpus.read()
    assert table.num_rows == len(corpus) + len(rows)
    assert len(set(table["id"].to_pylist())) == table.num_rows
    # report.md says what the pool added
    (line,) = pool_section([{"round": 0, "unlabelled_pool": result}])
    assert f"{len(truth)} texts, {len(rows)} labelled" in line and "joined" in line
    # the dataset card's lineage counts the records by where they came from
    export_dataset(ctx.stores().corpus, tmp_path / "export")
    card = (tmp_path / "export" / "README.md").read_text()
    assert f"| {SOURCE} | {len(rows)} |" in card and f"| teacher | {len(corpus)} |" in card


def test_without_validation_the_teacher_is_judged_on_the_seeds(tmp_path):
    recipe, corpus, truth, _ = _setup(tmp_path, validation=False, cap=6)
    with FaultyOpenAIServer(answer=answer) as server:
        ctx = stages.open_context(recipe, tmp_path / "run", teacher=teacher_spec(server))
        ctx.stores().corpus.append(corpus, "round 0")
        result = stages.pool_round(ctx, 0)
    assert result["pool_texts"] == 6 and result["left_out"]["over unlabelled_max"] == 18
    teacher = result["teacher"]
    assert teacher["judged_on"] == len(ctx.inputs.real) == 10
    assert teacher["used"] == (teacher["accuracy"] >= 0.6 and teacher["skill"] > 0)
    for row in _pool_rows(ctx):
        soft = json.loads(row["soft_labels"])
        assert row["text"] in truth
        if not teacher["used"]:  # the classifier alone must be surer
            assert soft[row["label"]] >= 0.95


def test_recipes_without_a_pool_are_left_alone(tmp_path):
    recipe = labelled_recipe(tmp_path)
    ctx = stages.open_context(recipe, tmp_path / "run")
    assert stages.pool_round(ctx, 0) is None


def test_the_real_only_rival_self_trains_on_the_pool(tmp_path):
    # the rival scores each real-only kind again self-trained on the pool texts (deduplicated,
    # the recipe's own seed left out), from the same folds; no teacher is needed for it
    recipe, corpus, truth, seed = _setup(tmp_path)
    ctx = stages.open_context(recipe, tmp_path / "run")
    ctx.stores().corpus.append(corpus, "round 0")
    rival = stages.real_only_rival(ctx, tmp_path / "rival")
    assert rival["pool_texts"] == len(truth)
    ranking = {c["name"]: c for c in rival["selection"]["ranking"]}
    for kind in ("frozen", "linear"):
        assert ranking[f"{kind}/real+pool"]["folds"] == ranking[f"{kind}/real"]["folds"]
    own = [c for c in rival["selection"]["ranking"] if c["data"] in ("real", "real+pool")]
    assert rival["selection"]["without_corpus_best"] == own[0]["name"]
    manifest = json.loads((tmp_path / "rival" / "student.json").read_text())
    assert manifest["selected_by"]["ranking"][0]["name"] == own[0]["name"]
    assert ("self-labelled" in rival["name"]) == (own[0]["data"] == "real+pool")
