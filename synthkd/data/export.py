"""Export a corpus version as an HF `datasets` DatasetDict (Parquet shards + card); publish it.

The exported folder is exactly what goes to the Hub: `data/<split>-0000i-of-0000n.parquet`
and a README.md whose YAML `configs` point `datasets.load_dataset(folder)` at the shards.
The folder appears complete or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import Progress

from synthkd.data.card import build_card
from synthkd.data.io import staged_dir
from synthkd.data.run import RunStore, acceptance_by_round
from synthkd.data.store import CorpusStore
from synthkd.errors import SynthkdError

if TYPE_CHECKING:  # datasets costs a second to import; only exports need it
    import datasets

_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
DEFAULT_SPLITS = {"train": 1.0}


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it holds."""

    path: Path
    version: int
    split_rows: dict[str, int]
    files: list[Path]
    url: str | None = None
    """The Hub URL, for a published dataset."""


def parse_splits(spec: str) -> dict[str, float]:
    """'train=0.9,validation=0.1' -> {'train': 0.9, 'validation': 0.1}; fractions sum to 1."""
    splits: dict[str, float] = {}
    for part in (spec or "").split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise SynthkdError(
                f"malformed --split {spec!r}: expected NAME=FRACTION,... "
                "like train=0.9,validation=0.1"
            )
        try:
            fraction = float(value)
        except ValueError:
            raise SynthkdError(
                f"malformed --split {spec!r}: {value.strip()!r} is not a number"
            ) from None
        if not 0 < fraction <= 1 or not math.isfinite(fraction):
            raise SynthkdError(f"malformed --split {spec!r}: fraction of {name} must be in (0, 1]")
        if name in splits:
            raise SynthkdError(f"malformed --split {spec!r}: split {name} is named twice")
        splits[name] = fraction
    _check_fractions(splits, spec)
    return splits


def _check_fractions(splits: Mapping[str, float], spec: object) -> None:
    if not splits:
        raise SynthkdError("no splits given")
    if not math.isclose(sum(splits.values()), 1.0, abs_tol=1e-6):
        raise SynthkdError(
            f"malformed --split {spec!r}: fractions sum to {sum(splits.values()):g}, not 1"
        )


def _split_sizes(rows: int, splits: Mapping[str, float]) -> dict[str, int]:
    sizes, start, cumulative = {}, 0, 0.0
    for name, fraction in splits.items():
        cumulative += fraction
        end = round(rows * min(cumulative, 1.0))
        sizes[name] = end - start
        start = end
    last = list(splits)[-1]
    sizes[last] += rows - start
    return sizes


def _open(corpus: CorpusStore | RunStore | str | Path) -> RunStore:
    if isinstance(corpus, RunStore):
        return corpus
    if isinstance(corpus, CorpusStore):
        return RunStore.open(corpus.uri, corpus.storage_options)
    return RunStore.open(corpus)


def export_dataset(
    corpus: CorpusStore | RunStore | str | Path,
    out_dir: str | Path,
    *,
    version: int | None = None,
    splits: Mapping[str, float] | None = None,
    seed: int = 0,
    license: str = "other",
    pretty_name: str | None = None,
    rows_per_shard: int = 500_000,
    overwrite: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Write `version` of a corpus as Parquet shards per split plus a dataset card.

    Rows are shuffled with `seed` before splitting, so the same seed gives the same
    splits. `out_dir` must be absent or empty unless `overwrite`.
    """
    splits = dict(splits or DEFAULT_SPLITS)
    for name in splits:
        if not _SPLIT_NAME.match(name):
            raise SynthkdError(f"invalid split name {name!r}")
    _check_fractions(splits, ",".join(f"{k}={v}" for k, v in splits.items()))
    run = _open(corpus)
    store = run.corpus
    target = Path(out_dir).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise SynthkdError(
            f"{out_dir} already exists and is not empty (use --overwrite to replace it)"
        )
    version = store.version() if version is None else version
    table = store.read(version)
    history = [v for v in store.versions() if v.version <= version]
    threshold = next(
        (
            v.metadata["critic_threshold"]
            for v in reversed(history)
            if "critic_threshold" in v.metadata
        ),
        None,
    )
    rejects = run.rejects.read(columns=["round"]) if run.rejects is not None else None
    acceptance = acceptance_by_round(table.select(["round", "accepted"]), rejects)

    sizes = _split_sizes(table.num_rows, splits)
    with staged_dir(target) as staging:
        with _quiet_datasets():
            dataset_dict = _split(table, sizes, seed)
            files = _write_shards(dataset_dict, staging, rows_per_shard, progress)
        names = [f.relative_to(staging) for f in files]
        card = build_card(
            table,
            kind=store.kind,
            version=version,
            split_rows=sizes,
            history=history,
            acceptance=acceptance,
            group_column=store.group_column,
            license=license,
            pretty_name=pretty_name,
            critic_threshold=threshold,
        )
        card.save(staging / "README.md")
    return ExportResult(
        path=target,
        version=version,
        split_rows=sizes,
        files=[target / name for name in names] + [target / "README.md"],
    )


def _split(table, sizes: Mapping[str, int], seed: int) -> datasets.DatasetDict:
    import datasets

    shuffled = datasets.Dataset(table).shuffle(seed=seed)
    dataset_dict, start = datasets.DatasetDict(), 0
    for name, size in sizes.items():
        dataset_dict[name] = shuffled.select(range(start, start + size))
        start += size
    return dataset_dict


@contextlib.contextmanager
def _quiet_datasets():
    """datasets' own per-step bars would interleave with ours; mute them for the export."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def _write_shards(
    dataset_dict: datasets.DatasetDict, root: Path, rows_per_shard: int, progress: bool
) -> list[Path]:
    (root / "data").mkdir()
    plan = []
    for name, split in dataset_dict.items():
        shards = max(1, math.ceil(len(split) / rows_per_shard))
        plan += [(name, split, index, shards) for index in range(shards)]
    files = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("writing Parquet shards", total=len(plan))
        for name, split, index, shards in plan:
            path = root / "data" / f"{name}-{index:05d}-of-{shards:05d}.parquet"
            split.shard(num_shards=shards, index=index, contiguous=True).to_parquet(str(path))
            files.append(path)
            bar.advance(task)
    return files


def publish_dataset(
    corpus: CorpusStore | RunStore | str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = True,
    version: int | None = None,
    splits: Mapping[str, float] | None = None,
    seed: int = 0,
    license: str = "other",
    pretty_name: str | None = None,
    out_dir: str | Path | None = None,
) -> ExportResult:
    """Export (as `export_dataset`) and upload the folder to the Hub as a dataset repo.

    The token comes from `token` or HF_TOKEN and never appears in messages. Without a
    token, or with the Hub unreachable, one SynthkdError says so.
    """
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise SynthkdError(f"invalid --repo-id {repo_id!r}: expected ORG/NAME")
    token = token or os.environ.get("HF_TOKEN")
    if not token:
        raise SynthkdError("no Hugging Face token: set HF_TOKEN to publish (nothing was pushed)")
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        raise SynthkdError(
            "cannot reach the Hugging Face Hub: offline mode is on "
            "(set HF_HUB_OFFLINE=0 to publish)"
        )
    with tempfile.TemporaryDirectory(prefix="synthkd-publish-") as scratch:
        folder = Path(out_dir) if out_dir is not None else Path(scratch) / "dataset"
        result = export_dataset(
            corpus,
            folder,
            version=version,
            splits=splits,
            seed=seed,
            license=license,
            pretty_name=pretty_name,
            overwrite=out_dir is None,
        )
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=str(folder),
                commit_message=f"synthkd corpus version {result.version}",
            )
        except Exception as exc:  # network, auth, permissions: one line, token scrubbed
            text = " ".join(str(exc).split()).replace(token, "***")[:300]
            raise SynthkdError(
                f"could not publish to {repo_id}: {text or type(exc).__name__}"
            ) from None
    return ExportResult(result.path, result.version, result.split_rows, result.files, str(url))
