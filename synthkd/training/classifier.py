"""The MiniLM student: a BERT-family encoder with a LoRA adapter and a fully trained head.

Trained with the transformers Trainer (seeded, linear warm-up/decay, early stopping on
validation macro-F1); served with the adapter merged into the weights, sorted batches
and dynamic padding, because the student exists to be fast.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    set_seed,
)

from synthkd.assets import cpu_threads, minilm_dir
from synthkd.errors import SynthkdError
from synthkd.training._examples import LabelledExamples
from synthkd.training._files import refuse_pickle_only, require_model_dir
from synthkd.training._hf_training import (
    classification_metrics,
    forward_batches,
    quiet_transformers,
    silence_default_callbacks,
    soft_cross_entropy,
    trainer_callbacks,
    training_arguments,
)
from synthkd.training.config import StudentConfig

ADAPTER_DIR = "adapter"


def resolve_base_model(base_model: str | None) -> Path:
    """The encoder to fine-tune: the user's local directory, or the shipped MiniLM."""
    return require_model_dir(base_model or minilm_dir(), "student.base_model")


def _head_modules(model: PreTrainedModel) -> list[str]:
    """The classification head, trained in full: the new classifier (and BERT's pooler)."""
    names = {name.split(".")[-1] for name, _ in model.named_modules()}
    return [name for name in ("pooler", "classifier", "score") if name in names]


def _base_classifier(base: Path, labels: list[str]) -> PreTrainedModel:
    quiet_transformers()
    return AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        use_safetensors=True,
    )


def _encode(tokenizer: Any, texts: list[str], targets: list[list[float]], max_length: int):
    dataset = Dataset.from_dict({"text": texts, "labels": targets})
    return dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
    )


def train_minilm(
    config: StudentConfig,
    train: LabelledExamples,
    validation: LabelledExamples,
    labels: list[str],
    target: Path,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune with LoRA, keep the best epoch, save adapter and tokenizer into `target`."""
    base = resolve_base_model(config.base_model)
    set_seed(config.seed)
    torch.set_num_threads(cpu_threads())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = _base_classifier(base, labels)
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        modules_to_save=_head_modules(model),
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:  # e.g. target_modules naming no module of this model
        raise SynthkdError(f"student.target_modules: {' '.join(str(exc).split())}") from exc
    trainable, total = model.get_nb_trainable_parameters()
    train_ds = _encode(
        tokenizer, train.texts, train.targets(labels, config.use_soft_labels), config.max_length
    )
    val_ds = _encode(
        tokenizer, validation.texts, validation.targets(labels, False), config.max_length
    )
    # evaluated every epoch: length-sorted batches pad least (the order changes no metric)
    lengths = [len(ids) for ids in val_ds["input_ids"]]
    val_ds = val_ds.select(sorted(range(len(lengths)), key=lengths.__getitem__))
    callbacks = trainer_callbacks(config, "MiniLM student", progress)
    with tempfile.TemporaryDirectory(prefix="synthkd-ckpt-") as checkpoints:
        trainer = Trainer(
            model=model,
            args=training_arguments(
                config, checkpoints, metric="macro_f1", train_examples=len(train_ds)
            ),
            train_dataset=train_ds,
            eval_dataset=val_ds,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=classification_metrics,
            compute_loss_func=soft_cross_entropy,
            callbacks=callbacks,
        )
        silence_default_callbacks(trainer)
        outcome = trainer.train()
        history = [
            {"epoch": round(e["epoch"], 2), "val_macro_f1": e["eval_macro_f1"]}
            for e in trainer.state.log_history
            if "eval_macro_f1" in e
        ]
    model.save_pretrained(target / ADAPTER_DIR)
    tokenizer.save_pretrained(target)
    # the validation figures are the saved student's, evaluated as a user loads it
    # (`train_student`), not a second Trainer pass over the same examples
    return {
        "best_val_macro_f1_in_training": trainer.state.best_metric,
        "train_loss": float(outcome.training_loss),
        "epochs_run": float(trainer.state.epoch or 0),
        "steps": int(trainer.state.global_step),
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "history": history,
        "trainer_args": trainer.args.to_dict(),
    }


class ClassifierStudent:
    """A MiniLM (or any encoder) classifier with its LoRA adapter merged in, ready to serve."""

    kind = "minilm"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        labels: list[str],
        max_length: int,
        path: Path | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.path = path
        torch.set_num_threads(cpu_threads())

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any]) -> ClassifierStudent:
        labels = manifest["labels"]
        max_length = int(manifest.get("config", {}).get("max_length", 128))
        if manifest.get("merged"):
            quiet_transformers()
            model = AutoModelForSequenceClassification.from_pretrained(
                require_model_dir(root, "merged student"), use_safetensors=True
            )
        else:
            adapter = root / ADAPTER_DIR
            if adapter.is_dir():
                refuse_pickle_only(adapter)
            if not (adapter / "adapter_model.safetensors").exists():
                raise SynthkdError(
                    f"{root} has no LoRA adapter ({ADAPTER_DIR}/adapter_model.safetensors)"
                )
            base = _base_classifier(resolve_base_model(manifest.get("base_model")), labels)
            model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(root)
        return cls(model, tokenizer, labels, max_length, path=root)

    @torch.inference_mode()
    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Label probabilities, one row per text; texts are batched by length (less padding)."""
        out = np.empty((len(texts), len(self.labels)), dtype=np.float64)
        for idx in forward_batches(texts, batch_size):
            batch = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            logits = self.model(**batch).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).numpy()
        return out

    def save_merged(self, target: Path) -> None:
        """A standalone model directory: no adapter, no base model needed to load it."""
        self.model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
