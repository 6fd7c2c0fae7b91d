"""Tokenized splits cached by content under ``paths.cache_dir/tokenized/<key>/``.

The key hashes the raw split contents (texts and labels, in order), the tokenizer config
(plus the bytes of a loaded ``tokenizer.path``) and ``max_len``. A hit loads the saved
``tokenizer.json`` and the CSR arrays (``.npy``) and skips training the tokenizer and
encoding; a miss does both and writes the entry atomically. Deleting the folder is safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer

from embedlab.data.tokenizer import build_tokenizer, encode
from embedlab.data.types import EncodedSplit, TextDataset

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the stored layout or the encoding changes


def _plain(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if hasattr(cfg, "__dataclass_fields__"):
        import dataclasses

        return {k: getattr(v, "value", v) for k, v in dataclasses.asdict(cfg).items()}
    return dict(cfg)


def cache_key(dataset: TextDataset, tokenizer_cfg: Any, max_len: int | None) -> str:
    """sha256 over the raw splits, the tokenizer config and ``max_len``."""
    h = hashlib.sha256()
    tok = _plain(tokenizer_cfg)
    # the n-gram step runs after the cache (cheap, vectorised): not part of the key
    tok = {k: v for k, v in tok.items() if not k.startswith("ngram")}
    h.update(
        json.dumps(
            {"v": CACHE_VERSION, "tokenizer": tok, "max_len": max_len}, sort_keys=True
        ).encode()
    )
    if tok.get("path"):
        h.update(Path(tok["path"]).read_bytes())
    for name in sorted(dataset.splits):
        split = dataset.splits[name]
        h.update(f"\x00split:{name}:{len(split)}\x00".encode())
        for text in split.texts:
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        if split.labels is not None:
            h.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]


def _save(folder: Path, tokenizer: Tokenizer, encoded: dict[str, EncodedSplit]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {"version": CACHE_VERSION, "splits": {}}
        for name, split in encoded.items():
            np.save(tmp / f"{name}.ids.npy", split.ids.numpy())
            np.save(tmp / f"{name}.offsets.npy", split.offsets.numpy())
            if split.labels is not None:
                np.save(tmp / f"{name}.labels.npy", split.labels.numpy())
            meta["splits"][name] = {
                "examples": len(split),
                "tokens": int(split.ids.numel()),
                "labels": split.labels is not None,
            }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.replace(tmp, folder)  # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(folder: Path) -> tuple[Tokenizer, dict[str, EncodedSplit]] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION:
            return None
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        encoded = {}
        for name, info in meta["splits"].items():
            labels = (
                torch.from_numpy(np.load(folder / f"{name}.labels.npy")) if info["labels"] else None
            )
            encoded[name] = EncodedSplit(
                ids=torch.from_numpy(np.load(folder / f"{name}.ids.npy")),
                offsets=torch.from_numpy(np.load(folder / f"{name}.offsets.npy")),
                labels=labels,
            )
        return tokenizer, encoded
    except (
        OSError,
        ValueError,
        KeyError,
        json.JSONDecodeError,
        Exception,
    ) as exc:  # a broken entry: rebuild
        log.warning("data: ignoring unreadable tokenized cache %s (%s)", folder, exc)
        return None


def tokenize_splits(
    dataset: TextDataset,
    tokenizer_cfg: Any,
    max_len: int | None,
    cache_dir: str | Path | None,
    enabled: bool = True,
) -> tuple[Tokenizer, dict[str, EncodedSplit], str]:
    """Tokenizer trained on train + every split encoded, from the cache when possible.

    Returns ``(tokenizer, encoded, status)`` with status ``"hit"``, ``"miss"`` (built and
    stored) or ``"off"`` (``data.cache: false``).
    """

    def build() -> tuple[Tokenizer, dict[str, EncodedSplit]]:
        tok = build_tokenizer(tokenizer_cfg, dataset.splits["train"].texts)
        enc = {name: encode(tok, s.texts, s.labels, max_len) for name, s in dataset.splits.items()}
        return tok, enc

    if not enabled or cache_dir is None:
        tok, enc = build()
        return tok, enc, "off"
    key = cache_key(dataset, tokenizer_cfg, max_len)
    folder = Path(cache_dir) / "tokenized" / key
    if folder.is_dir():
        loaded = _load(folder)
        if loaded is not None:
            log.info("data: tokenized cache hit %s (skipped tokenization)", folder)
            return loaded[0], loaded[1], "hit"
    tok, enc = build()
    _save(folder, tok, enc)
    log.info("data: tokenized and cached %s", folder)
    return tok, enc, "miss"
