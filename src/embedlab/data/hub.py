"""Datasets through ``datasets.load_dataset``: the Hugging Face hub or a local builder.

``data.name`` is a hub id (``fancyzhx/ag_news``) or a builder over local files (``csv``,
``json``, ``text``, ``parquet`` with ``data.data_files``) -- both go through the same code, so
the tests exercise it offline. A hub id that cannot be reached fails fast with a
:class:`DataError` saying what to do (connect, pre-fill the cache, or use ``data=files``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from embedlab.data.files import BadRows, LabelEncoder, Row
from embedlab.data.types import TextDataset, TextSplit
from embedlab.errors import DataError

log = logging.getLogger(__name__)

LOCAL_BUILDERS = ("csv", "json", "text", "parquet", "arrow", "pandas")


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Can we open a TCP connection to the hub (``HF_ENDPOINT``) within ``timeout`` seconds?"""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True, ""
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"


def _unreachable(cfg: Any, exc: BaseException | str) -> DataError:
    where = f"{cfg.name}" + (f" ({cfg.subset})" if cfg.subset else "")
    mode = (
        "offline mode (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set) and it is not in the cache"
        if _offline()
        else "the hub could not be reached"
    )
    return DataError(
        f"hub dataset {where}: {mode}: {exc if isinstance(exc, str) else type(exc).__name__ + ': ' + str(exc).splitlines()[0][:200]}\n"
        "  - connect to the network once (the dataset is then cached under HF_DATASETS_CACHE), or\n"
        "  - if it is already in your cache, set HF_DATASETS_OFFLINE=1 to use it without the network, or\n"
        "  - copy a machine's ~/.cache/huggingface/datasets here and set HF_DATASETS_OFFLINE=1, or\n"
        "  - export the splits to CSV/TSV/JSONL and train with data=files data.train=... data.test=..."
    )


def open_dataset(cfg: Any) -> Any:
    try:
        import datasets
    except ImportError as exc:  # the optional extra
        raise DataError(
            "data.source=hub needs the 'datasets' package: pip install 'embedlab[data]'"
        ) from exc
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    local = cfg.name in LOCAL_BUILDERS
    if local and not cfg.data_files:
        raise DataError(
            f"data.name={cfg.name!r} is a local builder: set data.data_files={{train: PATH, ...}}"
        )
    if local:
        for split, files in _plain(cfg.data_files).items():
            for f in [files] if isinstance(files, str) else files:
                if not os.path.exists(f):
                    raise DataError(f"file not found (data.data_files.{split})", f)
    elif not _offline():
        # fail in seconds, not after datasets' minute of retries, when there is no network
        ok, why = hub_reachable()
        if not ok:
            raise _unreachable(cfg, f"cannot connect to {why}")
    try:
        return datasets.load_dataset(
            cfg.name,
            cfg.subset,
            data_files=_plain(cfg.data_files) or None,
            revision=cfg.revision,
            cache_dir=cfg.cache_dir,
            streaming=cfg.streaming,
        )
    except DataError:
        raise
    except Exception as exc:
        if local:
            raise DataError(
                f"datasets could not read the {cfg.name} files {_plain(cfg.data_files)}: {exc}"
            ) from exc
        raise _unreachable(cfg, exc) from exc


def class_names(split: Any, column: str) -> list[str] | None:
    features = getattr(split, "features", None)
    feature = features.get(column) if features else None
    names = getattr(feature, "names", None)
    return list(names) if names else None


def check_columns(split: Any, cfg: Any, where: str) -> None:
    """The text (and label) columns exist in ``split`` (a Dataset or IterableDataset)."""
    columns = getattr(split, "column_names", None) or list((split.features or {}).keys())
    for key, col in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
        if col is not None and columns and col not in columns:
            raise DataError(f"column {col!r} (data.{key}) not found; columns are {columns}", where)


def example_rows(
    examples: Any, cfg: Any, names: list[str] | None, where: str, bad: BadRows
) -> Iterator[Row]:
    """``Row(index, text, label name)`` per good example (labels as names when ``names`` index them)."""
    label_col = cfg.label_column
    for i, ex in enumerate(examples):
        text = ex[cfg.text_column]
        if not isinstance(text, str) or (label_col is not None and not text.strip()):
            bad(
                "empty text" if isinstance(text, str) else "text is not a string",
                repr(text)[:60],
                where,
                i,
            )
            continue
        label = None
        if label_col is not None:
            label = ex[label_col]
            if label is None or (isinstance(label, int) and label < 0):
                bad("missing label", repr(label), where, i)
                continue
            if names and isinstance(label, int | np.integer) and label < len(names):
                label = names[label]
            label = str(label)
        yield Row(i, text, label)


def split_mapping(cfg: Any, available: list[str]) -> dict[str, str]:
    """Our split name -> the dataset's (the ones configured and not null); train must exist."""
    mapping = {k: v for k, v in _plain(cfg.splits).items() if v is not None}
    if "train" not in mapping or mapping["train"] not in available:
        raise DataError(
            f"hub dataset {cfg.name}: no train split {mapping.get('train')!r} (data.splits.train); it has {available}"
        )
    return mapping


def load_hub(
    cfg: Any,
    paths: Any,
    only: tuple[str, ...] = ("train", "val", "test"),
    names: list[str] | None = None,
) -> TextDataset:
    """Load ``cfg.splits`` of ``cfg.name`` into TextSplits (labels None without a label column).

    ``only`` restricts the splits read; ``names`` fixes the label order (a streamed run's:
    its train split is read elsewhere, :mod:`embedlab.data.streaming`).
    """
    bad = BadRows(cfg.on_bad_rows)
    dsd = open_dataset(cfg)
    available = list(dsd.keys())
    mapping = split_mapping(cfg, available)
    label_col = cfg.label_column
    names = names or (list(cfg.label_names) if cfg.label_names else None)
    encoder: LabelEncoder | None = LabelEncoder(names) if names and "train" not in only else None
    splits: dict[str, TextSplit] = {}
    for ours in only:
        theirs = mapping.get(ours)
        if theirs is None:
            continue
        if theirs not in available:
            if ours == "test":
                raise DataError(
                    f"hub dataset {cfg.name}: no split {theirs!r} (data.splits.test); it has {available}"
                )
            log.info("data: %s has no %r split; carving val from train", cfg.name, theirs)
            continue
        split = dsd[theirs]
        where = f"{cfg.name}[{theirs}]"
        check_columns(split, cfg, where)
        if ours == "train" and label_col is not None:
            names = names or class_names(split, label_col)
        examples = split if cfg.max_examples is None else itertools.islice(split, cfg.max_examples)
        rows = list(example_rows(examples, cfg, names, where, bad))
        texts = [r.text for r in rows]
        labels = None
        if label_col is not None:
            if encoder is None:
                encoder = LabelEncoder.fit([r.label for r in rows], names)
            ids, keep = [], []
            for i, row in enumerate(rows):
                idx = encoder.lookup(row.label)
                if idx is None:
                    bad(
                        "unknown label",
                        f"{row.label!r} never seen in train (known: {encoder.names[:20]})",
                        where,
                        row.line,
                    )
                    continue
                ids.append(idx)
                keep.append(i)
            texts = [texts[i] for i in keep]
            labels = np.asarray(ids, dtype=np.int64)
        if not texts:
            raise DataError(f"split is empty after loading (data.splits.{ours}={theirs!r})", where)
        splits[ours] = TextSplit(texts, labels)
    bad.report()
    info = {
        "source": "hub",
        "name": cfg.name,
        "subset": cfg.subset,
        "streaming": cfg.streaming,
        "skipped": bad.summary(),
    }
    return TextDataset(splits=splits, label_names=encoder.names if encoder else [], info=info)
