"""The critic option for when labels are plentiful: MiniLM fine-tuned with LoRA (peft,
SEQ_CLS) as a cross-encoder that reads both sides of a record together.

It sees word-level interactions the frozen embeddings average away, but it needs
thousands of labels and minutes of training. Saved as a peft adapter (safetensors) plus
its Platt calibration in JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from synthkd.assets import minilm_dir
from synthkd.critics.encoder import configure_torch_threads
from synthkd.critics.progress import progress_bar
from synthkd.errors import SynthkdError

EPOCHS = 3
MIN_STEPS = 200
"""Fewest optimizer steps: small label sets get more epochs, or LoRA barely moves."""
LEARNING_RATE = 1e-3
BATCH_SIZE = 16
MAX_LENGTH = 160
CALIBRATION_SHARE = 0.2
"""Share of the training labels kept aside to calibrate the scores and choose the threshold."""


def _load(base_dir: str | None):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a local load: "Loading weights" bars are noise
    path = Path(base_dir) if base_dir is not None else minilm_dir()
    if not (path / "config.json").exists():
        raise SynthkdError(f"cross-encoder base model directory has no config.json: {path}")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, local_files_only=True
    )
    return tokenizer, model


class CrossEncoderHead:
    """A LoRA-adapted cross-encoder whose logit is Platt-scaled to P(acceptable)."""

    def __init__(self, tokenizer, model, platt_a: float, platt_b: float) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.platt_a = platt_a
        self.platt_b = platt_b

    @classmethod
    def fit(
        cls,
        left: Sequence[str],
        right: Sequence[str],
        y: np.ndarray,
        base_dir: str | None = None,
        seed: int = 0,
        progress: bool = False,
        steps: int | None = None,
    ) -> tuple[CrossEncoderHead, np.ndarray, np.ndarray]:
        """Train on most labels, calibrate on the rest; returns the head and the
        calibration split's scores and labels (where the threshold is chosen).

        `steps`: optimizer steps; None means EPOCHS epochs but at least MIN_STEPS."""
        import torch
        from peft import LoraConfig, TaskType, get_peft_model

        configure_torch_threads()
        torch.manual_seed(seed)
        index = np.arange(len(y))
        fit_idx, cal_idx = train_test_split(
            index, test_size=CALIBRATION_SHARE, stratify=y, random_state=seed
        )
        tokenizer, base = _load(base_dir)
        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=8,
            lora_alpha=16,
            lora_dropout=0.1,
            target_modules=["query", "value"],
        )
        model = get_peft_model(base, config)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE
        )
        y_fit = y[fit_idx].astype(np.float32)
        positive_weight = torch.tensor((len(y_fit) - y_fit.sum()) / max(y_fit.sum(), 1.0))
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=positive_weight)
        rng = np.random.default_rng(seed)
        per_epoch = int(np.ceil(len(fit_idx) / BATCH_SIZE))
        if steps is None:
            steps = max(EPOCHS * per_epoch, MIN_STEPS)
        epochs = int(np.ceil(steps / per_epoch))
        head = cls(tokenizer, model, 1.0, 0.0)
        steps_done = 0
        with progress_bar("training LoRA critic", steps, progress) as advance:
            for _ in range(epochs):
                model.train()
                order = rng.permutation(fit_idx)
                for start in range(0, len(order), BATCH_SIZE):
                    if steps_done == steps:
                        break
                    steps_done += 1
                    batch = order[start : start + BATCH_SIZE]
                    inputs = head._tokenize([left[i] for i in batch], [right[i] for i in batch])
                    logits = model(**inputs).logits.squeeze(-1)
                    loss = loss_fn(logits, torch.tensor(y[batch], dtype=torch.float32))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    advance(1)
        model.eval()
        logits = head.logits([left[i] for i in cal_idx], [right[i] for i in cal_idx])
        platt = LogisticRegression(C=1e4).fit(logits.reshape(-1, 1), y[cal_idx])
        head.platt_a = float(-platt.coef_[0, 0])
        head.platt_b = float(-platt.intercept_[0])
        return head, head._calibrate(logits), y[cal_idx]

    def _tokenize(self, left: Sequence[str], right: Sequence[str]):
        return self.tokenizer(
            list(left),
            list(right),
            padding=True,
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )

    def logits(
        self,
        left: Sequence[str],
        right: Sequence[str],
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        import torch

        out = np.zeros(len(left), dtype=np.float64)
        order = sorted(range(len(left)), key=lambda i: len(left[i]) + len(right[i]))
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                batch = order[start : start + 64]
                inputs = self._tokenize([left[i] for i in batch], [right[i] for i in batch])
                out[batch] = self.model(**inputs).logits.squeeze(-1).double().numpy()
                if on_batch is not None:
                    on_batch(len(batch))
        return out

    def _calibrate(self, logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(self.platt_a * logits + self.platt_b))

    def predict(
        self,
        left: Sequence[str],
        right: Sequence[str],
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """P(acceptable) of each (left, right) pair."""
        return self._calibrate(self.logits(left, right, on_batch))

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        (directory / "calibration.json").write_text(
            json.dumps({"platt_a": self.platt_a, "platt_b": self.platt_b}) + "\n"
        )

    @classmethod
    def load(cls, directory: Path, base_dir: str | None = None) -> CrossEncoderHead:
        from peft import PeftModel

        if not (directory / "adapter_config.json").is_file():
            raise SynthkdError(f"critic directory has no LoRA adapter: {directory}")
        configure_torch_threads()
        tokenizer, base = _load(base_dir)
        model = PeftModel.from_pretrained(base, directory).eval()
        calibration = json.loads((directory / "calibration.json").read_text())
        return cls(tokenizer, model, calibration["platt_a"], calibration["platt_b"])

    def fingerprint(self) -> bytes:
        weights = [p.detach().numpy().tobytes() for p in self.model.parameters() if p.requires_grad]
        return b"".join(weights) + repr((self.platt_a, self.platt_b)).encode()
