"""Data sources: one registered function per ``data.source`` returning raw text splits.

``synthetic`` (generated), ``files`` (CSV/TSV/JSONL/fastText/plain text, see
:mod:`embedlab.data.files`) and ``hub`` (``datasets.load_dataset``, see :mod:`embedlab.data.hub`).

A source is ``load(cfg, paths) -> TextDataset``. When it yields no "val" split, one is carved
from train (stratified by label, seeded by ``data_seed`` or ``seed``, ``data.val_fraction``).
Adding a source: a function registered here, a schema in ``embedlab.config.DATA_SCHEMAS`` and
``configs/data/<name>.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from embedlab.data import synthetic
from embedlab.data.files import FORMATS, BadRows, LabelEncoder, encode_labels, read_rows
from embedlab.data.types import TextDataset, TextSplit
from embedlab.errors import DataError
from embedlab.registry import Registry

log = logging.getLogger(__name__)

DATA_SOURCES: Registry = Registry("data source", "data.source")


@DATA_SOURCES.register("synthetic")
def load_synthetic(cfg: Any, paths: Any) -> TextDataset:
    splits, names = synthetic.generate(
        {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
        num_classes=cfg.num_classes,
        class_words=cfg.class_words,
        shared_words=cfg.shared_words,
        noise_words=cfg.noise_words,
        min_len=cfg.min_len,
        max_words=cfg.max_words,
        signal=cfg.signal,
        confusion=cfg.confusion,
        label_noise=cfg.label_noise,
        seed=cfg.data_seed,
    )
    return TextDataset(splits=splits, label_names=names, info={"source": "synthetic"})


def _resolve(cfg: Any, key: str) -> Path:
    path = Path(str(cfg[key])).expanduser()
    if cfg.root and not path.is_absolute():
        root = Path(str(cfg.root)).expanduser()
        if not root.is_dir():
            raise DataError(
                "data.root does not exist; point EMBEDLAB_DATA_DIR (or paths.data_dir) at the folder that "
                "holds the dataset folders (e.g. ../shared/data), or pass data.root=PATH",
                str(root),
            )
        path = root / path
    if not path.is_file():
        raise DataError(f"file not found (data.{key})", str(path))
    return path


@DATA_SOURCES.register("files")
def load_files(cfg: Any, paths: Any) -> TextDataset:
    """Labelled (or, with ``label_column: null``/format text, unlabelled) examples from files."""
    bad = BadRows(cfg.on_bad_rows)
    labelled = cfg.label_column is not None
    splits: dict[str, TextSplit] = {}
    encoder: LabelEncoder | None = None
    formats = {}
    for name in ("train", "val", "test"):
        if cfg.get(name) is None:
            continue
        path = _resolve(cfg, name)
        fmt, rows = read_rows(path, cfg, bad)
        formats[name] = fmt
        has_labels = labelled and fmt != "text"
        if not has_labels:
            labels = None
        else:
            if encoder is None:
                encoder = LabelEncoder.fit(
                    [r.label for r in rows], list(cfg.label_names) if cfg.label_names else None
                )
            rows, labels = encode_labels(rows, encoder, path, bad, name)
        if not rows:
            raise DataError(
                f"no usable rows in data.{name} ({bad.total} bad row(s) skipped)", str(path)
            )
        splits[name] = TextSplit([r.text for r in rows], labels)
    bad.report()
    info = {
        "source": "files",
        "name": cfg.name or Path(str(cfg.train)).stem,
        "formats": formats,
        "skipped": bad.summary(),
    }
    return TextDataset(splits=splits, label_names=encoder.names if encoder else [], info=info)


@DATA_SOURCES.register("hub")
def load_hub(cfg: Any, paths: Any) -> TextDataset:
    from embedlab.data.hub import load_hub as _load_hub

    return _load_hub(cfg, paths)


def source_problems(data: Any) -> list[str]:
    """Config problems of the files/hub sources that the schema's types cannot catch."""
    problems: list[str] = []
    if data.source == "files":
        if OmegaConf.is_missing(data, "train"):
            problems.append("data.train: required: the training file (data.train=PATH)")
        if data.format is not None and data.format not in FORMATS:
            problems.append(
                f"data.format: {data.format!r} is not a valid choice; choose one of {list(FORMATS)} or null"
            )
        for key in ("text_column", "label_column"):
            value = data[key]
            if value is None and key == "label_column":
                continue
            if not isinstance(value, int | str) or isinstance(value, bool):
                problems.append(f"data.{key}: a column name or 0-based position, got {value!r}")
        if data.delimiter is not None and len(data.delimiter) != 1:
            problems.append(f"data.delimiter: one character, got {data.delimiter!r}")
    else:
        if OmegaConf.is_missing(data, "name"):
            problems.append(
                "data.name: required: a hub dataset id or a builder (csv, json, text, parquet)"
            )
        bad_keys = [k for k in data.splits if k not in ("train", "val", "test")]
        if bad_keys:
            problems.append(f"data.splits: keys must be train, val, test; got {bad_keys}")
        if data.max_examples is not None and data.max_examples < 1:
            problems.append(f"data.max_examples: must be >= 1, got {data.max_examples}")
    return problems


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each label held out, seeded, order preserved."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        k = int(round(fraction * len(idx)))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def ensure_val(dataset: TextDataset, fraction: float, seed: int) -> TextDataset:
    """Carve a stratified validation split from train when the source has none."""
    if "val" in dataset.splits:
        return dataset
    train = dataset.splits["train"]
    labels = train.labels if train.labels is not None else np.zeros(len(train), dtype=np.int64)
    keep, held = stratified_split(labels, fraction, seed)

    def take(idx: np.ndarray) -> TextSplit:
        return TextSplit(
            texts=[train.texts[i] for i in idx.tolist()],
            labels=None if train.labels is None else train.labels[idx],
        )

    dataset.splits = {
        "train": take(keep),
        "val": take(held),
        **{k: v for k, v in dataset.splits.items() if k != "train"},
    }
    dataset.info["val_carved"] = {"fraction": fraction, "seed": seed, "size": len(held)}
    return dataset


def load_dataset(cfg: Any, paths: Any, seed: int) -> TextDataset:
    """Load ``cfg.source`` and make sure train, val and test exist."""
    dataset = DATA_SOURCES.get(cfg.source)(cfg, paths)
    dataset = ensure_val(dataset, cfg.val_fraction, seed)
    if dataset.label_names and dataset.splits["train"].labels is not None:
        n = len(dataset.label_names)
        for name, split in dataset.splits.items():
            if (
                split.labels is not None
                and len(split.labels)
                and (split.labels.min() < 0 or split.labels.max() >= n)
            ):
                raise DataError(
                    f"data split {name!r} has label ids outside [0, {n}) (source {cfg.source})"
                )
    if "test" not in dataset.splits:
        dataset.info["no_test_split"] = True
    return dataset
