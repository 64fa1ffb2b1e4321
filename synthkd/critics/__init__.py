"""critics room: rule filters, near-duplicate removal, label sources and the trained critic.

Filters run first and reject with a named reason; the critic scores what is left and
keeps records above a threshold chosen for a target precision, per label when the
corpus must stay balanced. See docs/architecture.md.
"""

from synthkd.critics.annotate import AnnotationSummary, annotate
from synthkd.critics.config import CriticConfig
from synthkd.critics.critic import Critic, accept_mask, apply_critic, score
from synthkd.critics.evidence import (
    EmbeddingCache,
    LabelEvidence,
    LabelEvidenceConfig,
    label_evidence,
)
from synthkd.critics.filters import FILTER_REASONS, FilterResult, apply_filters, to_reject
from synthkd.critics.judge import JUDGE_SAMPLING, judge_labels, judge_labels_async
from synthkd.critics.labels import (
    CriticLabel,
    LabelSet,
    auto_labels,
    labels_from_file,
    seeds_from_file,
)
from synthkd.critics.pool import label_pool
from synthkd.critics.training import train_critic

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
    "accept_mask",
    "annotate",
    "apply_critic",
    "apply_filters",
    "auto_labels",
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
