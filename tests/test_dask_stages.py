"""The heavy stages on a real Dask cluster: a LocalCluster of 2 worker processes on
127.0.0.1, the real stages, Delta tables, MiniLM embeddings and critic; the teacher is the
fake OpenAI server (tests/fakes), the only fake, at the network edge.

Each stage's result records the processes its partitions ran in; the test compares them
with the workers' own PIDs, so work that silently stayed in this process fails it.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pyarrow as pa
import pytest

from synthkd import stages
from synthkd.critics import CriticConfig, apply_filters
from synthkd.data import CorpusStore
from synthkd.stages import scale
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.data_corpus import labelled_rows
from tests.fixtures.fake_teacher import answer, labelled_recipe, synthkd, teacher_spec

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def worker_home(tmp_path_factory) -> Path:
    """The workers' Prefect home: the task results they store are this module's alone
    (the test process's home also holds other test files' results)."""
    return tmp_path_factory.mktemp("dask-prefect-home")


@pytest.fixture(scope="module")
def client(worker_home):
    """2 worker processes, one thread each, on 127.0.0.1; closed at the end."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env={"PREFECT_HOME": str(worker_home)},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def worker_pids(client) -> set[int]:
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    return pids


def ran_in(result: dict) -> set[int]:
    return {place["pid"] for place in result["workers"]}


def test_generation_filters_evidence_and_scoring_run_in_the_workers(client, tmp_path):
    pids = worker_pids(client)
    recipe = labelled_recipe(tmp_path, per_label=8)
    with FaultyOpenAIServer(answer=answer) as server:
        ctx = stages.remember(
            stages.open_context(recipe, tmp_path / "run", teacher=teacher_spec(server))
        )
        generated = stages.generate_round(ctx, 0).to_dict()
    # two labels dealt out to two workers, each with its own teacher client
    assert ran_in(generated) == pids
    assert generated["records"] > 0
    corpus = CorpusStore(tmp_path / "run" / "corpus")
    assert corpus.count() == generated["records"]
    assert set(corpus.counts()) == {"sport", "tech"}

    filtered = stages.filter_round(ctx, 0)
    assert ran_in(filtered) == pids
    assert filtered["kept"] + filtered["rejected"] == generated["records"]

    evidence = stages.label_round(ctx, 0)
    assert ran_in(evidence) == pids
    assert evidence["kept"] + evidence["relabelled"] + evidence["rejected"] == filtered["kept"]

    stages.fit_critic(ctx)
    scored = stages.score_round(ctx, 0)
    assert ran_in(scored) == pids
    rows = corpus.read()
    assert scored["scored"] == rows.num_rows > 0
    assert rows["critic_score"].null_count == 0


def test_partitioned_filters_give_what_one_process_gives(client):
    pids = worker_pids(client)
    rng = random.Random(0)
    words = [
        "match",
        "goal",
        "coach",
        "league",
        "phone",
        "chip",
        "app",
        "cloud",
        "data",
        "market",
        "bank",
        "vote",
    ]

    def story(row: dict) -> dict:
        picked = " ".join(rng.choice(words) for _ in range(14))
        return {**row, "text": f"The {row['label']} desk wrote {picked} today."}

    earlier = pa.Table.from_pylist([story(r) for r in labelled_rows(60, round=0)])
    fresh = [story(r) for r in labelled_rows(240, round=1, start=60)]
    for row in rng.sample(fresh, 40):  # exact and near copies of earlier and new rows
        source = rng.choice(fresh + earlier.to_pylist())
        row["text"] = source["text"] if rng.random() < 0.5 else source["text"] + " too"
    fresh.append({**fresh[0], "id": "short", "text": "tiny"})
    this_round = pa.Table.from_pylist(fresh, schema=earlier.schema)
    config = CriticConfig(min_chars=10)

    alone = apply_filters(this_round, config, existing=earlier, kind="labelled")
    spread, places = scale.filter_on_cluster(client, this_round, earlier, config, "labelled", [])
    assert {p["pid"] for p in places} == pids
    assert [r["id"] for r in spread.kept] == [r["id"] for r in alone.kept]
    assert [(r["id"], r["reason"]) for r in spread.rejects] == [
        (r["id"], r["reason"]) for r in alone.rejects
    ]
    reasons = {r["reason"] for r in alone.rejects}
    assert {"exact_duplicate", "near_duplicate", "too_short"} <= reasons


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_synthkd_run_with_dask_address_runs_the_heavy_stages_in_the_workers(
    client, worker_home, tmp_path
):
    """`synthkd run --dask-address` against the cluster; Prefect's stored task results
    name the worker processes each stage's partitions ran in."""
    pids = worker_pids(client)
    recipe = labelled_recipe(tmp_path, per_label=8)
    out = tmp_path / "run"
    address = client.scheduler.address
    with FaultyOpenAIServer(answer=answer) as server:
        result = synthkd(
            "run", recipe, "--out", out, "--teacher", teacher_spec(server),
            "--dask-address", address, cache=tmp_path / "cache", timeout=1700,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # results of tasks run on the workers land in the Prefect home of their process
    homes = [out / ".prefect", worker_home]
    files = [p for home in homes for p in (home / "storage").rglob("*") if p.is_file()]
    stored = [json.loads(p.read_text()) for p in files]
    places: dict[str, set[int]] = {}
    for item in stored:
        value = item.get("result") if isinstance(item, dict) else None
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            payload = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(payload, dict) and payload.get("workers"):
            key = (
                "scored" if "scored" in payload else "reasons" if "reasons" in payload else "other"
            )
            places.setdefault(key, set()).update(w["pid"] for w in payload["workers"])
    assert places.get("scored") == pids, places
    assert places.get("reasons") == pids, places
    rows = CorpusStore(out / "corpus").read()
    assert rows.num_rows > 0 and rows["critic_score"].null_count == 0
