"""Data sources: one registered function per ``data.source`` returning raw text splits.

A source is ``load(cfg, paths) -> TextDataset``. When it yields no "val" split, one is carved
from train (stratified by label, seeded by ``data_seed`` or ``seed``, ``data.val_fraction``).
Adding a source: a function registered here, a schema in ``embedlab.config.DATA_SCHEMAS`` and
``configs/data/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedlab.data import synthetic
from embedlab.data.types import TextDataset, TextSplit
from embedlab.registry import Registry

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
    if "test" not in dataset.splits:
        dataset.info["no_test_split"] = True
    return dataset
