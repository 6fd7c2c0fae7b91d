"""Pretrained vector sources, aligned to a vocabulary.

A source is a registered function ``load(cfg, vocab, cache_dir) -> AlignedVectors``: it reads
vectors for the vocabulary's words only and returns a ``(len(vocab), dim)`` matrix with a mask
of the rows it found (exact word first, then the lowercased word). Rows it did not find are
filled by the OOV initializer (``embedding.init``) in the factory. ``cache_dir`` is
``paths.cache_dir``: the aligned matrix is cached there, keyed by (file path + size + mtime,
vocabulary hash, options), so a second run skips the file entirely.

Sources: ``none``, ``glove``, ``word2vec``, ``fasttext``, ``file`` (any format by path) and
``hf`` (a Hugging Face model's input embeddings, with that model's own tokenizer: see
:func:`tokenizer_override`). Adding one: a function registered here and
``configs/pretrained/<name>.yaml``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from embedlab.embeddings.vectors.align import load_aligned
from embedlab.embeddings.vectors.download import GLOVE_DIMS, ensure_file, fasttext_urls, glove_urls
from embedlab.errors import ConfigError, DataError
from embedlab.registry import Registry

log = logging.getLogger(__name__)


def _pretrained_problems(cfg: Any) -> list[str]:
    """Checks of ``pretrained`` whatever its source (run by ``config.validate``)."""
    pre = cfg.pretrained
    problems: list[str] = []
    if pre.format is not None:
        from embedlab.embeddings.vectors.formats import VECTOR_FORMATS

        if pre.format not in VECTOR_FORMATS:
            problems.append(
                f"pretrained.format: {pre.format!r} is not a valid choice; choose one of {list(VECTOR_FORMATS)}"
            )
    if (
        not pre.restrict_to_vocab
        and pre.source != "none"
        and (not pre.max_vectors or pre.max_vectors < 1)
    ):
        problems.append(
            "pretrained.max_vectors: restrict_to_vocab=false needs max_vectors >= 1 (how many top words to add)"
        )
    return problems


def _glove_problems(cfg: Any) -> list[str]:
    pre = cfg.pretrained
    if pre.name not in GLOVE_DIMS:
        return [
            f"pretrained.name: GloVe corpus {pre.name!r} unknown; choose one of {sorted(GLOVE_DIMS)}"
        ]
    if pre.dim not in GLOVE_DIMS[pre.name]:
        return [
            f"pretrained.dim: GloVe {pre.name} comes in dims {list(GLOVE_DIMS[pre.name])}, got {pre.dim}"
        ]
    return []


def _fasttext_problems(cfg: Any) -> list[str]:
    if cfg.pretrained.path or cfg.pretrained.name:
        return []
    return [
        "pretrained.name: fastText needs a name (e.g. cc.en.300, wiki-news-300d-1M) or pretrained.path"
    ]


def _file_problems(cfg: Any) -> list[str]:
    return (
        []
        if cfg.pretrained.path
        else ["pretrained.path: source=file needs the path of a vector file"]
    )


def _hf_problems(cfg: Any) -> list[str]:
    problems = []
    if not (cfg.pretrained.path or cfg.pretrained.name):
        problems.append(
            "pretrained.name: source=hf needs a model id or folder (pretrained.name or pretrained.path)"
        )
    if not cfg.pretrained.restrict_to_vocab:
        problems.append(
            "pretrained.restrict_to_vocab: an hf model's vocabulary is fixed; keep it true"
        )
    return problems


# pretrained.source -> load(cfg, vocab, cache_dir) -> AlignedVectors | None
PRETRAINED_SOURCES: Registry = Registry(
    "pretrained source", "pretrained.source", check=_pretrained_problems
)

WORD2VEC_DEFAULT = "GoogleNews-vectors-negative300.bin"  # no official direct URL (Google Drive)


@dataclass
class AlignedVectors:
    """Vectors for a vocabulary: row i belongs to vocab[i] where ``found[i]`` is true."""

    vectors: torch.Tensor  # (V, D) float32
    found: torch.Tensor  # (V,) bool
    vocab: list[str]  # the (possibly extended) vocabulary the rows follow
    stats: dict[str, Any] = field(default_factory=dict)  # coverage, timings, file identity

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _from_file(
    cfg: Any, path: Path, fmt: str | None, vocab: Sequence[str], cache_dir: str | None
) -> AlignedVectors:
    extend = 0 if cfg.restrict_to_vocab else int(cfg.max_vectors or 0)
    obj = load_aligned(
        path,
        vocab,
        fmt=fmt,
        vocab_path=cfg.vocab_path,
        lowercase_fallback=cfg.lowercase_fallback,
        extend_with=extend,
        on_bad_rows=str(cfg.on_bad_rows),
        cache_dir=cache_dir if cfg.cache else None,
    )
    vectors = AlignedVectors(obj["vectors"], obj["found"], list(obj["vocab"]), obj["stats"])
    if cfg.dim is not None and vectors.dim != cfg.dim:
        raise DataError(f"vectors have dim {vectors.dim} but pretrained.dim={cfg.dim}", str(path))
    log.info(
        "pretrained %s: %d/%d rows found (%d lowercased), dim %d, %s in %.2fs",
        path,
        int(vectors.found.sum()),
        len(vectors.vocab),
        vectors.stats.get("found_lower", 0),
        vectors.dim,
        "from cache" if vectors.stats.get("cached") else "parsed",
        vectors.stats.get("seconds", 0.0),
    )
    return vectors


def _urls(cfg: Any, known: list[str]) -> list[str]:
    return [cfg.url] if cfg.url else known


@PRETRAINED_SOURCES.register("none")
def no_vectors(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors | None:
    """No pretrained vectors: every row comes from the initializer."""
    return None


def glove_filename(name: str, dim: int) -> str:
    return f"glove.{name}.{dim}d.txt"


@PRETRAINED_SOURCES.register("glove", check=_glove_problems)
def glove(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors:
    """``glove.{name}.{dim}d.txt`` in ``pretrained.cache_dir``, downloaded (zip) when missing."""
    if cfg.path:
        return _from_file(cfg, Path(cfg.path), "text", vocab, cache_dir)
    path = ensure_file(
        glove_filename(cfg.name, cfg.dim),
        cfg.cache_dir,
        _urls(cfg, glove_urls(cfg.name)),
        cfg.download,
        cfg.sha256,
        keep_archive=True,
    )
    return _from_file(cfg, path, "text", vocab, cache_dir)


@PRETRAINED_SOURCES.register("word2vec")
def word2vec(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors:
    """word2vec C binary (``.bin``) or text (header ``count dim``); ``format`` overrides the extension."""
    if cfg.path:
        path = Path(cfg.path)
    else:
        path = ensure_file(
            cfg.name or WORD2VEC_DEFAULT, cfg.cache_dir, _urls(cfg, []), cfg.download, cfg.sha256
        )
    fmt = cfg.format or ("word2vec_bin" if path.name.endswith(".bin") else "text")
    return _from_file(cfg, path, fmt, vocab, cache_dir)


@PRETRAINED_SOURCES.register("fasttext", check=_fasttext_problems)
def fasttext(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors:
    """fastText ``.vec`` text (with header): ``{name}.vec`` in the cache (e.g. cc.en.300), or ``path``."""
    if cfg.path:
        path = Path(cfg.path)
    else:
        path = ensure_file(
            f"{cfg.name}.vec",
            cfg.cache_dir,
            _urls(cfg, fasttext_urls(cfg.name)),
            cfg.download,
            cfg.sha256,
        )
    return _from_file(cfg, path, cfg.format or "fasttext", vocab, cache_dir)


@PRETRAINED_SOURCES.register("file", check=_file_problems)
def vector_file(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors:
    """Any supported format by path: text (GloVe / word2vec / .vec), word2vec binary, .pt or .npy."""
    return _from_file(cfg, Path(cfg.path), cfg.format, vocab, cache_dir)


# --------------------------------------------------------------------------- Hugging Face


def hf_model_dir(cfg: Any) -> Path:
    """The local folder of the model ``pretrained.path`` or ``pretrained.name`` (a hub id)."""
    local = Path(cfg.path or cfg.name)
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(cfg.name, local_files_only=not cfg.download))
    except Exception as exc:
        raise DataError(
            f"Hugging Face model {cfg.name!r} is neither a local folder nor fetchable ({exc}); "
            "set pretrained.path to a folder holding config.json, the weights and tokenizer.json"
        ) from exc


def _hf_specials(folder: Path) -> dict[str, str]:
    specials: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = folder / name
        if f.is_file():
            data = json.loads(f.read_text(encoding="utf-8"))
            for key in ("pad_token", "unk_token"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("content")
                if isinstance(value, str) and key not in specials:
                    specials[key] = value
    return specials


def tokenizer_override(cfg: Any) -> dict[str, Any] | None:
    """Tokenizer settings a pretrained source imposes (the ``hf`` model's own tokenizer), or None.

    Returned keys go into ``tokenizer``: ``path`` (the model's tokenizer.json) and its
    ``pad_token``/``unk_token``, so the data is tokenized the way the matrix rows expect.
    """
    if cfg.source != "hf" or not cfg.use_tokenizer:
        return None
    folder = hf_model_dir(cfg)
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise DataError("the model has no tokenizer.json (a fast tokenizer is needed)", str(path))
    specials = _hf_specials(folder)
    return {"path": str(path), **specials}


@PRETRAINED_SOURCES.register("hf", check=_hf_problems)
def hf(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors:
    """The input-embedding matrix of a Hugging Face model (needs the ``hf`` extra: transformers)."""
    try:
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(
            ["pretrained.source=hf needs transformers: pip install 'embedlab[hf]'"]
        ) from exc
    from tokenizers import Tokenizer

    folder = hf_model_dir(cfg)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    weight = model.get_input_embeddings().weight.detach().float().clone()  # (V_model, D)
    del model
    model_vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab(
        with_added_tokens=True
    )
    vectors = torch.zeros(len(vocab), weight.shape[1])
    found = torch.zeros(len(vocab), dtype=torch.bool)
    lower = 0
    for i, token in enumerate(vocab):
        row = model_vocab.get(token)
        if row is None and cfg.lowercase_fallback:
            row = model_vocab.get(token.lower())
            lower += row is not None
        if row is not None and row < weight.shape[0]:
            vectors[i] = weight[row]
            found[i] = True
    stats = {
        "file": str(folder),
        "file_words": int(weight.shape[0]),
        "dim": int(weight.shape[1]),
        "found_lower": lower,
        "cached": False,
    }
    log.info(
        "pretrained hf %s: %d/%d rows found, dim %d",
        folder,
        int(found.sum()),
        len(vocab),
        weight.shape[1],
    )
    return AlignedVectors(vectors, found, list(vocab), stats)


def load_pretrained(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors | None:
    """Load the configured source aligned to ``vocab`` (None for ``source: none``)."""
    return PRETRAINED_SOURCES.get(cfg.source)(cfg, vocab, cache_dir)
