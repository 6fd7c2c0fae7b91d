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
    if cfg.path:  # e.g. a Hugging Face model's tokenizer.json: batching pads, not the tokenizer
        tok = Tokenizer.from_file(str(cfg.path))
        tok.no_padding()
        tok.no_truncation()
        return tok
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
        split = (
            pre_tokenizers.Whitespace()
            if cfg.split_punctuation
            else pre_tokenizers.WhitespaceSplit()
        )
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
    out = [""] * len(vocab)
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
    flat = np.fromiter((i for ids in id_lists for i in ids), dtype=np.int64, count=int(offsets[-1]))
    return EncodedSplit(
        ids=torch.from_numpy(flat),
        offsets=torch.from_numpy(offsets),
        labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
    )


def token_counts(split: EncodedSplit, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in ``split`` (e.g. for coverage and the projector)."""
    return torch.bincount(split.ids, minlength=vocab_size)


_NGRAM_PRIMES = (1, 116049371, 2654435761)  # one multiplier per position in the n-gram


def add_ngrams(split: EncodedSplit, n: int, buckets: int, vocab_size: int) -> EncodedSplit:
    """Append hashed word n-grams (orders 2..n) to every text, fastText-style.

    The n-gram of ids ``(a, b[, c])`` becomes id ``vocab_size + hash(a, b[, c]) % buckets``, so
    the embedding table needs ``vocab_size + buckets`` rows. N-grams never cross text
    boundaries; each text's unigrams come first, then its bigrams, then its trigrams.
    """
    if n <= 1:
        return split
    ids = split.ids.numpy()
    offsets = split.offsets.numpy()
    lengths = offsets[1:] - offsets[:-1]
    text_of = np.repeat(
        np.arange(len(lengths), dtype=np.int64), lengths
    )  # (T,) text index per token
    pieces_ids = [ids]
    pieces_text = [text_of]
    pieces_order = [np.zeros(len(ids), dtype=np.int64)]
    for order in range(2, n + 1):
        if len(ids) < order:
            break
        starts = np.arange(len(ids) - order + 1)
        same = text_of[starts] == text_of[starts + order - 1]  # n-gram inside one text
        starts = starts[same]
        h = np.zeros(len(starts), dtype=np.uint64)
        for j in range(order):
            h = h * np.uint64(_NGRAM_PRIMES[1]) + ids[starts + j].astype(np.uint64) * np.uint64(
                _NGRAM_PRIMES[j]
            )
        pieces_ids.append(vocab_size + (h % np.uint64(buckets)).astype(np.int64))
        pieces_text.append(text_of[starts])
        pieces_order.append(np.full(len(starts), order - 1, dtype=np.int64))
    all_ids = np.concatenate(pieces_ids)
    all_text = np.concatenate(pieces_text)
    order_key = np.lexsort((np.concatenate(pieces_order), all_text))  # by text, then n-gram order
    new_lengths = np.bincount(all_text, minlength=len(lengths)).astype(np.int64)
    new_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(new_lengths, out=new_offsets[1:])
    return EncodedSplit(
        ids=torch.from_numpy(np.ascontiguousarray(all_ids[order_key])),
        offsets=torch.from_numpy(new_offsets),
        labels=split.labels,
    )


def ngram_vocabulary(n: int, buckets: int) -> list[str]:
    """Names of the n-gram bucket rows (appended to the vocabulary when ``n > 1``)."""
    return [f"<ngram:{i}>" for i in range(buckets)] if n > 1 else []
