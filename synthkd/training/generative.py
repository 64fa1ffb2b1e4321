"""The generative student: a causal LM with a LoRA adapter that writes triples.

Trained on COMET-style lines ("head relation [GEN] tail") or document chunks followed by
their triples; the loss covers only the completion after [GEN]. The default base,
SmolLM2-135M-Instruct, ships as a GGUF file; transformers dequantizes it once (a minute
or two on 2 cores) and a safetensors copy is kept in synthkd's cache.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Trainer,
    set_seed,
)

from synthkd.assets import SMOLLM2_MODEL_NAME, cache_dir, cache_lock, cpu_threads, smollm2_gguf_path
from synthkd.errors import SynthkdError
from synthkd.training._files import (
    atomic_dir,
    now_utc,
    refuse_pickle_only,
    require_model_dir,
    write_json,
    write_model_card,
)
from synthkd.training._hf_training import (
    quiet_transformers,
    silence_default_callbacks,
    trainer_callbacks,
    training_arguments,
)
from synthkd.training._triples import TripleExample, match_scores, triple_examples
from synthkd.training.config import StudentConfig
from synthkd.training.result import TrainResult

ADAPTER_DIR = "adapter"
EVAL_LIMIT = 64


def smollm2_base_dir() -> Path:
    """SmolLM2-135M-Instruct as a safetensors model directory, converted from GGUF once."""
    target = cache_dir() / "hf" / SMOLLM2_MODEL_NAME
    if _converted(target):
        return target
    with cache_lock(SMOLLM2_MODEL_NAME):
        if not _converted(target):  # another process may have converted it meanwhile
            _convert_smollm2(target)
    return target


def _converted(target: Path) -> bool:
    return (target / "config.json").exists() and any(target.glob("*.safetensors"))


def _convert_smollm2(target: Path) -> None:
    gguf = smollm2_gguf_path()
    quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are plain float32 now; drop the GGUF marker so they save as safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def resolve_generative_base(base_model: str | None) -> Path:
    return require_model_dir(base_model or smollm2_base_dir(), "student.base_model")


def _load_tokenizer(path: Path) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _encode(tokenizer: Any, examples: list[TripleExample], max_length: int) -> Dataset:
    """Prompt tokens are context only (label -100); the target and EOS are learned."""
    rows: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for example in examples:
        prompt = tokenizer(example.prompt)["input_ids"]
        for target in example.targets:
            completion = tokenizer(" " + target, add_special_tokens=False)["input_ids"]
            completion = (completion + [tokenizer.eos_token_id])[: max(1, max_length // 2)]
            # too long: the prompt loses its start, never its end ([GEN]) or the target
            context = prompt[-(max_length - len(completion)) :]
            ids = context + completion
            labels = [-100] * len(context) + completion
            rows["input_ids"].append(ids)
            rows["attention_mask"].append([1] * len(ids))
            rows["labels"].append(labels)
    return Dataset.from_dict(rows)


def _split(
    examples: list[TripleExample], seed: int
) -> tuple[list[TripleExample], list[TripleExample]]:
    """Hold out whole prompts (never one tail of a prompt the student trains on)."""
    if len(examples) < 2:
        raise SynthkdError(
            "the training corpus has a single prompt: too few to hold out validation"
        )
    shuffled = examples[:]
    random.Random(seed).shuffle(shuffled)
    n_val = max(1, round(0.1 * len(shuffled)))
    return shuffled[n_val:], shuffled[:n_val]


@dataclass
class GenerationReport:
    """How close generated completions are to held-out references."""

    examples: int
    exact_match: float
    token_f1: float
    examples_per_s: float
    samples: list[dict[str, Any]]
    """A few (prompt, generated, references) for a person to read."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GenerativeStudent:
    """A causal LM with its LoRA adapter merged, generating the text after [GEN]."""

    kind = "generative"

    def __init__(self, model: Any, tokenizer: Any, max_length: int, path: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"  # a long prompt keeps its end: "... [GEN]"
        self.max_length = max_length
        self.path = path
        self.labels: list[str] = []
        torch.set_num_threads(cpu_threads())

    @classmethod
    def load(cls, root: Path, manifest: dict[str, Any]) -> GenerativeStudent:
        quiet_transformers()
        max_length = int(manifest.get("config", {}).get("max_length", 128))
        if manifest.get("merged"):
            model = AutoModelForCausalLM.from_pretrained(
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
            base = resolve_generative_base(manifest.get("base_model"))
            model = AutoModelForCausalLM.from_pretrained(base, use_safetensors=True)
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        return cls(model, _load_tokenizer(root), max_length, path=root)

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        *,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.95,
        max_new_tokens: int = 32,
        batch_size: int = 16,
        seed: int = 0,
    ) -> list[str]:
        """The completion of each prompt (beam search, greedy, or sampling), first line only."""
        set_seed(seed)
        out: list[str] = []
        for start in range(0, len(prompts), batch_size):
            batch = self.tokenizer(
                prompts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            options: dict[str, Any] = {"num_beams": num_beams, "do_sample": do_sample}
            if do_sample:
                options.update(temperature=temperature, top_p=top_p)
            generated = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **options,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
                out.append(text.strip().split("\n")[0].strip())
        return out

    def save_merged(self, target: Path) -> None:
        self.model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)


def evaluate_generation(
    student: GenerativeStudent,
    data: Any,
    *,
    num_beams: int = 1,
    limit: int | None = None,
    max_new_tokens: int = 32,
) -> GenerationReport:
    """Exact match and token-F1 of generated completions against held-out triples."""
    if isinstance(data, list) and data and isinstance(data[0], TripleExample):
        examples = data
    else:
        _, examples = triple_examples(data, what="the evaluation set")
    examples = examples[:limit] if limit else examples
    start = time.perf_counter()
    predictions = student.generate(
        [e.prompt for e in examples], num_beams=num_beams, max_new_tokens=max_new_tokens
    )
    elapsed = time.perf_counter() - start
    scores = [match_scores(p, e.targets) for p, e in zip(predictions, examples, strict=True)]
    samples = [
        {"prompt": e.prompt, "generated": p, "references": e.targets[:3]}
        for p, e in list(zip(predictions, examples, strict=True))[:5]
    ]
    return GenerationReport(
        examples=len(examples),
        exact_match=sum(s[0] for s in scores) / len(scores),
        token_f1=sum(s[1] for s in scores) / len(scores),
        examples_per_s=len(examples) / elapsed if elapsed > 0 else float("inf"),
        samples=samples,
    )


def _train(config, base, train, validation, staging, progress) -> dict[str, Any]:
    set_seed(config.seed)
    torch.set_num_threads(cpu_threads())
    quiet_transformers()
    tokenizer = _load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, use_safetensors=True, dtype=torch.float32)
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise SynthkdError(f"student.target_modules: {' '.join(str(exc).split())}") from exc
    callbacks = trainer_callbacks(config, "generative student", progress)
    with tempfile.TemporaryDirectory(prefix="synthkd-ckpt-") as checkpoints:
        train_ds = _encode(tokenizer, train, config.max_length)
        args = training_arguments(
            config,
            checkpoints,
            metric="eval_loss",
            greater_is_better=False,
            train_examples=len(train_ds),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=_encode(tokenizer, validation, config.max_length),
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        silence_default_callbacks(trainer)
        outcome = trainer.train()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        best = trainer.evaluate()
    model.save_pretrained(staging / ADAPTER_DIR)
    tokenizer.save_pretrained(staging)
    return {
        "train_loss": float(outcome.training_loss),
        "first_loss": float(losses[0]) if losses else None,
        "last_loss": float(losses[-1]) if losses else None,
        "losses": [float(x) for x in losses],
        "val_loss": float(best["eval_loss"]),
        "epochs_run": float(trainer.state.epoch or 0),
        "steps": int(trainer.state.global_step),
    }


def train_generative(
    config: StudentConfig,
    train: Any,
    validation: Any | None,
    out_dir: str | Path,
    *,
    progress: bool = True,
):
    """Train, save (all or nothing) and score the generative student on held-out prompts."""
    start = time.perf_counter()
    layout, train_ex = triple_examples(train, what="the training corpus")
    if validation is None:
        train_ex, val_ex = _split(train_ex, config.seed)
    else:
        _, val_ex = triple_examples(validation, what="the validation set")
    base = resolve_generative_base(config.base_model)
    target = Path(out_dir)
    with atomic_dir(target) as staging:
        facts = _train(config, base, train_ex, val_ex, staging, progress)
        manifest = {
            "kind": "generative",
            "layout": layout,
            "labels": [],
            "base_model": config.base_model,
            "base_model_name": None if config.base_model else f"{SMOLLM2_MODEL_NAME} (GGUF)",
            "config": config.to_dict(),
            "created_at": now_utc(),
            "train_examples": sum(len(e.targets) for e in train_ex),
            "validation_examples": sum(len(e.targets) for e in val_ex),
        }
        write_json(staging / "student.json", manifest)
        student = GenerativeStudent.load(staging, manifest)
        report = evaluate_generation(student, val_ex, limit=EVAL_LIMIT)
        write_json(staging / "evaluation.json", report.to_dict())
        metrics = {
            **{k: v for k, v in facts.items() if k != "losses"},
            "val_exact_match": report.exact_match,
            "val_token_f1": report.token_f1,
            "generations_per_s": report.examples_per_s,
        }
        manifest["metrics"] = metrics
        write_json(staging / "student.json", manifest)
        write_model_card(staging, manifest)
    return TrainResult(
        path=target,
        kind="generative",
        labels=[],
        metrics={**metrics, "losses": facts["losses"]},
        seconds=time.perf_counter() - start,
        train_examples=manifest["train_examples"],
        validation_examples=manifest["validation_examples"],
        extra={"layout": layout, "generation": report.to_dict()},
    )
