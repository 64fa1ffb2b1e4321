"""A contrastively tuned MiniLM + logistic head (SetFit-style) for tens of real examples.

A logistic head on frozen MiniLM embeddings can only draw lines in a space tuned for
generic sentence similarity. With 5-50 examples per label, first pulling same-label texts
together and pushing other labels apart (the whole encoder, a few epochs) and then fitting
the head separates the labels clearly better (SetFit, Tunstall et al. 2022). Every pair in
a batch is a training pair (supervised contrastive loss), so one epoch costs one forward
and backward pass per text: about a minute for a few hundred short texts on 2 CPU cores.

The student is a `FrozenHeadStudent` whose encoder is the tuned copy, saved beside it
(`encoder/`, safetensors), so `synthkd predict/evaluate` load it like any frozen student.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples
from synthkd.training._hf_training import forward_batches

if TYPE_CHECKING:
    import torch

ENCODER_DIR = "encoder"


@dataclass
class ContrastiveConfig:
    """How the encoder is tuned before the head is fitted."""

    epochs: int = 4
    """Passes over the training texts (each batch's every pair is a training pair)."""
    batch_size: int = 16
    """Texts per step; every same-label pair in it is a positive, every other a negative."""
    learning_rate: float = 3e-5
    """Peak AdamW learning rate (linear warm-up over 10% of steps, then linear decay)."""
    temperature: float = 0.1
    """Temperature of the supervised contrastive loss (lower: harder negatives count more)."""
    max_length: int = 96
    """Tokens per text while tuning and embedding (longer texts are cut)."""
    max_texts: int = 600
    """At most this many training texts tune the encoder (real first, then a random sample of
    the corpus); the head is fitted on all of them. Bounds the time on large corpora."""
    C: float = 1.0
    """Inverse regularisation of the logistic head (the tuned space separates the training
    texts easily; a smaller C keeps its probabilities honest)."""
    seed: int = 0
    """Seed of the batch order and of dropout."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.max_texts < 2:
            raise SynthkdError(
                "contrastive tuning needs epochs >= 1, batch_size >= 2, max_texts >= 2"
            )
        if self.learning_rate <= 0 or self.temperature <= 0 or self.C <= 0:
            raise SynthkdError("contrastive learning_rate, temperature and C must be positive")


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    mask = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


class TunedEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a (tuned) MiniLM; callable."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 96) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def load(cls, root: str | Path, max_length: int = 96) -> TunedEncoder:
        from transformers import AutoModel, AutoTokenizer

        from synthkd.training._hf_training import quiet_transformers

        quiet_transformers()
        root = Path(root)
        model = AutoModel.from_pretrained(root, use_safetensors=True)
        return cls(model, AutoTokenizer.from_pretrained(root), max_length)

    def save(self, root: str | Path) -> None:
        self.model.save_pretrained(root, safe_serialization=True)
        self.tokenizer.save_pretrained(root)

    def __call__(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        import torch

        from synthkd.assets import cpu_threads

        torch.set_num_threads(cpu_threads())
        with torch.inference_mode():
            return self._encode(list(texts), batch_size)

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for idx in forward_batches(texts, batch_size):
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            hidden = self.model(**batch).last_hidden_state
            out[idx] = _mean_pool(hidden, batch["attention_mask"]).numpy()
        return out


def _supcon(embeddings: torch.Tensor, classes: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over every pair of the batch."""
    import torch

    logits = embeddings @ embeddings.T / temperature
    n = len(classes)
    self_mask = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (classes[:, None] == classes[None, :]) & ~self_mask
    counts = positives.sum(1)
    anchors = counts > 0
    if not anchors.any():
        return embeddings.sum() * 0.0
    mean_log_prob = (log_prob * positives).sum(1)[anchors] / counts[anchors]
    return -mean_log_prob.mean()


def _batches(classes: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches; a last batch smaller than half a batch joins the one before."""
    order = rng.permutation(len(classes))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < batch_size // 2:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    return batches


def tune_encoder(
    texts: Sequence[str],
    classes: Sequence[int],
    *,
    config: ContrastiveConfig | None = None,
    base_model: str | Path | None = None,
) -> TunedEncoder:
    """A copy of MiniLM tuned so that same-class texts embed close together."""
    import torch
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    from synthkd.assets import cpu_threads
    from synthkd.training._hf_training import quiet_transformers
    from synthkd.training.classifier import resolve_base_model

    config = config or ContrastiveConfig()
    if len(set(classes)) < 2:
        raise SynthkdError("contrastive tuning needs examples of at least two labels")
    quiet_transformers()
    torch.set_num_threads(cpu_threads())
    torch.manual_seed(config.seed)
    root = resolve_base_model(str(base_model) if base_model else None)
    tokenizer = AutoTokenizer.from_pretrained(root)
    model = AutoModel.from_pretrained(root, use_safetensors=True)
    rng = np.random.default_rng(config.seed)
    targets = np.asarray(classes)
    steps = config.epochs * len(_batches(targets, config.batch_size, rng))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    model.train()
    for _ in range(config.epochs):
        for idx in _batches(targets, config.batch_size, rng):
            batch = tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=config.max_length,
                return_tensors="pt",
            )
            embeddings = _mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
            loss = _supcon(embeddings, torch.as_tensor(targets[idx]), config.temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
    return TunedEncoder(model, tokenizer, config.max_length)


def _tuning_set(train: LabelledExamples, real_count: int | None, config: ContrastiveConfig):
    """Indices of the texts that tune the encoder: every real one, then sampled corpus ones."""
    n = len(train)
    real = list(range(n - real_count, n)) if real_count is not None else list(range(n))
    rest = [i for i in range(n) if i not in set(real)]
    room = max(0, config.max_texts - len(real))
    if len(rest) > room:
        rest = sorted(np.random.default_rng(config.seed).choice(rest, room, replace=False))
    return (real + list(rest))[: max(config.max_texts, len(real))]


def contrastive_student(
    train: LabelledExamples,
    labels: list[str],
    *,
    config: ContrastiveConfig | None = None,
    base_model: str | Path | None = None,
    real_count: int | None = None,
) -> Any:
    """Tune MiniLM contrastively on `train`, then fit a logistic head on the tuned space.

    `real_count`: how many of `train`'s last examples are real (they always tune the
    encoder; corpus examples fill up to `max_texts`). Returns a `FrozenHeadStudent`
    carrying the tuned encoder (`.save(dir)` writes both).
    """
    from synthkd.training.frozen import FrozenHeadStudent, fit_head, full_weights

    config = config or ContrastiveConfig()
    start = time.perf_counter()
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(train.labels) - set(index))
    if unknown:
        raise SynthkdError(f"training labels outside the label set: {unknown}")
    chosen = _tuning_set(train, real_count, config)
    encoder = tune_encoder(
        [train.texts[i] for i in chosen],
        [index[train.labels[i]] for i in chosen],
        config=config,
        base_model=base_model,
    )
    features = encoder(train.texts)
    model = fit_head(features, train, labels, C=config.C)
    coef, intercept = full_weights(model, len(labels), features.shape[1])
    student = FrozenHeadStudent(labels, coef, intercept, embed=encoder)
    student.encoder = encoder
    student.trained = {
        "how": "contrastive",
        **asdict(config),
        "tuning_texts": len(chosen),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return student


__all__ = ["ContrastiveConfig", "TunedEncoder", "contrastive_student", "tune_encoder"]
