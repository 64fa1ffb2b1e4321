"""The student's settings; this class is also the recipe's `student` section."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from synthkd.config import Settings, settings

StudentKind = Literal["minilm", "linear", "generative"]
STUDENT_KINDS: tuple[str, ...] = ("minilm", "linear", "generative")


@settings("student")
class StudentConfig(Settings):
    """How to train a student; a recipe value and a Python value mean the same thing."""

    kind: StudentKind = field(
        default="minilm",
        metadata={
            "help": '"minilm": MiniLM encoder + LoRA classifier; "linear": TF-IDF + logistic '
            'regression (the cheapest student); "generative": causal LM + LoRA for triples.'
        },
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "A local model directory (safetensors only), relative to the recipe. "
            'None: all-MiniLM-L6-v2 for "minilm", SmolLM2-135M-Instruct for "generative"; '
            'ignored by "linear".'
        },
    )
    lora_r: Annotated[int, Field(ge=1, le=1024)] = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: Annotated[int, Field(ge=1, le=4096)] = field(
        default=16,
        metadata={"help": "LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."},
    )
    lora_dropout: Annotated[float, Field(ge=0, lt=1)] = field(
        default=0.1, metadata={"help": "Dropout on the LoRA branch during training."}
    )
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names that get LoRA adapters; None: peft's default for the "
            "architecture (query/value projections for BERT and Llama)."
        },
    )
    epochs: Annotated[int, Field(ge=1, le=1000)] = field(
        default=4,
        metadata={"help": "Upper bound on passes over the corpus; early stopping may end sooner."},
    )
    learning_rate: Annotated[float, Field(gt=0, le=10)] = field(
        default=5e-4,
        metadata={
            "help": "Peak learning rate (linear warm-up over the first 10% of steps, then "
            "linear decay)."
        },
    )
    min_steps: Annotated[int, Field(ge=0, le=1_000_000)] = field(
        default=0,
        metadata={
            "help": "Fewest optimizer steps: a small corpus gets more passes than `epochs` "
            "(a new head and a LoRA adapter learn little in a dozen steps); early stopping "
            "may still end sooner. 0: exactly `epochs`."
        },
    )
    batch_size: Annotated[int, Field(ge=1, le=65536)] = field(
        default=16, metadata={"help": "Training examples per optimizer step."}
    )
    max_length: Annotated[int, Field(ge=8, le=8192)] = field(
        default=128, metadata={"help": "Tokens kept per example (longer texts are truncated)."}
    )
    seed: int = field(
        default=0,
        metadata={
            "help": "Seed for weight init, shuffling, dropout and validation splits: same "
            "seed, same student."
        },
    )
    early_stopping_patience: Annotated[int, Field(ge=0, le=1000)] = field(
        default=2,
        metadata={
            "help": 'Epochs without a better validation score (macro-F1; loss for "generative") '
            "before training stops; 0 runs every epoch. The best epoch is kept either way (unless "
            "select_best_epoch is off)."
        },
    )
    select_best_epoch: bool = field(
        default=True,
        metadata={
            "help": "Score validation after every epoch, keep the best epoch and stop early "
            "(early_stopping_patience). False: train the whole schedule and keep the last "
            "epoch: one validation pass instead of one per epoch, and a validation score "
            "that no choice was made on."
        },
    )
    use_soft_labels: bool = field(
        default=True,
        metadata={
            "help": "Train on the teacher's label distribution (`soft_labels`) where a record "
            "carries it; False: always the hard `label`."
        },
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentConfig:
        """From a saved config (e.g. a student card), ignoring names this version lacks."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["STUDENT_KINDS", "StudentConfig", "StudentKind"]
