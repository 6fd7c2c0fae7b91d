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
    flat = np.fromiter((i for ids in id_lists for i in ids), dtype=np.int64, count=int(offsets[-1]))
    return EncodedSplit(
        ids=torch.from_numpy(flat),
        offsets=torch.from_numpy(offsets),
        labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
    )


def token_counts(split: EncodedSplit, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in ``split`` (e.g. for coverage and the projector)."""
    return torch.bincount(split.ids, minlength=vocab_size)


def _ngram_keys(split: EncodedSplit, order: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(key per n-gram, text index per n-gram) for the ``order``-grams inside each text."""
    ids = split.ids.numpy()
    offsets = split.offsets.numpy()
    lengths = offsets[1:] - offsets[:-1]
    text_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)  # (T,)
    if len(ids) < order:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.arange(len(ids) - order + 1)
    starts = starts[text_of[starts] == text_of[starts + order - 1]]  # never across texts
    keys = np.zeros(len(starts), dtype=np.int64)
    for j in range(order):
        keys = keys * vocab_size + ids[starts + j]
    return keys, text_of[starts]


class NgramVocab:
    """Word n-grams (orders 2..n) seen at least ``min_freq`` times in train, as extra ids.

    fastText-style features for bag-of-embeddings models, without hash collisions: the
    kept n-grams get ids ``vocab_size, vocab_size + 1, ...`` (most frequent first) and are
    appended to each text after its words; n-grams not kept are dropped.
    """

    def __init__(self, n: int, min_freq: int = 2, max_size: int | None = None) -> None:
        self.n, self.min_freq, self.max_size = n, min_freq, max_size
        self.vocab_size = 0
        self.keys: dict[int, np.ndarray] = {}  # order -> sorted kept keys
        self.ids: dict[int, np.ndarray] = {}  # order -> id of each sorted key

    def fit(self, train: EncodedSplit, vocab_size: int) -> NgramVocab:
        if vocab_size**self.n >= 2**63:
            raise ValueError(
                f"tokenizer.ngrams={self.n}: vocabulary of {vocab_size} too large for exact n-gram keys"
            )
        self.vocab_size = vocab_size
        found = []
        for order in range(2, self.n + 1):
            keys, _ = _ngram_keys(train, order, vocab_size)
            uniq, counts = np.unique(keys, return_counts=True)
            keep = counts >= self.min_freq
            found += [
                (int(c), order, int(k)) for k, c in zip(uniq[keep], counts[keep], strict=True)
            ]
        found.sort(key=lambda x: (-x[0], x[1], x[2]))  # most frequent first, deterministic ties
        if self.max_size is not None:
            found = found[: self.max_size]
        for order in range(2, self.n + 1):
            pairs = sorted((k, i) for i, (_, o, k) in enumerate(found) if o == order)
            self.keys[order] = np.asarray([k for k, _ in pairs], dtype=np.int64)
            self.ids[order] = np.asarray([vocab_size + i for _, i in pairs], dtype=np.int64)
        return self

    def __len__(self) -> int:
        return sum(len(k) for k in self.keys.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (keys are word ids of the saved tokenizer), for ``ngrams.json``."""
        return {
            "n": self.n,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "vocab_size": self.vocab_size,
            "keys": {str(o): k.tolist() for o, k in self.keys.items()},
            "ids": {str(o): i.tolist() for o, i in self.ids.items()},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NgramVocab:
        ng = cls(state["n"], state["min_freq"], state["max_size"])
        ng.vocab_size = state["vocab_size"]
        ng.keys = {int(o): np.asarray(k, dtype=np.int64) for o, k in state["keys"].items()}
        ng.ids = {int(o): np.asarray(i, dtype=np.int64) for o, i in state["ids"].items()}
        return ng

    def tokens(self, vocab: list[str]) -> list[str]:
        """Readable names of the n-gram ids in id order, e.g. ``not_good``."""
        out = [""] * len(self)
        for order, keys in self.keys.items():
            for key, idx in zip(keys.tolist(), self.ids[order].tolist(), strict=True):
                parts = []
                for _ in range(order):
                    key, rem = divmod(key, self.vocab_size)
                    parts.append(vocab[rem])
                out[idx - self.vocab_size] = "_".join(reversed(parts))
        return out

    def transform(self, split: EncodedSplit) -> EncodedSplit:
        """``split`` with each text's kept n-grams appended after its words."""
        if self.n <= 1 or not len(self):
            return split
        lengths = (split.offsets[1:] - split.offsets[:-1]).numpy()
        pieces_ids = [split.ids.numpy()]
        pieces_text = [np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)]
        pieces_order = [np.zeros(len(pieces_ids[0]), dtype=np.int64)]
        for order in range(2, self.n + 1):
            keys, text_of = _ngram_keys(split, order, self.vocab_size)
            table = self.keys[order]
            if not len(table) or not len(keys):
                continue
            pos = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
            hit = table[pos] == keys
            pieces_ids.append(self.ids[order][pos[hit]])
            pieces_text.append(text_of[hit])
            pieces_order.append(np.full(int(hit.sum()), order - 1, dtype=np.int64))
        all_text = np.concatenate(pieces_text)
        order_key = np.lexsort(
            (np.concatenate(pieces_order), all_text)
        )  # stable: by text, then order
        new_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(np.bincount(all_text, minlength=len(lengths)), out=new_offsets[1:])
        return EncodedSplit(
            ids=torch.from_numpy(np.ascontiguousarray(np.concatenate(pieces_ids)[order_key])),
            offsets=torch.from_numpy(new_offsets),
            labels=split.labels,
        )
