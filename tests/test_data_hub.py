"""The ``hub`` source through ``datasets.load_dataset`` over local files (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedlab.config import validate
from embedlab.data.sources import load_dataset
from embedlab.errors import ConfigError, DataError

pytest.importorskip("datasets")


@pytest.fixture
def load(make_cfg, tmp_path):
    def _load(*overrides: str, seed: int = 0):
        cfg = make_cfg("data=hub", f"data.cache_dir={tmp_path / 'hf'}", *overrides, tiny=False)
        validate(cfg)
        return load_dataset(cfg.data, cfg.paths, seed)

    return _load


def files(**splits: Path) -> list[str]:
    """``+data.data_files.<split>=PATH`` overrides (the dict is empty in data=hub)."""
    return [f"+data.data_files.{k}={v}" for k, v in splits.items()]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_json_builder_with_string_labels_and_split_mapping(tmp_path, load):
    train = _jsonl(
        tmp_path / "train.jsonl", [{"body": f"text {i}", "topic": "ab"[i % 2]} for i in range(20)]
    )
    test = _jsonl(
        tmp_path / "test.jsonl", [{"body": "x", "topic": "b"}, {"body": "y", "topic": "a"}]
    )
    ds = load(
        "data.name=json",
        *files(train=train, heldout=test),
        "data.splits={train: train, val: validation, test: heldout}",
        "data.text_column=body",
        "data.label_column=topic",
    )
    assert ds.label_names == ["a", "b"]
    assert ds.splits["test"].texts == ["x", "y"]
    np.testing.assert_array_equal(ds.splits["test"].labels, [1, 0])
    assert len(ds.splits["val"]) == 2 and len(ds.splits["train"]) == 18  # carved, stratified


def test_csv_builder_streaming_with_max_examples(tmp_path, load):
    rows = "text,label\n" + "".join(f"row {i},{i % 3}\n" for i in range(50))
    (tmp_path / "train.csv").write_text(rows)
    ds = load(
        "data.name=csv",
        *files(train=tmp_path / "train.csv", test=tmp_path / "train.csv"),
        "data.streaming=true",
        "data.max_examples=12",
    )
    assert ds.splits["test"].texts == [f"row {i}" for i in range(12)]
    np.testing.assert_array_equal(ds.splits["test"].labels, [i % 3 for i in range(12)])
    assert ds.label_names == ["0", "1", "2"]


def test_text_builder_unlabelled_for_language_modelling(tmp_path, load):
    (tmp_path / "train.txt").write_text("a b c\n\nd e\n")
    (tmp_path / "valid.txt").write_text("f g\n")
    ds = load(
        "data.name=text",
        *files(train=tmp_path / "train.txt", validation=tmp_path / "valid.txt"),
        "data.label_column=null",
        "data.splits.test=null",
    )
    assert ds.splits["train"].labels is None
    assert ds.splits["train"].texts == ["a b c", "", "d e"]  # LM corpora keep blank lines
    assert ds.splits["val"].texts == ["f g"]


def test_missing_column_and_unseen_label(tmp_path, load):
    train = _jsonl(
        tmp_path / "train.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    )
    test = _jsonl(
        tmp_path / "test.jsonl", [{"text": "c", "label": "z"}, {"text": "d", "label": "x"}]
    )
    fs = files(train=train, test=test, validation=train)
    with pytest.raises(DataError, match=r"column 'content' \(data\.text_column\) not found"):
        load("data.name=json", *fs, "data.text_column=content")
    with pytest.raises(DataError, match=r"json\[test\]:0: unknown label: 'z' never seen in train"):
        load("data.name=json", *fs)
    ds = load("data.name=json", *fs, "data.on_bad_rows=skip")
    assert ds.splits["test"].texts == ["d"] and ds.info["skipped"]["total"] == 1


def test_local_builder_missing_file(tmp_path, load):
    with pytest.raises(DataError, match=r"nope\.csv: file not found \(data\.data_files\.train\)"):
        load("data.name=csv", *files(train=tmp_path / "nope.csv"))


def test_unreachable_hub_fails_fast_with_what_to_do(load, monkeypatch):
    # an endpoint nothing listens on stands in for "no network" (the real path, no mocks)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(
        DataError,
        match=r"(?s)no/such_dataset.*could not be reached.*HF_DATASETS_OFFLINE=1.*data=files",
    ):
        load("data.name=no/such_dataset")


def test_hub_config_problems(make_cfg):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("data=hub", "+data.splits.dev=validation", tiny=False))
    assert "data.name: required" in str(err.value) and "data.splits" in str(err.value)


@pytest.mark.parametrize(
    "name", ["ag_news", "imdb", "yelp_polarity", "dbpedia", "wikitext2", "wikitext103"]
)
def test_hub_dataset_configs_compose_and_validate(make_cfg, name):
    cfg = make_cfg(f"data={name}", tiny=False)
    validate(cfg)
    assert cfg.data.source == "hub" and "/" in cfg.data.name


def test_class_label_names_come_from_the_dataset_features(tmp_path, load):
    import datasets

    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["World", "Sports", "Tech"]),
        }
    )
    for split, n in (("train", 30), ("test", 6)):
        rows = {"text": [f"story {i}" for i in range(n)], "label": [i % 3 for i in range(n)]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(tmp_path / f"{split}.parquet")
        )
    ds = load(
        "data.name=parquet",
        *files(train=tmp_path / "train.parquet", test=tmp_path / "test.parquet"),
    )
    assert ds.label_names == ["World", "Sports", "Tech"]  # the dataset's order, not sorted
    np.testing.assert_array_equal(ds.splits["test"].labels, [0, 1, 2, 0, 1, 2])
