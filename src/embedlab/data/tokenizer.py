"""Tokenization with Hugging Face ``tokenizers``: train on the train split only, encode fast.

``build_tokenizer`` makes a word-level (or BPE) tokenizer with unicode normalisation,
optional lowercasing, punctuation splitting, ``min_freq``/``max_size`` and the specials
(``<pad>`` = 0, ``<unk>`` = 1, then optional bos/eos). ``encode`` turns texts into one flat
id array plus offsets (CSR), the layout every datamodule batches from.
"""

from __future__ import annotations

import itertools
import json
import re
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from embedlab.data.types import EncodedSplit, positions_within
from embedlab.registry import Registry

_NORMALIZERS = {
    "nfc": normalizers.NFC,
    "nfd": normalizers.NFD,
    "nfkc": normalizers.NFKC,
    "nfkd": normalizers.NFKD,
}


# normalizer steps that leave ASCII text unchanged (no ASCII character decomposes, composes,
# or is a combining mark); the steps ASCII text still needs: lowercasing
_ASCII_IDENTITY = {"NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
_ASCII_KEPT = {"Lowercase"}


def ascii_twin(tok: Tokenizer) -> Tokenizer | None:
    """``tok`` without the normalizer steps that are the identity on ASCII text, or None.

    Unicode normalisation is the costliest part of encoding short texts (NFKC: 7.4 s of
    encoding 300k texts against 4.3 s without it), and most corpora are pure ASCII, where it
    changes nothing: texts whose every character is ASCII get the same ids from the twin,
    faster. None when ``tok`` has no such step or has a step the twin cannot vouch for.
    """
    spec = json.loads(tok.to_str())
    norm = spec.get("normalizer")
    if norm is None:
        return None
    steps = norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    kinds = [step["type"] for step in steps]
    if not set(kinds) & _ASCII_IDENTITY or not set(kinds) <= _ASCII_IDENTITY | _ASCII_KEPT:
        return None
    kept = [step for step in steps if step["type"] in _ASCII_KEPT]
    spec["normalizer"] = {"type": "Sequence", "normalizers": kept} if kept else None
    return Tokenizer.from_str(json.dumps(spec))


# A word-level tokenizer's encode of pure-ASCII texts in Python (:func:`_encode_words`):
# Hugging Face's encode_batch_fast builds an Encoding (token strings, offsets, masks) per text,
# and taking the ids out of them is a list per text: 1M synthetic texts (17M words) took 10.8 s
# that way, one regex pass over a chunk and one dict lookup a word 3.3 s, the same ids (the
# tests compare both on every ASCII character). Texts are joined with NUL, which the patterns
# give a token of its own; the rest are the pre-tokenizers' word and punctuation runs, with
# ASCII's whitespace as Rust's (re.ASCII: in Unicode mode Python's \s also takes \x1c-\x1f).
_SEP = "\x00"
_WORD_PATTERNS = {
    "Whitespace": re.compile(r"\x00|\w+|[^\w\s\x00]+", re.ASCII),
    "WhitespaceSplit": re.compile(r"\x00|[^\s\x00]+", re.ASCII),
}


def word_lookup(tok: Tokenizer) -> tuple[re.Pattern, dict[str, int], int, bool, list[str]] | None:
    """``(pattern, vocabulary with NUL -> -1, <unk> id, lowercase, added tokens)`` where
    ``tok`` is a word-level tokenizer :func:`_encode_words` can stand in for on ASCII texts,
    else None."""
    spec = json.loads(tok.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    pattern = _WORD_PATTERNS.get(pre.get("type", "")) if len(pre) == 1 else None
    if model.get("type") != "WordLevel" or pattern is None:
        return None
    if spec.get("truncation") or spec.get("padding"):  # the tokenizer's own pass applies them
        return None
    norm = spec.get("normalizer")
    steps = [] if norm is None else norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    kinds = {step["type"] for step in steps}
    vocab = dict(model["vocab"])
    if not kinds <= _ASCII_IDENTITY | _ASCII_KEPT or model.get("unk_token") not in vocab:
        return None
    added = [token["content"] for token in spec.get("added_tokens") or []]
    if len(added) > 16:  # each is looked for in every chunk
        return None
    unk = vocab[model["unk_token"]]
    vocab[_SEP] = -1
    return pattern, vocab, unk, "Lowercase" in kinds, added


# tokenizer -> (its size with added tokens, its ASCII twin, its word lookup): streaming and
# inference encode a batch at a time, and building a twin (a JSON round trip) cost 1.8 ms
# against 4 ms for encoding 256 texts with a 2.6k vocabulary, more with larger ones. Adding
# tokens (pretrained words) changes the size, and with it both.
_ASCII_PATHS: weakref.WeakKeyDictionary[Tokenizer, tuple[int, Tokenizer | None, Any]] = (
    weakref.WeakKeyDictionary()
)


def _ascii_paths(tok: Tokenizer) -> tuple[Tokenizer | None, Any]:
    """``(ascii_twin(tok), word_lookup(tok))``, made once per tokenizer and size."""
    size = tok.get_vocab_size(with_added_tokens=True)
    cached = _ASCII_PATHS.get(tok)
    if cached is None or cached[0] != size:
        cached = (size, ascii_twin(tok), word_lookup(tok))
        _ASCII_PATHS[tok] = cached
    return cached[1], cached[2]


def _encode_words(lookup: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(ids, lengths)`` of pure-ASCII ``texts`` as ``lookup``'s tokenizer encodes them, or
    None where a text holds NUL or an added token (the tokenizer's own pass then)."""
    pattern, vocab, unk, lowercase, added = lookup
    joined = _SEP.join(texts)
    if joined.count(_SEP) != len(texts) - 1:
        return None
    if lowercase:
        joined = joined.lower()
    if any(token in joined or token.lower() in joined for token in added):
        return None
    get = vocab.get
    flat = np.array([get(word, unk) for word in pattern.findall(joined)], dtype=np.int64)
    cuts = np.flatnonzero(flat < 0)  # the NULs between texts
    bounds = np.concatenate(([-1], cuts, [len(flat)]))
    lengths = np.diff(bounds) - 1
    return flat[flat >= 0], lengths


def _all_ascii(texts: Sequence[str]) -> bool:
    return all(map(str.isascii, texts))


def special_tokens(cfg: Any) -> list[str]:
    """Specials in id order: <pad>, <unk>, then bos/eos when configured."""
    specials = [cfg.pad_token, cfg.unk_token]
    specials += [t for t in (cfg.bos_token, cfg.eos_token) if t]
    return specials


def _tokenizer_problems(cfg: Any) -> list[str]:
    """Checks of ``tokenizer`` whatever its kind (run by ``config.validate``)."""
    tok = cfg.tokenizer
    problems = []
    if tok.min_freq < 1:
        problems.append(f"tokenizer.min_freq: must be >= 1, got {tok.min_freq}")
    if tok.max_size is not None and tok.max_size < 3:
        problems.append(
            f"tokenizer.max_size: must be >= 3 (room for the specials), got {tok.max_size}"
        )
    ngrams = tok.ngrams if tok.ngrams is not None else 1  # None: unknown model, reported there
    if not 1 <= ngrams <= 3:
        problems.append(f"tokenizer.ngrams: must be 1, 2 or 3, got {tok.ngrams}")
    if tok.ngram_min_freq < 1:
        problems.append(f"tokenizer.ngram_min_freq: must be >= 1, got {tok.ngram_min_freq}")
    if ngrams > 1 and not cfg.pretrained.restrict_to_vocab:
        problems.append(
            "tokenizer.ngrams: word n-grams need pretrained.restrict_to_vocab=true "
            "(adding pretrained words to the vocabulary would renumber the n-gram ids)"
        )
    return problems


# tokenizer.kind -> (cfg, specials) -> (an untrained Tokenizer, its trainer)
TOKENIZERS: Registry = Registry("tokenizer", "tokenizer.kind", check=_tokenizer_problems)


@TOKENIZERS.register("word")
def _word_level(cfg: Any, specials: list[str]) -> tuple[Tokenizer, Any]:
    """One id per word type; punctuation split off unless ``split_punctuation`` is false."""
    tok = Tokenizer(models.WordLevel(unk_token=cfg.unk_token))
    trainer = trainers.WordLevelTrainer(
        vocab_size=cfg.max_size or 2**31 - 1,
        min_frequency=cfg.min_freq,
        special_tokens=specials,
        show_progress=False,
    )
    split = (
        pre_tokenizers.Whitespace() if cfg.split_punctuation else pre_tokenizers.WhitespaceSplit()
    )
    tok.pre_tokenizer = split
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return tok, trainer


@TOKENIZERS.register("bpe")
def _byte_pair(cfg: Any, specials: list[str]) -> tuple[Tokenizer, Any]:
    """Byte-pair-encoding sub-words (``max_size`` merges + specials, default 8000)."""
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
    return tok, trainer


def build_tokenizer(cfg: Any, train_texts: Sequence[str]) -> Tokenizer:
    """Train a tokenizer of kind ``cfg.kind`` on ``train_texts`` (or load ``cfg.path``)."""
    if cfg.path:  # e.g. a Hugging Face model's tokenizer.json: batching pads, not the tokenizer
        tok = Tokenizer.from_file(str(cfg.path))
        tok.no_padding()
        tok.no_truncation()
        return tok
    steps = []
    norm = str(cfg.normalization)
    if norm != "none":
        steps.append(_NORMALIZERS[norm]())
    if cfg.strip_accents:
        if norm not in ("nfd", "nfkd"):
            steps.append(normalizers.NFD())
        steps.append(normalizers.StripAccents())
    if cfg.lowercase:
        steps.append(normalizers.Lowercase())
    tok, trainer = TOKENIZERS.get(str(cfg.kind))(cfg, special_tokens(cfg))
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    twin = ascii_twin(tok) if _all_ascii(train_texts) else None
    if twin is None:
        tok.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))
        return tok
    # the same vocabulary, trained without the steps that change no ASCII text; the
    # tokenizer keeps them for the texts it meets later
    twin.train_from_iterator(train_texts, trainer=trainer, length=len(train_texts))
    twin.normalizer = tok.normalizer
    return twin


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
    chunk: int = 20_000,
) -> EncodedSplit:
    """Encode ``texts`` (batched, in Rust) into flat ids + offsets; truncate to ``max_len``.

    Works through ``chunk`` texts at a time and keeps only their ids: a whole-split
    ``encode_batch`` holds an ``Encoding`` (tokens, offsets, masks) per text, 3.9 GB of
    peak memory for 1M short texts.
    """
    id_parts, length_parts = [], []
    # for pure-ASCII texts, the same ids faster: a word-level tokenizer's in Python, else the
    # tokenizer without its normalizer steps that change no ASCII text
    twin, lookup = _ascii_paths(tok)
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        ascii_mask = np.fromiter(map(str.isascii, part), dtype=bool, count=len(part))
        ids, lengths = _encode_chunk(tok, lookup, twin, part, ascii_mask, max_len)
        if max_len is not None and len(lengths) and lengths.max() > max_len:
            ids, lengths = ids[positions_within(lengths) < max_len], np.minimum(lengths, max_len)
        id_parts.append(ids)
        length_parts.append(lengths)
    lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
    return EncodedSplit(
        ids=torch.from_numpy(flat),
        offsets=torch.from_numpy(offsets),
        labels=None if labels is None else torch.as_tensor(labels, dtype=torch.int64),
    )


def _encode_chunk(
    tok: Tokenizer,
    lookup: Any,
    twin: Tokenizer | None,
    texts: list[str],
    ascii_mask: np.ndarray,
    max_len: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, lengths)`` of ``texts``: the ASCII ones in Python where ``lookup`` allows (the
    others, in a chunk of real text often a few, by the tokenizer beside them), else all by
    the tokenizer (its ASCII twin for an all-ASCII chunk)."""
    if lookup is not None and ascii_mask.any():
        every = bool(ascii_mask.all())
        plain = texts if every else [t for t, a in zip(texts, ascii_mask, strict=True) if a]
        words = _encode_words(lookup, plain)
        if words is not None:
            if every:
                return words
            rest = [t for t, a in zip(texts, ascii_mask, strict=True) if not a]
            return _interleave(ascii_mask, words, _encode_batch(tok, rest, max_len))
    fast = twin if twin is not None and ascii_mask.all() else tok
    return _encode_batch(fast, texts, max_len)


def _encode_batch(
    tok: Tokenizer, texts: list[str], max_len: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, lengths)`` of ``texts`` by the tokenizer itself."""
    # encode_batch_fast skips the character offsets we never read: 9.3 vs 12.1 ms for the
    # 1,066 MR test texts, the same ids
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    id_lists = [e.ids if max_len is None else e.ids[:max_len] for e in encodings]
    del encodings
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    # chain.from_iterable: 40% faster than a nested generator (3.2 vs 5.4 ms per 10k texts)
    flat = itertools.chain.from_iterable(id_lists)
    return np.fromiter(flat, dtype=np.int64, count=int(lengths.sum())), lengths


def _interleave(
    mask: np.ndarray, first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(ids, lengths)`` of texts where ``mask`` is true (``first``) and false
    (``second``), merged back into the texts' order."""
    lengths = np.empty(len(mask), dtype=np.int64)
    lengths[mask], lengths[~mask] = first[1], second[1]
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), dtype=np.int64)
    for where, (ids, lens) in ((mask, first), (~mask, second)):
        out[np.repeat(starts[where], lens) + positions_within(lens)] = ids
    return out, lengths


def token_counts(split: EncodedSplit, vocab_size: int) -> torch.Tensor:
    """How often each id occurs in ``split`` (e.g. for coverage and the projector)."""
    return torch.bincount(split.ids, minlength=vocab_size)


def _ngram_keys(split: EncodedSplit, order: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(key per n-gram, flat start position per n-gram) of the ``order``-grams inside each text.

    Vectorised, O(tokens) and without a per-token text index: a start is valid unless the
    n-gram would run past the end of its text.
    """
    ids = split.ids.numpy()
    offsets = split.offsets.numpy()
    total = len(ids)
    if total < order:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    valid = np.ones(total - order + 1, dtype=bool)
    text_starts, text_ends = offsets[:-1], offsets[1:]
    for k in range(1, order):  # the last order-1 tokens of each text start no n-gram
        last = text_ends - k
        last = last[(last >= text_starts) & (last < len(valid))]
        valid[last] = False
    starts = np.flatnonzero(valid)
    keys = ids[starts].astype(np.int64)
    for j in range(1, order):
        keys *= vocab_size
        keys += ids[starts + j]
    return keys, starts


NGRAM_CHUNK = 100_000  # texts per n-gram pass: bounds the pass's temporaries


def _text_chunks(split: EncodedSplit) -> Iterator[EncodedSplit]:
    """``split`` as consecutive views of at most ``NGRAM_CHUNK`` texts (offsets from 0)."""
    offsets, size = split.offsets, NGRAM_CHUNK
    for start in range(0, len(split), size):
        stop = min(start + size, len(split))
        lo, hi = int(offsets[start]), int(offsets[stop])
        yield EncodedSplit(ids=split.ids[lo:hi], offsets=offsets[start : stop + 1] - lo)


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
        keys, counts, orders = [], [], []  # the kept n-grams of every order
        for order in range(2, self.n + 1):
            # counted a chunk of texts at a time, then merged: 1M texts peaked 0.5 GB higher
            # with every key of the split in one array
            parts = [
                np.unique(_ngram_keys(chunk, order, vocab_size)[0], return_counts=True)
                for chunk in _text_chunks(train)
            ]
            if len(parts) == 1:
                uniq, count = parts[0]
            else:
                uniq, inverse = np.unique(
                    np.concatenate([u for u, _ in parts]), return_inverse=True
                )
                count = np.bincount(
                    inverse, weights=np.concatenate([c for _, c in parts]), minlength=len(uniq)
                )
            keep = count >= self.min_freq
            keys.append(uniq[keep].astype(np.int64))
            counts.append(count[keep].astype(np.int64))
            orders.append(np.full(int(keep.sum()), order, dtype=np.int64))
        key, count, order_of = (np.concatenate(a) for a in (keys, counts, orders))
        # ids by rank: most frequent first, ties by order then key (deterministic). One lexsort:
        # sorting (count, order, key) tuples in Python took 2.2 s of a 1M-text run's start-up
        rank = np.lexsort((key, order_of, -count))
        if self.max_size is not None:
            rank = rank[: self.max_size]
        for order in range(2, self.n + 1):
            mine = order_of[rank] == order
            ranked_keys, ids = key[rank[mine]], vocab_size + np.flatnonzero(mine)
            by_key = np.argsort(ranked_keys, kind="stable")
            self.keys[order], self.ids[order] = ranked_keys[by_key], ids.astype(np.int64)[by_key]
        return self

    def __len__(self) -> int:
        return sum(len(k) for k in self.keys.values())

    def to_dict(self) -> dict[str, Any]:
        """State for checkpoints (keys are word ids of the saved tokenizer): the key and id
        arrays as int64 tensors, one object each (as Python lists, MR's 28k n-grams made
        ``torch.save`` pickle 140k ints, 0.1 s a checkpoint); ``ngrams.json`` writes them as
        lists (``json.dumps(..., default=tensor_to_list)``)."""
        return {
            "n": self.n,
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "vocab_size": self.vocab_size,
            "keys": {str(o): torch.from_numpy(k.astype(np.int64)) for o, k in self.keys.items()},
            "ids": {str(o): torch.from_numpy(i.astype(np.int64)) for o, i in self.ids.items()},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NgramVocab:
        ng = cls(state["n"], state["min_freq"], state["max_size"])
        ng.vocab_size = state["vocab_size"]
        ng.keys = {int(o): _int64_array(k) for o, k in state["keys"].items()}
        ng.ids = {int(o): _int64_array(i) for o, i in state["ids"].items()}
        return ng

    def tokens(self, vocab: list[str]) -> list[str]:
        """Readable names of the n-gram ids in id order, e.g. ``not_good``.

        The words of every key are split off for all keys at once (numpy): a divmod per word
        of each key in Python took 1.1 s of a 1M-text run's start-up (830k bigrams)."""
        out = [""] * len(self)
        names = np.asarray(vocab, dtype=object)
        for order, keys in self.keys.items():
            words = []  # the words of every key, last first
            rest = keys.astype(np.int64)
            for _ in range(order):
                rest, word = np.divmod(rest, self.vocab_size)
                words.append(names[word])
            joined = words[-1]
            for part in reversed(words[:-1]):
                joined = joined + "_" + part
            for idx, name in zip((self.ids[order] - self.vocab_size).tolist(), joined, strict=True):
                out[idx] = name
        return out

    def transform(self, split: EncodedSplit) -> EncodedSplit:
        """``split`` with each text's kept n-grams appended after its words.

        Within a text: the words, then the kept bigrams, then trigrams, each in text order.
        Every token's output position is computed directly (no sort): 1M texts of 16 words
        take 1.5 s instead of 8.5 s, and 1 GB less peak memory, than a lexsort did.
        """
        if self.n <= 1 or not len(self):
            return split
        if len(split) > NGRAM_CHUNK:  # bounded temporaries: 1M texts peaked 1.0 GB higher
            parts = [self._transform(chunk) for chunk in _text_chunks(split)]
            offsets = [parts[0].offsets]
            for part in parts[1:]:
                offsets.append(part.offsets[1:] + offsets[-1][-1])
            return EncodedSplit(
                ids=torch.cat([p.ids for p in parts]),
                offsets=torch.cat(offsets),
                labels=split.labels,
            )
        return self._transform(split)

    def _transform(self, split: EncodedSplit) -> EncodedSplit:
        offsets = split.offsets.numpy()
        lengths = offsets[1:] - offsets[:-1]
        n_texts = len(lengths)
        hits: list[tuple[np.ndarray, np.ndarray]] = []  # per order: (text of hit, n-gram id)
        text_of_token = np.repeat(np.arange(n_texts, dtype=np.int32), lengths)
        for order in range(2, self.n + 1):
            keys, starts = _ngram_keys(split, order, self.vocab_size)
            table = self.keys[order]
            if not len(table) or not len(keys):
                continue
            # torch's searchsorted runs on every intra-op thread: 1.1 s vs numpy's 4.4 s for
            # 14M bigrams in a table of 826k on 2 cores
            pos = torch.searchsorted(torch.from_numpy(table), torch.from_numpy(keys)).numpy()
            pos = np.clip(pos, 0, len(table) - 1)
            hit = table[pos] == keys
            text_of = text_of_token[starts[hit]]
            hits.append((text_of, self.ids[order][pos[hit]]))
        counts = [np.bincount(t, minlength=n_texts) for t, _ in hits]
        new_lengths = lengths + (sum(counts) if counts else 0)
        new_offsets = np.zeros(n_texts + 1, dtype=np.int64)
        np.cumsum(new_lengths, out=new_offsets[1:])
        out = np.empty(int(new_offsets[-1]), dtype=np.int64)
        # words keep their place within the text, shifted to the text's new start
        shift = np.repeat(new_offsets[:-1] - offsets[:-1], lengths)
        out[np.arange(len(split.ids)) + shift] = split.ids.numpy()
        filled = lengths.copy()  # tokens placed so far in each text
        for (text_of, ngram_ids), count in zip(hits, counts, strict=True):
            first = np.cumsum(count) - count  # index of each text's first hit of this order
            rank = np.arange(len(text_of)) - first[text_of]
            out[new_offsets[text_of] + filled[text_of] + rank] = ngram_ids
            filled += count
        return EncodedSplit(
            ids=torch.from_numpy(out),
            offsets=torch.from_numpy(new_offsets),
            labels=split.labels,
        )


def _int64_array(values: Any) -> np.ndarray:
    """An int64 array from a tensor (checkpoints) or a list (``ngrams.json``)."""
    if isinstance(values, torch.Tensor):
        return values.numpy().astype(np.int64, copy=False)
    return np.asarray(values, dtype=np.int64)


def tensor_to_list(value: Any) -> Any:
    """``json.dumps`` default for :meth:`NgramVocab.to_dict`'s tensors."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
