"""The LoRA cross-encoder option: trains, saves a peft adapter (safetensors, no pickle)
with its calibration, and the reloaded critic scores exactly as the trained one.

Its ranking quality needs hundreds of optimizer steps (minutes on 2 cores); this test
takes a few steps and checks the plumbing, not the quality (see the issue note)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthkd.critics import Critic, CriticConfig, CriticLabel, LabelSet, train_critic
from tests.fixtures.critic_data import news_corpus


@pytest.mark.slow
def test_lora_critic_saves_an_adapter_and_reloads_identically(tmp_path):
    rows, accept = news_corpus(swap_every=3)
    labels = LabelSet(
        [CriticLabel(r, a, "human") for r, a in zip(rows[:64], accept[:64], strict=True)]
    )
    critic = train_critic(labels, CriticConfig(), tmp_path / "critic", method="lora", lora_steps=6)
    adapter = tmp_path / "critic" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    assert set(json.loads((adapter / "calibration.json").read_text())) == {"platt_a", "platt_b"}
    for file in (tmp_path / "critic").rglob("*"):
        if file.is_file():
            assert not file.read_bytes().startswith(b"\x80"), f"{file} looks like a pickle"
    meta = json.loads((tmp_path / "critic" / "critic.json").read_text())
    assert meta["method"] == "lora" and meta["version"].startswith("critic-labelled-lora-")
    assert "cross-encoder" in (tmp_path / "critic" / "README.md").read_text()

    probe = rows[64:84]
    reloaded = Critic.load(tmp_path / "critic")
    scores = reloaded.score(probe)
    assert np.allclose(scores, critic.score(probe), atol=1e-6)
    assert ((scores > 0) & (scores < 1)).all()
