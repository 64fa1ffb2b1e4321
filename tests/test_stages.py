"""The stages layer: every file a recipe names is checked before the first teacher call,
the held-out split is one function, the context is the cache key, and soft labels reach
the MiniLM student's loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthkd import stages
from synthkd.errors import SynthkdError
from tests.fakes import FaultyOpenAIServer
from tests.fixtures.fake_teacher import answer, labelled_recipe, synthkd, teacher_spec

COMMANDS = (("run",), ("generate",))


def _fails_before_the_teacher(recipe: Path, tmp_path: Path, expected: str) -> None:
    """Both `run` and `generate`: exit 2, one line naming the cause, no request, no folder."""
    for command in COMMANDS:
        out = tmp_path / f"out-{command[0]}"
        with FaultyOpenAIServer(answer=answer) as server:
            result = synthkd(
                *command, recipe, "--out", out, "--teacher", teacher_spec(server),
                cache=tmp_path / "cache",
            )  # fmt: skip
            requests = server.stats.requests
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, lines)
        assert expected in lines[0], (command, lines)
        assert "Traceback" not in result.stderr
        assert requests == 0, f"{command[0]} paid {requests} teacher requests first"
        assert not out.exists()


def test_malformed_validation_fails_before_any_teacher_call(tmp_path):
    recipe = labelled_recipe(tmp_path)
    with (tmp_path / "validation.jsonl").open("a") as handle:
        handle.write('{"text": "cut off in the middle", "label": \n')
    _fails_before_the_teacher(recipe, tmp_path, "validation")


def test_one_label_seeds_fail_before_any_teacher_call(tmp_path):
    recipe = labelled_recipe(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "seeds.jsonl").read_text().splitlines()]
    one = [row for row in rows if row["label"] == "sport"]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in one))
    _fails_before_the_teacher(recipe, tmp_path, "at least 2 are needed")


def test_unset_api_key_variable_fails_before_any_teacher_call(tmp_path, monkeypatch):
    recipe = labelled_recipe(tmp_path)
    text = recipe.read_text().replace(
        "  max_retries: 1", "  max_retries: 1\n  api_key_env: NO_SUCH_KEY_H1"
    )
    recipe.write_text(text)
    monkeypatch.delenv("NO_SUCH_KEY_H1", raising=False)
    _fails_before_the_teacher(recipe, tmp_path, "NO_SUCH_KEY_H1")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "seeds.jsonl").write_text('{"text": 7, "label": "sport"}\n'), "text"),
        (lambda d: (d / "validation.jsonl").write_text(""), "no rows"),
        (
            lambda d: (d / "validation.jsonl").write_text('{"text": "x y", "label": "politics"}\n'),
            "politics",
        ),
    ],
)
def test_open_context_names_the_bad_file(tmp_path, mutate, message):
    recipe = labelled_recipe(tmp_path)
    mutate(tmp_path)
    with pytest.raises(SynthkdError, match=message):
        stages.open_context(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_identity_holds_the_input_digests_and_the_code_version(tmp_path):
    recipe = labelled_recipe(tmp_path)
    first = stages.open_context(recipe, tmp_path / "run").identity()
    assert set(first["inputs"]) == {"seeds", "validation"}
    assert first["version"].startswith(stages.code_version().split("+")[0])
    with (tmp_path / "seeds.jsonl").open("a") as handle:
        handle.write(json.dumps({"text": "A new seed about the cup final.", "label": "sport"}))
        handle.write("\n")
    second = stages.open_context(recipe, tmp_path / "run").identity()
    assert second["inputs"]["seeds"] != first["inputs"]["seeds"]
    assert second["inputs"]["validation"] == first["inputs"]["validation"]
    # a task handed the old identity refuses to run on the changed files
    with pytest.raises(SynthkdError, match="changed during the run"):
        stages.context_from(first)
    assert stages.context_from(second).inputs.digests == second["inputs"]


def test_holdout_is_stratified_and_the_same_every_time(tmp_path):
    import pyarrow as pa

    recipe = labelled_recipe(tmp_path, validation=False)
    ctx = stages.open_context(recipe, tmp_path / "run")
    rows = [
        {"id": f"{i:03d}", "text": f"story {i} about {label}", "label": label, "soft_labels": None}
        for i, label in enumerate(["sport", "tech"] * 20)
    ]
    shuffled = pa.Table.from_pylist(list(reversed(rows)))
    frame = stages.training_frame(ctx, pa.Table.from_pylist(rows))
    assert frame.equals(stages.training_frame(ctx, shuffled))  # order-free: sorted by id
    assert len(frame) == 40 + len(ctx.inputs.real)  # the corpus, then the real examples
    train, held = stages.holdout(ctx, frame)
    again, held_again = stages.holdout(ctx, frame)
    assert held == held_again and train == again
    assert sorted(set(held["label"])) == ["sport", "tech"]
    assert abs(held["label"].count("sport") - held["label"].count("tech")) <= 1
    assert len(held["text"]) + len(train["text"]) == len(frame)


@pytest.mark.slow
def test_minilm_student_loss_sees_the_teacher_soft_labels(tmp_path, monkeypatch):
    """Soft targets reach the real loss of a real MiniLM training run, and its gradient
    pulls the student towards the teacher's distribution (not a one-hot label)."""
    import torch

    from synthkd.training import StudentConfig, train_student
    from synthkd.training import classifier as minilm
    from synthkd.training._hf_training import soft_cross_entropy
    from tests.fixtures.student_helpers import TRAIN, VALIDATION, read_jsonl

    logits = torch.tensor([[2.0, 0.0, -1.0]], requires_grad=True)
    targets = torch.tensor([[0.6, 0.3, 0.1]])
    soft_cross_entropy({"logits": logits}, targets).backward()
    assert torch.allclose(logits.grad, torch.softmax(logits.detach(), -1) - targets, atol=1e-6)

    pair = ("sport", "weather")
    rows = [
        {
            "text": r["text"],
            "label": r["label"],
            "soft_labels": json.dumps({r["label"]: 0.7, pair[r["label"] == "sport"]: 0.3}),
        }
        for r in read_jsonl(TRAIN)
        if r["label"] in pair
    ]
    val = [r for r in read_jsonl(VALIDATION) if r["label"] in pair]
    seen: list[torch.Tensor] = []

    def recording_loss(outputs, labels, num_items_in_batch=None):
        seen.append(labels.detach().clone())
        return soft_cross_entropy(outputs, labels, num_items_in_batch)

    monkeypatch.setattr(minilm, "soft_cross_entropy", recording_loss)
    config = StudentConfig(kind="minilm", epochs=1, max_length=24)
    result = train_student(config, rows, val, tmp_path / "student", progress=False)
    assert result.metrics["val_accuracy"] >= 0.5
    targets = torch.cat(seen)  # training batches, then the evaluation's one-hot labels
    assert targets.shape[1] == 2
    assert torch.allclose(targets.sum(dim=1), torch.ones(len(targets)))
    soft = targets[(targets.max(dim=1).values - 0.7).abs() < 1e-6]
    assert len(soft) == len(rows), "every training example reached the loss as 70/30"
    manifest = json.loads((tmp_path / "student" / "student.json").read_text())
    assert manifest["soft_label_examples"] == len(rows)


def test_generate_goes_through_the_stages_without_starting_prefect(tmp_path):
    """`synthkd generate`: the run's generate and filter stages, in-process, no Prefect."""
    recipe = labelled_recipe(tmp_path)
    out = tmp_path / "run"
    script = (
        "import sys\n"
        "from synthkd.cli import main\n"
        "sys.argv = ['synthkd', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('prefect imported:', 'prefect' in sys.modules, file=sys.stderr)\n"
    )
    with FaultyOpenAIServer(answer=answer) as server:
        result = subprocess.run(
            [sys.executable, "-c", script, "generate", str(recipe), "--out", str(out),
             "--teacher", teacher_spec(server), "--json"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "SYNTHKD_CACHE": str(tmp_path / "cache")},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prefect imported: False" in result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["records"] > 0 and "filtered_out" in summary
    assert summary["corpus_rows"] == summary["records"] - summary["filtered_out"]
    assert not (out / ".prefect").exists()
