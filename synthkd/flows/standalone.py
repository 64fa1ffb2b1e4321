"""The stages of `distill` as flows of their own, for users who run one stage at a time."""

from __future__ import annotations

from typing import Any

from prefect import flow

from synthkd import stages
from synthkd.flows.steps import (
    filter_round,
    fit_critic,
    fit_student,
    generate_round,
    score_corpus,
)


def _context(recipe: str, out_dir: str | None, teacher: str | None = None) -> dict[str, Any]:
    """The identity the tasks take; the recipe and its files are checked here, once."""
    return stages.remember(stages.open_context(recipe, out_dir, teacher=teacher)).identity()


@flow(name="generate-corpus")
def generate_corpus(
    recipe: str, out_dir: str | None = None, teacher: str | None = None, round: int = 0
) -> dict[str, Any]:
    """Generate one round of records into OUT_DIR/corpus (rejects beside)."""
    return generate_round(_context(recipe, out_dir, teacher), round)


@flow(name="filter-corpus")
def filter_corpus(recipe: str, out_dir: str | None = None, round: int = 0) -> dict[str, Any]:
    """Rule filters and dedup over one round of the corpus."""
    return filter_round(_context(recipe, out_dir), round)


@flow(name="train-critic")
def train_critic(recipe: str, out_dir: str | None = None, round: int = 0) -> dict[str, Any]:
    """Train the critic and score the corpus with it (a new corpus version)."""
    ctx = _context(recipe, out_dir)
    critic = fit_critic(ctx)
    return {"critic": critic, "scores": score_corpus(ctx, round, critic["version"])}


@flow(name="train-student")
def train_student(
    recipe: str, out_dir: str | None = None, round: int = 0, use_cut: bool = True
) -> dict[str, Any]:
    """Train and evaluate a student on the corpus up to ROUND."""
    return fit_student(_context(recipe, out_dir), round, use_cut, "student")


@flow(name="publish-corpus")
def publish_corpus(
    corpus: str,
    to: str | None = None,
    repo_id: str | None = None,
    version: int | None = None,
    splits: dict[str, float] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a corpus as a datasets DatasetDict with a card; push it when REPO_ID is given."""
    from synthkd.data import export_dataset, publish_dataset

    if repo_id:
        result = publish_dataset(
            corpus, repo_id, version=version, splits=splits, seed=seed, out_dir=to
        )
    else:
        result = export_dataset(
            corpus, to or f"{corpus}-export", version=version, splits=splits, seed=seed
        )
    return {
        "path": str(result.path),
        "version": result.version,
        "splits": result.split_rows,
        "url": result.url,
    }
