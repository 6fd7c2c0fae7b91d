"""Tokenization with Hugging Face ``tokenizers``: train on the train split only, encode fast.

``build_tokenizer`` makes a word-level (or BPE) tokenizer with unicode normalisation,
optional lowercasing, punctuation splitting, ``min_freq``/``max_size`` and the specials
(``<pad>`` = 0, ``<unk>`` = 1, then optional bos/eos). ``encode`` turns texts into one flat
id array plus offsets (CSR), the layout every datamodule batches from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from embedlab.data.types import EncodedSplit

_NORMALIZERS = {
    "nfc": normalizers.NFC,
    "nfd": normalizers.NFD,
    "nfkc": normalizers.NFKC,
    "nfkd": normalizers.NFKD,
}


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def special_tokens(cfg: Any) -> list[str]:
    """Specials in id order: <pad>, <unk>, then bos/eos when configured."""
    specials = [cfg.pad_token, cfg.unk_token]
    specials += [t for t in (cfg.bos_token, cfg.eos_token) if t]
    return specials


def build_tokenizer(cfg: Any, train_texts: Sequence[str]) -> Tokenizer:
    """Train a tokenizer on ``train_texts`` (or load ``cfg.path``)."""
    if cfg.path:
        return Tokenizer.from_file(str(cfg.path))
    kind = _value(cfg.kind)
    steps = []
    norm = _value(cfg.normalization)
    if norm != "none":
        steps.append(_NORMALIZERS[norm]())
    if cfg.strip_accents:
        if norm not in ("nfd", "nfkd"):
            steps.append(normalizers.NFD())
        steps.append(normalizers.StripAccents())
    if cfg.lowercase:
        steps.append(normalizers.Lowercase())
    specials = special_tokens(cfg)
    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=cfg.unk_token))
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.max_size or 2**31 - 1,
            min_frequency=cfg.min_freq,
            special_tokens=specials,
            show_progress=False,
        )
        split = pre_tokenizers.Whitespace() if cfg.split_punctuation else pre_tokenizers.WhitespaceSplit()
        tok.pre_tokenizer = split
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=cfg.unk_token))
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.max_size or 8000,
            min_frequency=cfg.min_freq,
            special_tokens=specials,
            show_progress=False,
        )
        metaspace = pre_tokenizers.Metaspace()
        tok.pre_tokenizer = (
            pre_tokenizers.Sequence([pre_tokenizers.Punctuation(), metaspace])
            if cfg.split_punctuation
            else metaspace
        )
        tok.decoder = decoders.Metaspace()
    else:  # the schema's enum makes this unreachable from config
        raise ValueError(f"tokenizer.kind: unknown {kind!r}")
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    tok.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))
    return tok


def vocabulary(tok: Tokenizer) -> list[str]:
    """Token strings ordered by id."""
    vocab = tok.get_vocab(with_added_tokens=True)
    # ids can have holes: when the training text itself contains a special token (PTB's
    # "<unk>"), the WordLevel trainer gives it a second id and leaves the first unused
    out = [f"<unused{i}>" for i in range(max(vocab.values(), default=-1) + 1)]
    for token, idx in vocab.items():
        out[idx] = token
    return out


def encode(
    tok: Tokenizer,
    texts: Sequence[str],
    labels: np.ndarray | None = None,
    max_len: int | None = None,
) -> EncodedSplit:
    """Encode ``texts`` (batched, in Rust) into flat ids + offsets; truncate to ``max_len``."""
    encodings = tok.encode_batch(list(texts), add_special_tokens=False)
    id_lists = [e.ids for e in encodings]
    if max_len is not None:
        id_lists = [ids[:max_len] for ids in id_lists]
    lengths = np.fromiter((len(ids) for ids in id_lists), dtype=np.int64, count=len(id_lists))
    offsets = np.zeros(len(id_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(
        (i for ids in id_lists for i in ids), dtype=np.int64, count=int(offsets[-1])
    )
    return EncodedSplit(
        ids=torch.from_numpy(flat),
        offsets=torch.from_numpy(offsets),
        labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
    )


def token_counts(split: EncodedSplit, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in ``split`` (e.g. for coverage and the projector)."""
    return torch.bincount(split.ids, minlength=vocab_size)
