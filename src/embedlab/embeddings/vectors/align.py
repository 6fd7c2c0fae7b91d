"""Align vectors to a vocabulary (exact, then lowercased lookup), cache the result, report coverage."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.checksums import manifest, mismatches
from embedlab.embeddings.vectors.formats import ReadResult, read_vectors

log = logging.getLogger(__name__)

VECTOR_CACHE_VERSION = 2  # bump when the aligned-matrix layout or the alignment rules change


def wanted_keys(vocab: Sequence[str], lowercase_fallback: bool) -> set[bytes]:
    """File words that can serve the vocabulary: each token, and its lowercased form."""
    keys = {w.encode("utf-8") for w in vocab}
    if lowercase_fallback:
        keys |= {w.lower().encode("utf-8") for w in vocab}
    return keys


def align(
    result: ReadResult,
    vocab: Sequence[str],
    lowercase_fallback: bool = True,
    extend_with: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[str], dict[str, int]]:
    """Rows for ``vocab`` (+ up to ``extend_with`` new words from the file's top rows).

    Returns ``(vectors (V, D), found (V,), vocab, counts)`` where ``counts`` says how many
    rows were found exactly and how many through the lowercased word.
    """
    vocab = list(vocab)
    if extend_with:  # append the file's top-``extend_with`` words that the vocabulary lacks
        known = set(vocab)
        for word in result.top_words:
            text = word.decode("utf-8", "replace")
            if text not in known:
                vocab.append(text)
                known.add(text)
    matrix = np.zeros((len(vocab), result.dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    exact = lower = 0
    for i, token in enumerate(vocab):
        vec = result.vectors.get(token.encode("utf-8"))
        if vec is not None:
            exact += 1
        elif lowercase_fallback:
            vec = result.vectors.get(token.lower().encode("utf-8"))
            lower += vec is not None
        if vec is not None:
            matrix[i] = vec
            found[i] = True
    return (
        torch.from_numpy(matrix),
        torch.from_numpy(found),
        vocab,
        {"found_exact": exact, "found_lower": lower},
    )


def file_identity(path: str | Path) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def vector_cache_key(
    identity: dict[str, Any], vocab: Sequence[str], options: dict[str, Any]
) -> str:
    vocab_hash = hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()
    blob = json.dumps(
        {"v": VECTOR_CACHE_VERSION, "file": identity, "vocab": vocab_hash, "options": options},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def load_aligned(
    path: str | Path,
    vocab: Sequence[str],
    *,
    fmt: str | None = None,
    vocab_path: str | Path | None = None,
    lowercase_fallback: bool = True,
    extend_with: int = 0,
    on_bad_rows: str = "error",
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Read ``path`` for ``vocab`` and align; with ``cache_dir``, reuse a cached result.

    Returns ``{"vectors", "found", "vocab", "stats"}``; ``stats["cached"]`` tells whether the
    cache answered and ``stats["seconds"]`` how long it took.
    """
    started = time.perf_counter()
    options = {"fmt": fmt, "lower": lowercase_fallback, "extend": extend_with, "bad": on_bad_rows}
    identity = file_identity(path)
    if vocab_path is not None:
        identity["vocab_file"] = file_identity(vocab_path)
    cache_file = None
    if cache_dir is not None:
        key = vector_cache_key(identity, vocab, options)
        cache_file = Path(cache_dir) / "vectors" / f"{Path(path).name}-{key}.pt"
        if cache_file.is_file():
            try:
                obj = torch.load(cache_file, map_location="cpu", weights_only=True)
                obj["vocab"] = list(vocab) + (obj.pop("added").split("\n") if obj["added"] else [])
                arrays = {"vectors": obj["vectors"], "found": obj["found"]}
                problems = mismatches(arrays, obj.pop("manifest"))
                rows = len(obj["vocab"])
                if obj["vectors"].shape[0] != rows or obj["found"].shape != (rows,):
                    problems.append(f"{tuple(obj['vectors'].shape)} rows for {rows} words")
                if problems:
                    raise ValueError("does not verify: " + "; ".join(problems))
                obj["stats"]["cached"] = True
                obj["stats"]["seconds"] = time.perf_counter() - started
                return obj
            except Exception as exc:  # a corrupt or altered entry is rebuilt, never trusted
                log.warning("ignoring vector cache %s (%s); rebuilding it", cache_file, exc)
    wanted = wanted_keys(vocab, lowercase_fallback)
    result = read_vectors(path, fmt, wanted, extend_with, on_bad_rows, vocab_path)
    for message in result.warnings():
        log.warning("%s: %s", path, message)
    vectors, found, out_vocab, counts = align(result, vocab, lowercase_fallback, extend_with)
    stats = {
        "file": str(path),
        "file_words": result.num_words,
        "dim": result.dim,
        "added_words": len(out_vocab) - len(vocab),
        **counts,
        **{k: int(v) for k, v in result.counts.items()},
    }
    obj = {"vectors": vectors, "found": found, "vocab": out_vocab, "stats": stats}
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
        added = out_vocab[len(vocab) :]
        arrays = {"vectors": vectors, "found": found}
        entry = {**arrays, "added": "\n".join(added), "stats": stats, "manifest": manifest(arrays)}
        torch.save(entry, tmp)
        os.replace(tmp, cache_file)  # atomic: a reader sees the old entry or the new one
    obj["stats"] = {**stats, "cached": False, "seconds": time.perf_counter() - started}
    return obj


def coverage(
    found: torch.Tensor,
    token_counts: torch.Tensor | None = None,
    special_ids: Sequence[int] = (),
    unk_id: int | None = None,
) -> dict[str, float]:
    """% of vocabulary types found and % of (training) tokens covered.

    Specials are left out of the types; ``<unk>`` occurrences count as uncovered tokens.
    """
    mask = torch.ones(len(found), dtype=torch.bool)
    mask[list(special_ids)] = False
    types = int(mask.sum())
    out: dict[str, float] = {
        "types": types,
        "types_found": int(found[mask].sum()),
        "coverage_types": 100.0 * float(found[mask].sum()) / max(types, 1),
    }
    if token_counts is not None:
        counts = token_counts[: len(found)].to(torch.float64)
        total = float(counts[mask].sum()) + (float(counts[unk_id]) if unk_id is not None else 0.0)
        out["tokens"] = int(total)
        out["coverage_tokens"] = 100.0 * float(counts[mask & found].sum()) / max(total, 1.0)
    return out
