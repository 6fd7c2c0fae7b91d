"""Tokenized splits cached by content under ``paths.cache_dir/tokenized/<key>/``.

The key hashes the raw split contents (texts and labels, in order), the tokenizer config
(plus the bytes of a loaded ``tokenizer.path``) and ``max_len``. A hit loads the saved
``tokenizer.json`` and the CSR arrays (``.npy``) and skips training the tokenizer and
encoding; a miss does both and writes the entry atomically (a temporary folder renamed into
place; of two runs building the same entry one wins, the other's copy is dropped). Each array
is served only after it matches the checksum, shape and dtype recorded in ``meta.json``
(written last) and its ids fit the vocabulary; an entry that does not verify is logged with
its path, moved aside and rebuilt. Deleting the folder is safe.

Two more things are kept for runs with word n-grams (:func:`ngram_splits`): the n-gram
vocabulary and the splits with their n-grams, in ``<entry>/ngrams-<key>/`` (one per n-gram
setting, verified the same way), and, for a ``files`` source, a note
``paths.cache_dir/sources/<key>.json`` (:func:`source_key`: the files' bytes, the data and
tokenizer config, the seed) naming the entry they encode to, so that a run that has seen them
before neither reads nor parses the files (:func:`load_source`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer

from embedlab.checksums import manifest, mismatches
from embedlab.data.tokenizer import NgramVocab, build_tokenizer, encode
from embedlab.data.types import EncodedSplit, TextDataset, TextSplit
from embedlab.utils import replaced_whole

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_VERSION = 2  # bump when the stored layout or the encoding changes (2: checksums)


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


def _write_entry(
    folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], fill: Any = None
) -> None:
    """Write an entry whole: the arrays (``.npy``), whatever ``fill(tmp)`` adds, then
    ``meta.json``, into a temporary folder renamed into place (of two runs building the same
    entry one wins, the other's copy is dropped)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
    try:
        if fill is not None:
            fill(tmp)
        for file, array in arrays.items():
            np.save(tmp / file, array)
        # written last: an entry without meta.json is incomplete and never served
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.replace(tmp, folder)  # atomic; another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_arrays(folder: Path, files: dict[str, Any], what: str) -> dict[str, np.ndarray]:
    """The arrays ``files`` (a manifest) names, verified against it; :class:`CacheMismatch`
    when one is missing, unreadable or not what the manifest records."""
    try:
        arrays = {f: np.load(folder / f, allow_pickle=False) for f in files}
    except (OSError, ValueError) as exc:
        raise CacheMismatch(f"{what}: {exc}") from None
    problems = mismatches(arrays, files)
    if problems:
        raise CacheMismatch("; ".join(problems))
    return arrays


def _save(folder: Path, tokenizer: Tokenizer, encoded: dict[str, EncodedSplit]) -> None:
    meta: dict[str, Any] = {
        "version": CACHE_VERSION,
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
        "splits": {},
    }
    arrays: dict[str, np.ndarray] = {}
    for name, split in encoded.items():
        split_arrays = _arrays(name, split)
        arrays.update(split_arrays)
        meta["splits"][name] = {
            "examples": len(split),
            "tokens": int(split.ids.numel()),
            "labels": split.labels is not None,
            "arrays": manifest(split_arrays),
        }
    _write_entry(folder, arrays, meta, lambda tmp: tokenizer.save(str(tmp / "tokenizer.json")))


def _arrays(name: str, split: EncodedSplit) -> dict[str, np.ndarray]:
    arrays = {f"{name}.ids.npy": split.ids.numpy(), f"{name}.offsets.npy": split.offsets.numpy()}
    if split.labels is not None:
        arrays[f"{name}.labels.npy"] = split.labels.numpy()
    return arrays


class CacheMismatch(Exception):
    """A cache entry that does not hold what its manifest says (altered, truncated)."""


def _load(folder: Path) -> tuple[Tokenizer, dict[str, EncodedSplit]] | None:
    """The entry in ``folder``, verified; None when it is stale or unreadable.

    Raises :class:`CacheMismatch` when the arrays are not what ``meta.json`` records
    (checksum, shape, dtype) or hold ids outside the tokenizer's vocabulary.
    """
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION:
            return None
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except (OSError, ValueError, KeyError, Exception) as exc:  # unreadable: rebuild
        log.warning("data: ignoring unreadable tokenized cache %s (%s)", folder, exc)
        return None
    encoded = {}
    for name, info in meta["splits"].items():
        arrays = _read_arrays(folder, info["arrays"], name)
        ids = arrays[f"{name}.ids.npy"]
        if ids.size and (ids.min() < 0 or ids.max() >= meta["vocab_size"]):
            raise CacheMismatch(f"{name}: token ids outside [0, {meta['vocab_size']})")
        labels = arrays.get(f"{name}.labels.npy")
        encoded[name] = EncodedSplit(
            ids=torch.from_numpy(ids),
            offsets=torch.from_numpy(arrays[f"{name}.offsets.npy"]),
            labels=None if labels is None else torch.from_numpy(labels),
        )
    return tokenizer, encoded


def _discard(folder: Path) -> None:
    """Move a bad entry out of the way atomically (its name is free at once), then delete it."""
    trash = folder.with_name(f"{folder.name}.bad-{os.getpid()}")
    try:
        os.replace(folder, trash)
    except OSError:  # another process moved it first
        return
    shutil.rmtree(trash, ignore_errors=True)


def _served(what: str, folder: Path, load: Callable[[Path], T | None]) -> T | None:
    """``load(folder)``, or None when the entry does not verify: then it is logged with its
    path and moved aside, so that the caller rebuilds it."""
    try:
        return load(folder)
    except CacheMismatch as exc:
        log.warning("data: %s %s does not verify (%s); rebuilding it", what, folder, exc)
        _discard(folder)
        return None


def tokenize_splits(
    dataset: TextDataset,
    tokenizer_cfg: Any,
    max_len: int | None,
    cache_dir: str | Path | None,
    enabled: bool = True,
) -> tuple[Tokenizer, dict[str, EncodedSplit], str, Path | None]:
    """Tokenizer trained on train + every split encoded, from the cache when possible.

    Returns ``(tokenizer, encoded, status, entry)`` with status ``"hit"``, ``"miss"`` (built
    and stored) or ``"off"`` (``data.cache: false``), and the entry's folder (None when off),
    where :func:`ngram_splits` keeps what it derives from it.
    """

    def build() -> tuple[Tokenizer, dict[str, EncodedSplit]]:
        tok = build_tokenizer(tokenizer_cfg, dataset.splits["train"].texts)
        enc = {name: encode(tok, s.texts, s.labels, max_len) for name, s in dataset.splits.items()}
        return tok, enc

    if not enabled or cache_dir is None:
        tok, enc = build()
        return tok, enc, "off", None
    key = cache_key(dataset, tokenizer_cfg, max_len)
    folder = Path(cache_dir) / "tokenized" / key
    loaded = _served("tokenized cache", folder, _load) if folder.is_dir() else None
    if loaded is not None:
        log.info("data: tokenized cache hit %s (skipped tokenization)", folder)
        return loaded[0], loaded[1], "hit", folder
    tok, enc = build()
    _save(folder, tok, enc)
    log.info("data: tokenized and cached %s", folder)
    return tok, enc, "miss", folder


def ngram_splits(
    encoded: dict[str, EncodedSplit],
    vocab_size: int,
    n: int,
    min_freq: int,
    max_size: int | None,
    entry: Path | None,
) -> tuple[NgramVocab, dict[str, EncodedSplit]]:
    """The word n-grams fitted on train and every split with its n-grams appended, kept in
    the tokenized entry ``entry`` (a sub-entry per n-gram setting; None: not cached).

    The n-gram pass is recomputed from the cached ids otherwise, every run: with the names of
    the n-grams, 3.5-5.9 s of a 1M-text run's 17 s cached start-up. Verified like the entry
    (checksums, shapes, dtypes, id ranges); a sub-entry that does not verify is rebuilt.
    """

    def build() -> tuple[NgramVocab, dict[str, EncodedSplit]]:
        ngrams = NgramVocab(n, min_freq, max_size).fit(encoded["train"], vocab_size)
        return ngrams, {k: ngrams.transform(v) for k, v in encoded.items()}

    if entry is None:
        return build()
    setting = {"v": CACHE_VERSION, "n": n, "min_freq": min_freq, "max_size": max_size}
    tag = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:16]
    folder = entry / f"ngrams-{tag}"
    if (folder / "meta.json").is_file():
        loaded = _served(
            "n-gram cache", folder, lambda f: _load_ngrams(f, setting, encoded, vocab_size)
        )
        if loaded is not None:
            log.info("data: n-gram cache hit %s", folder)
            return loaded
    ngrams, out = build()
    state = ngrams.to_dict()
    arrays = {
        f"{k}.{part}.npy": getattr(v, part).numpy()
        for k, v in out.items()
        for part in ("ids", "offsets")
    }
    for kind in ("keys", "ids"):
        arrays.update({f"{kind}{order}.npy": t.numpy() for order, t in state[kind].items()})
    meta = {**setting, "vocab_size": vocab_size, "size": len(ngrams), "arrays": manifest(arrays)}
    _write_entry(folder, arrays, meta)
    return ngrams, out


def _load_ngrams(
    folder: Path, setting: dict[str, Any], encoded: dict[str, EncodedSplit], vocab_size: int
) -> tuple[NgramVocab, dict[str, EncodedSplit]]:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise CacheMismatch(f"meta.json: {exc}") from None
    if any(meta.get(k) != v for k, v in setting.items()) or meta.get("vocab_size") != vocab_size:
        raise CacheMismatch("meta.json: not this n-gram setting or vocabulary")
    arrays = _read_arrays(folder, meta["arrays"], "n-grams")
    orders = sorted({f[len("keys") : -len(".npy")] for f in arrays if f.startswith("keys")})
    ngrams = NgramVocab.from_dict(
        {
            **{k: meta[k] for k in ("n", "min_freq", "max_size", "vocab_size")},
            "keys": {o: arrays[f"keys{o}.npy"] for o in orders},
            "ids": {o: arrays[f"ids{o}.npy"] for o in orders},
        }
    )
    if len(ngrams) != meta.get("size"):
        raise CacheMismatch("n-gram ids do not match their count")
    limit = vocab_size + len(ngrams)
    out = {}
    for name, split in encoded.items():
        ids, offsets = arrays.get(f"{name}.ids.npy"), arrays.get(f"{name}.offsets.npy")
        if ids is None or offsets is None or len(offsets) != len(split.offsets):
            raise CacheMismatch(f"{name}: not the split's texts")
        if ids.size and (ids.min() < 0 or ids.max() >= limit):
            raise CacheMismatch(f"{name}: token ids outside [0, {limit})")
        out[name] = EncodedSplit(torch.from_numpy(ids), torch.from_numpy(offsets), split.labels)
    return ngrams, out


# ---------------------------------------------------------------- parsed files, by their bytes


def source_key(data_cfg: Any, tokenizer_cfg: Any, seed: int) -> str | None:
    """A key for what a ``files`` source's splits encode to: sha256 over the data config, the
    seed (a carved val split), the tokenizer config (n-grams aside) and every file's bytes.
    None for other sources (hub datasets, generators), which :func:`load_source` skips."""
    if data_cfg.get("source") != "files":
        return None
    from embedlab.data.sources import SPLITS, resolve_file

    tok = {k: v for k, v in _plain(tokenizer_cfg).items() if not k.startswith("ngram")}
    h = hashlib.sha256(
        json.dumps(
            {"v": CACHE_VERSION, "data": _plain(data_cfg), "tokenizer": tok, "seed": seed},
            sort_keys=True,
            default=str,
        ).encode()
    )
    if tok.get("path"):
        h.update(Path(tok["path"]).read_bytes())
    for name in SPLITS:
        if data_cfg.get(name) is None:
            continue
        h.update(f"\x00file:{name}\x00".encode())
        with open(resolve_file(data_cfg, name), "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:32]


def load_source(
    cache_dir: str | Path, key: str
) -> tuple[TextDataset, Tokenizer, dict[str, EncodedSplit], Path] | None:
    """What :func:`remember_source` noted for ``key``: the dataset without its texts (labels,
    label names, notes), the tokenizer, the encoded splits and their entry; None when there is
    no note or its tokenized entry is missing, stale or does not verify (the caller then reads
    the files, and :func:`tokenize_splits` rebuilds what does not verify).

    Skips reading and parsing the files and hashing their texts (a 1M-text TSV: ~5 s). Only
    for runs that need no raw text after tokenizing (word n-grams on: no vocabulary extension).
    """
    note = Path(cache_dir) / "sources" / f"{key}.json"
    try:
        meta = json.loads(note.read_text())
    except (OSError, ValueError):
        return None
    try:
        if meta.get("version") != CACHE_VERSION:
            return None
        folder = Path(cache_dir) / "tokenized" / str(meta["tokenized"])
        if folder.name != meta["tokenized"] or not folder.is_dir():
            return None
        loaded = _load(folder)
        if loaded is None:
            return None
        tokenizer, encoded = loaded
        sizes = {name: len(split) for name, split in encoded.items()}
        if sizes != meta["sizes"]:
            raise CacheMismatch(f"splits {sizes} where the note says {meta['sizes']}")
        splits = {
            name: TextSplit([], None if split.labels is None else split.labels.numpy())
            for name, split in encoded.items()
        }
        dataset = TextDataset(splits, list(meta["label_names"]), dict(meta["info"]))
    except (CacheMismatch, KeyError, TypeError) as exc:
        log.warning("data: ignoring the cached read of the files %s (%s)", note, exc)
        return None
    log.info("data: files and tokens from the cache (%s, %s)", note, folder)
    return dataset, tokenizer, encoded, folder


def remember_source(
    cache_dir: str | Path,
    key: str,
    dataset: TextDataset,
    encoded: dict[str, EncodedSplit],
    entry: Path,
) -> None:
    """Note which tokenized entry ``key``'s files encode to, with what reading them gave beside
    the texts (label names, the source's notes), for :func:`load_source`."""
    meta = {
        "version": CACHE_VERSION,
        "tokenized": entry.name,
        "sizes": {name: len(split) for name, split in encoded.items()},
        "label_names": list(dataset.label_names),
        "info": json.loads(json.dumps(dataset.info, default=str)),
    }
    with replaced_whole(Path(cache_dir) / "sources" / f"{key}.json", "w") as f:
        json.dump(meta, f, indent=1)
