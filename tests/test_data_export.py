"""Export to a DatasetDict (Parquet shards + dataset card) and everything up to the Hub push."""

from __future__ import annotations

import datasets
import pytest
from huggingface_hub import DatasetCard

from synthkd.data import export_dataset, parse_splits, publish_dataset
from synthkd.errors import SynthkdError
from tests.fixtures.data_corpus import build_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("export") / "run", rounds=2, per_round=50)
    rows = run.corpus.read(columns=["id", "text"]).to_pylist()
    number = {row["id"]: int(row["text"].split(":")[0].split()[1]) for row in rows}
    run.corpus.update_scores(
        {record_id: 0.75 if n % 2 == 0 else 0.25 for record_id, n in number.items()},
        "critic-minilm-3f2a",
        "critic rescoring",
        threshold=0.5,
    )
    return run


def _load(path, cache):
    return datasets.load_dataset(str(path), cache_dir=str(cache))


def test_export_writes_splits_that_load_back_as_a_datasetdict(run, tmp_path):
    result = export_dataset(
        run.corpus, tmp_path / "out", splits={"train": 0.8, "validation": 0.2}, seed=3
    )
    assert result.split_rows == {"train": 80, "validation": 20}
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == [
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    loaded = _load(tmp_path / "out", tmp_path / "cache")  # the card's configs point at the shards
    assert {name: split.num_rows for name, split in loaded.items()} == result.split_rows
    train, validation = set(loaded["train"]["id"]), set(loaded["validation"]["id"])
    assert not train & validation and train | validation == run.corpus.ids()
    assert loaded["train"].features["label"].dtype == "string"
    assert loaded["train"][0]["raw_completion"].startswith("Label: ")  # lineage travels along


def test_the_same_seed_gives_the_same_splits(run, tmp_path):
    splits = parse_splits("train=0.7,test=0.3")
    a = export_dataset(run.corpus, tmp_path / "a", splits=splits, seed=11)
    b = export_dataset(run.corpus, tmp_path / "b", splits=splits, seed=11)
    c = export_dataset(run.corpus, tmp_path / "c", splits=splits, seed=12)
    ids = {
        key: set(_load(r.path, tmp_path / "cache")["test"]["id"])
        for key, r in {"a": a, "b": b, "c": c}.items()
    }
    assert ids["a"] == ids["b"] != ids["c"]


def test_the_card_carries_hub_metadata_and_lineage(run, tmp_path):
    export_dataset(run.corpus, tmp_path / "out", license="cc-by-4.0")
    card = DatasetCard.load(tmp_path / "out" / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert card.data.task_categories == ["text-classification"]
    assert card.data.size_categories == ["n<1K"]
    assert "synthetic" in card.data.tags
    text = card.text
    assert "| llamacpp | gemma-3-270m | 100 |" in text  # teachers
    assert "| tmpl-1a2b | 100 |" in text  # prompt templates
    assert "| critic-minilm-3f2a | 100 | 50 |" in text and "Critic threshold: 0.5." in text
    # acceptance per round: 25 of 50 kept by the critic, plus 10 rejects per round
    assert "| 0 | 25 | 35 | 41.7% |" in text and "| 1 | 25 | 35 | 41.7% |" in text
    assert "| sports | 34 | 34.0% |" in text  # label distribution
    assert "critic rescoring" in text and "round 1: generation" in text  # version history


def test_an_older_version_exports_its_own_rows(run, tmp_path):
    result = export_dataset(run.corpus, tmp_path / "v1", version=1)
    assert result.version == 1 and result.split_rows == {"train": 50}
    card = DatasetCard.load(tmp_path / "v1" / "README.md")
    assert "exported from corpus version 1" in card.text and "critic rescoring" not in card.text


def test_bad_input_writes_nothing(run, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(SynthkdError, match="already exists and is not empty"):
        export_dataset(run.corpus, taken)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    with pytest.raises(SynthkdError, match="version 99 .* does not exist"):
        export_dataset(run.corpus, tmp_path / "nope", version=99)
    for spec in ["train=0.9,validation=0.2", "train", "train=abc", "train=0.5,train=0.5", "../x=1"]:
        with pytest.raises(SynthkdError, match="malformed --split"):
            parse_splits(spec)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_overwrite_replaces_a_previous_export(run, tmp_path):
    export_dataset(run.corpus, tmp_path / "out", version=1)
    export_dataset(run.corpus, tmp_path / "out", overwrite=True)
    assert "exported from corpus version 3" in (tmp_path / "out" / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging leftovers


def test_publish_without_a_token_is_one_clear_error(run, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(SynthkdError, match="no Hugging Face token: set HF_TOKEN"):
        publish_dataset(run.corpus, "my-org/news-topics", out_dir=tmp_path / "pub")
    with pytest.raises(SynthkdError, match="invalid --repo-id"):
        publish_dataset(run.corpus, "../etc", token="hf_x")
    assert not (tmp_path / "pub").exists()


def test_publish_offline_names_the_cause_and_never_the_token(run, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(SynthkdError) as error:
        publish_dataset(run.corpus, "my-org/news-topics", token="hf_supersecret")
    assert "offline" in str(error.value) and "hf_supersecret" not in str(error.value)
