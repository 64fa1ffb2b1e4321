"""The heavy stages fanned out over a Dask cluster, when one runs them.

Under `synthkd run --dask-address` (or any Prefect `DaskTaskRunner`) a stage's task runs
on a Dask worker (generation, called in the flow's process, uses the runner's client);
from there these functions split the work over every worker of the cluster (a calling
task secedes from its worker's thread pool while it waits, so it never blocks a slot):

- generation: the round's groups (labels, relations, documents) are dealt out to the
  workers; each worker opens its own teacher client (the embedded teacher: one model per
  worker process; served teachers: every worker's client spreads over the same
  replicas) and commits its records to the run's Delta tables itself;
- filters and MinHash dedup: rules, keys and MinHash signatures per partition on the
  workers, then one ordered LSH pass (the same verdicts as one process gives);
- label evidence: the records' and real examples' MiniLM embeddings per partition on the
  workers; the classifiers and confident learning then run once on them;
- critic scoring: each worker loads the critic once and scores its partition; the cut
  (threshold, label balance) is chosen over all scores, and one version is committed.

Without a cluster each function is the plain stage. Every result lists the processes its
partitions ran in (`workers`: pid and worker address).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from synthkd.stages.context import RunContext, context_from

_CRITICS: dict[str, Any] = {}


@contextlib.contextmanager
def cluster() -> Iterator[Any]:
    """A Dask client when this runs on a cluster (in a worker's task, or where a default
    client is set), else None."""
    if "distributed" not in sys.modules:  # no worker, client or Dask runner without it,
        yield None  # and importing it would cost a command half a second (issue 17)
        return
    try:
        import distributed
    except ImportError:  # pragma: no cover - distributed is a dependency
        yield None
        return
    try:
        distributed.get_worker()
    except ValueError:
        try:
            yield distributed.default_client()
        except ValueError:
            yield _flow_client()
        return
    with distributed.worker_client() as client:  # secede: waiting takes no worker slot
        yield client


def _flow_client() -> Any:
    """The client of the Prefect `DaskTaskRunner` running this flow (a task called
    directly in the flow's process, e.g. generation), or None."""
    if "prefect" not in sys.modules:  # not in a flow: `synthkd generate` never loads Prefect
        return None
    try:
        from prefect.context import FlowRunContext

        runner = getattr(FlowRunContext.get(), "task_runner", None)
    except Exception:  # no Prefect context here
        return None
    if type(runner).__name__ != "DaskTaskRunner":
        return None
    return runner.client  # made on first use, as the runner's own submits do


def workers(client: Any) -> list[str]:
    """The cluster's worker addresses, sorted (partition i goes to worker i)."""
    return sorted(client.scheduler_info()["workers"])


def where() -> dict[str, Any]:
    """Which process this runs in: its pid and, on a Dask worker, the worker's address."""
    address = None
    with contextlib.suppress(Exception):
        import distributed

        address = distributed.get_worker().address
    return {"pid": os.getpid(), "worker": address}


def fan_out(client: Any, fn: Any, parts: list[Any], *args: Any) -> list[Any]:
    """`fn(part, *args)` for each part, part i pinned to worker i (round robin)."""
    addresses = workers(client)
    futures = [
        client.submit(
            fn,
            part,
            *args,
            workers=[addresses[i % len(addresses)]],
            allow_other_workers=True,
            pure=False,
        )
        for i, part in enumerate(parts)
    ]
    return client.gather(futures)


def slices(table: Any, parts: int) -> list[Any]:
    """`table` cut into `parts` contiguous slices (fewer when it has fewer rows)."""
    parts = max(1, min(parts, table.num_rows))
    size = -(-table.num_rows // parts)
    return [table.slice(i * size, size) for i in range(parts)]


# -- generation ------------------------------------------------------------------------


def _generate_part(groups: list[str], ident: dict, round: int, focus, goal, n) -> dict:
    from synthkd.stages.generate import generate_here

    ctx = context_from(ident)
    wanted = {g: goal[g] for g in groups}
    report = generate_here(ctx, round, focus=focus, wanted=wanted, n=n)
    result = report.to_dict()
    result["teacher_requests"] = report.usage.requests
    return {**result, "where": where()}


def generate_on_cluster(
    client: Any, ctx: RunContext, round: int, focus, wanted, n
) -> dict[str, Any]:
    """The round's groups dealt out to the workers; their reports summed."""
    from synthkd.generators import default_wanted, make_task

    ctx.stores()  # the tables made once here, not raced for by the workers
    task = make_task(ctx.recipe.task.model_dump(), ctx.recipe.templates)
    goal = dict(wanted) if wanted is not None else default_wanted(task, n)
    count = len(workers(client))
    shards = [sorted(goal)[i::count] for i in range(count)]
    shards = [s for s in shards if s]
    started = time.perf_counter()
    parts = fan_out(client, _generate_part, shards, ctx.identity(), round, focus, goal, n)
    return merge_reports(parts, time.perf_counter() - started)


def merge_reports(parts: list[dict], seconds: float) -> dict[str, Any]:
    """One generation report from the workers' (counts summed, rates over the wall time)."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "where":
                continue
            if isinstance(value, dict):
                bucket = merged.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v if isinstance(v, int | float) else v
            elif isinstance(value, int | float) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
            else:
                merged.setdefault(key, value)
    merged["seconds"] = round(seconds, 2)
    records = merged.get("records", 0)
    merged["records_per_s"] = records / seconds if seconds > 0 else 0.0
    rejected = sum((merged.get("rejects") or {}).values())
    merged["acceptance"] = records / (records + rejected) if records + rejected else 0.0
    merged["workers"] = [part["where"] for part in parts]
    return merged


# -- filters and MinHash dedup -----------------------------------------------------------


def _signatures_part(table: Any, config: Any, kind: str, echo: list[str], rules: bool) -> Any:
    from synthkd.critics import filter_signatures

    return filter_signatures(table, config, kind, echo, rules=rules), where()


def filter_on_cluster(
    client: Any, this_round: Any, earlier: Any, config: Any, kind: str, echo: list[str]
) -> tuple[Any, list[dict]]:
    """`apply_filters`' result, the signatures computed partitioned on the workers."""
    from synthkd.critics import concat_signatures, dedup_with_signatures

    count = len(workers(client))
    new = fan_out(client, _signatures_part, slices(this_round, count), config, kind, echo, True)
    old = []
    if earlier.num_rows:
        old = fan_out(client, _signatures_part, slices(earlier, count), config, kind, [], False)
    existing = concat_signatures([s for s, _ in old]) if old else None
    result = dedup_with_signatures(
        this_round, concat_signatures([s for s, _ in new]), existing, config, kind
    )
    return result, [w for _, w in new + old]


# -- label evidence ----------------------------------------------------------------------


def _embed_part(texts: list[str]) -> tuple[Any, dict]:
    from synthkd.stages.evidence import shared_embeddings

    return shared_embeddings()(texts), where()


def label_round(ctx: RunContext, round: int) -> dict[str, Any] | None:
    """Labels from evidence; on a cluster the embeddings are computed partitioned first."""
    from synthkd.stages import evidence

    with cluster() as client:
        placed: list[dict] = []
        if client is not None and ctx.task_kind == "labelled" and ctx.inputs.real is not None:
            import pyarrow as pa
            import pyarrow.compute as pc

            from synthkd.critics import fill_embeddings

            table = ctx.stores().corpus.read(columns=["round", "text"])
            mine = table.filter(pc.equal(table["round"], round))["text"].to_pylist()
            real = evidence.real_examples(ctx)["text"].tolist()
            texts = list(dict.fromkeys(str(t or "") for t in [*mine, *real]))
            count = len(workers(client))
            parts = [p.column(0).to_pylist() for p in slices(pa.table({"t": texts}), count)]
            done = fan_out(client, _embed_part, parts) if texts else []
            cache = evidence.shared_embeddings()
            for part, (vectors, place) in zip(parts, done, strict=True):
                fill_embeddings(cache, part, vectors)
                placed.append(place)
        result = evidence.label_round(ctx, round)
    if result is not None and placed:
        result["workers"] = placed
    return result


# -- critic scoring ----------------------------------------------------------------------


def _score_part(table: Any, ident: dict) -> tuple[Any, dict]:
    ctx = context_from(ident)
    if ctx.folder is not None and ctx.folder.remote:
        ctx.folder.pull()  # the critic, pushed by the flow after training
    return critic_at(ctx.run_dir / "critic").score(table), where()


def critic_at(path: Any) -> Any:
    """The critic saved at `path`, loaded once per process (its encoder stays warm)."""
    from pathlib import Path

    from synthkd.critics import Critic

    path = Path(path)
    stamp = f"{path}:{(path / 'critic.json').stat().st_mtime_ns}"
    if stamp not in _CRITICS:
        _CRITICS.clear()
        _CRITICS[stamp] = Critic.load(path)
    return _CRITICS[stamp]


def score_round(ctx: RunContext, round: int) -> dict[str, Any]:
    """The loop's scoring step; on a cluster every worker scores a partition."""
    import numpy as np
    import pyarrow as pa

    from synthkd.critics import Critic, apply_critic
    from synthkd.stages import critic as critic_stage
    from synthkd.stages.generate import round_seconds

    with cluster() as client:
        if client is None:
            return critic_stage.score_round(ctx, round)
        started = time.perf_counter()
        ctx.sync()  # object storage: workers elsewhere pull the critic from the store
        critic = Critic.load(ctx.run_dir / "critic")
        store = ctx.stores().corpus
        table = store.read()
        if table.num_rows == 0:
            return critic_stage.score_round(ctx, round)
        done = fan_out(client, _score_part, slices(table, len(workers(client))), ctx.identity())
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s, _ in done])
    scored = apply_critic(critic, table, ctx.critic_config(), scores=scores)
    frame = pa.table(
        {
            "id": [r["id"] for r in scored],
            "critic_score": [r["critic_score"] for r in scored],
            "accepted": [r["accepted"] for r in scored],
        }
    )
    store.update_scores(
        frame,
        critic.version,
        f"critic score round {round}: {critic.version}",
        threshold=critic.threshold,
    )
    return {
        "scored": len(scored),
        "accepted": sum(1 for row in scored if row["accepted"]),
        "threshold": critic.threshold,
        "seconds": round_seconds(started),
        "workers": [place for _, place in done],
    }
