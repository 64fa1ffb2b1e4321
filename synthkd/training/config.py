"""The student's settings: the recipe's `student` section, field for field."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from synthkd.errors import SynthkdError

StudentKind = Literal["minilm", "linear", "generative"]
STUDENT_KINDS: tuple[str, ...] = ("minilm", "linear", "generative")


@dataclass
class StudentConfig:
    """How to train a student; flows build it with `StudentConfig(**recipe.student.model_dump())`.

    The names match the recipe's `student` section exactly, so a recipe value and a
    Python value mean the same thing.
    """

    kind: StudentKind = "minilm"
    """"minilm": MiniLM encoder + LoRA classifier; "linear": TF-IDF + logistic regression
    (the cheapest student); "generative": causal LM + LoRA for triples."""
    base_model: str | None = None
    """A local model directory (safetensors only). None: all-MiniLM-L6-v2 for "minilm",
    SmolLM2-135M-Instruct (converted from its GGUF once, then cached) for "generative";
    ignored by "linear"."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    lora_dropout: float = 0.1
    """Dropout on the LoRA branch during training."""
    target_modules: list[str] | None = None
    """Module names that get LoRA adapters; None: peft's default for the architecture
    (query/value projections for BERT and Llama)."""
    epochs: int = 4
    """Upper bound on passes over the corpus; early stopping may end sooner."""
    learning_rate: float = 5e-4
    """Peak learning rate (linear warm-up over the first 10% of steps, then linear decay)."""
    batch_size: int = 16
    """Training examples per optimizer step."""
    max_length: int = 128
    """Tokens kept per example (longer texts are truncated)."""
    seed: int = 0
    """Seed for weight init, shuffling, dropout and validation splits: same seed, same student."""
    early_stopping_patience: int = 2
    """Epochs without a better validation score (macro-F1; loss for "generative") before
    training stops; 0 runs every epoch. The best epoch is kept either way."""
    use_soft_labels: bool = True
    """Train on the teacher's label distribution (`soft_labels`) where a record carries it;
    False: always the hard `label`."""

    def __post_init__(self) -> None:
        if self.kind not in STUDENT_KINDS:
            raise SynthkdError(
                f"student.kind must be one of {', '.join(STUDENT_KINDS)}, not {self.kind!r}"
            )
        positive = {
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "max_length": self.max_length,
            "learning_rate": self.learning_rate,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SynthkdError(f"student.{name} must be positive, not {value}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SynthkdError(f"student.lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if self.early_stopping_patience < 0:
            raise SynthkdError("student.early_stopping_patience must be 0 or more")
        if self.target_modules is not None:
            self.target_modules = list(self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["STUDENT_KINDS", "StudentConfig", "StudentKind"]
