"""critics room: rule filters, near-duplicate removal, label sources and the trained critic.

Filters run first and reject with a named reason; the critic scores what is left and
keeps records above a threshold chosen for a target precision, per label when the
corpus must stay balanced. See docs/architecture.md.
"""

from synthkd.critics.config import CriticConfig

# Everything else is imported on first use (PEP 562): loading a recipe needs only the
# config, not sklearn, torch or cleanlab.
_LAZY = {
    "synthkd.critics.annotate": ("AnnotationSummary", "annotate"),
    "synthkd.critics.critic": ("Critic", "accept_mask", "apply_critic", "score"),
    "synthkd.critics.evidence": (
        "EmbeddingCache",
        "LabelEvidence",
        "LabelEvidenceConfig",
        "label_evidence",
    ),
    "synthkd.critics.encoder": ("SentenceEncoder",),
    "synthkd.critics.filters": ("FILTER_REASONS", "FilterResult", "apply_filters", "to_reject"),
    "synthkd.critics.judge": ("JUDGE_SAMPLING", "judge_labels", "judge_labels_async"),
    "synthkd.critics.labels": (
        "CriticLabel",
        "LabelSet",
        "auto_labels",
        "evidence_labels",
        "labels_from_file",
        "seeds_from_file",
    ),
    "synthkd.critics.partitioned": (
        "Signatures",
        "concat_signatures",
        "dedup_with_signatures",
        "fill_embeddings",
        "filter_signatures",
    ),
    "synthkd.critics.pool": ("label_pool",),
    "synthkd.critics.training": ("train_critic",),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'synthkd.critics' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "FILTER_REASONS",
    "JUDGE_SAMPLING",
    "AnnotationSummary",
    "Critic",
    "CriticConfig",
    "CriticLabel",
    "EmbeddingCache",
    "FilterResult",
    "LabelEvidence",
    "LabelEvidenceConfig",
    "LabelSet",
    "SentenceEncoder",
    "accept_mask",
    "annotate",
    "apply_critic",
    "apply_filters",
    "auto_labels",
    "evidence_labels",
    "judge_labels",
    "judge_labels_async",
    "label_evidence",
    "label_pool",
    "labels_from_file",
    "score",
    "seeds_from_file",
    "to_reject",
    "train_critic",
]
