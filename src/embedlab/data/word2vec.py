"""Training examples for word2vec (``task=word2vec``): the sampler and its datamodule.

The recipe is word2vec's (Mikolov et al. 2013; the C tool and gensim do the same):

- words seen fewer than ``min_count`` times in the training split, and special tokens, are
  removed from the text before anything else;
- **frequent-word subsampling**: each occurrence of word w is kept with probability
  ``min(1, (sqrt(f / (t T)) + 1) t T / f)`` (f: count of w, T: total count, t: ``sample``),
  drawn afresh every epoch (:func:`keep_probabilities`);
- **dynamic window**: each kept word draws b uniformly from 1..``window`` and pairs with the
  words at most b positions away in the same (subsampled) sentence (:func:`window_pairs`);
- **negatives**: ``negative`` words per example from the unigram distribution raised to
  ``ns_exponent`` (0.75) (:class:`NegativeSampler`).

A training batch is a run of whole sentences holding about ``batch_words`` words (gensim's
``batch_words``); it becomes skip-gram pairs ``{"inputs": (P,), "targets": (P,),
"negatives": (P, K)}`` (input = the context word, target = the centre word, as in gensim) or
CBOW bags ``{"inputs": (T,), "offsets": (P,), "targets": (P,), "negatives": (P, K)}`` (the
context words of each centre word). Everything is tensor ops over the whole batch.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from embedlab.data.batching import identity_collate
from embedlab.data.datamodule import TextDataModule
from embedlab.data.tokenizer import token_counts
from embedlab.data.types import EncodedSplit

log = logging.getLogger(__name__)


def keep_probabilities(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """Per word id: the probability that one occurrence survives subsampling (1 if ``sample`` is 0)."""
    counts = counts.double()
    if sample <= 0:
        return torch.ones_like(counts)
    threshold = sample * counts.sum()
    p = (torch.sqrt(counts / threshold) + 1) * threshold / counts.clamp_min(1)
    return p.clamp_max(1.0).float()


def window_pairs(
    sentence: torch.Tensor, window: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre positions, context positions) of all pairs under word2vec's dynamic window.

    ``sentence[i]`` is the sentence id of position i (positions of one sentence are
    consecutive); each centre i draws ``b_i`` uniformly in 1..``window`` and pairs with every
    j != i of its sentence with ``|i - j| <= b_i``. Pairs come grouped by offset.
    """
    n = len(sentence)
    reach = torch.randint(1, window + 1, (n,), generator=generator)  # (N,) b_i
    pos = torch.arange(n)
    centres, contexts = [], []
    for d in range(1, window + 1):
        for sign in (-1, 1):
            j = pos + sign * d  # (N,)
            ok = (j >= 0) & (j < n) & (reach >= d)
            ok &= sentence[j.clamp(0, max(n - 1, 0))] == sentence
            centres.append(pos[ok])
            contexts.append(j[ok])
    return torch.cat(centres), torch.cat(contexts)


class NegativeSampler:
    """Word ids drawn from ``counts ** exponent`` (normalised); ids with count 0 never come.

    Like word2vec's ``unigram_table``: a table of ``table_size`` ids, word i filling a share
    ``probs[i]`` of it, indexed at random (a gather, 10x faster than a binary search of the
    cumulative distribution); a word whose share is under half a slot is never drawn.
    """

    def __init__(
        self, counts: torch.Tensor, exponent: float = 0.75, table_size: int = 2**23
    ) -> None:
        weights = counts.double().pow(exponent) * (counts > 0)
        self.probs = weights / weights.sum()
        ends = torch.round(torch.cumsum(self.probs, 0) * table_size).long()
        slots = torch.diff(ends, prepend=torch.zeros(1, dtype=torch.long))
        self.table = torch.repeat_interleave(torch.arange(len(counts), dtype=torch.int32), slots)

    def sample(
        self, shape: tuple[int, ...], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        slot = torch.randint(0, len(self.table), shape, generator=generator)
        return self.table[slot].long()


class Word2VecBatches(Dataset):
    """Batch b = the examples from sentences ``chunks[b]..chunks[b+1]`` of one split.

    ``fixed_seed`` (val/test): every pass draws the same subsampling, windows and negatives;
    otherwise each pass draws afresh from ``generator`` (None: torch's global generator, which
    ``seed`` seeds in the main process and the DataLoader seeds in each worker process).
    """

    def __init__(
        self,
        split: EncodedSplit,
        keep: torch.Tensor,
        negatives: NegativeSampler,
        cfg: Any,  # the task node: window, negative, cbow, batch_words
        cbow: bool,
        generator: torch.Generator | None = None,
        fixed_seed: int | None = None,
    ) -> None:
        self.split, self.keep, self.negatives = split, keep, negatives
        self.window, self.k, self.cbow = int(cfg.window), int(cfg.negative), cbow
        self.generator, self.fixed_seed = generator, fixed_seed
        # chunk boundaries at sentence starts, about batch_words words apart
        starts = split.offsets[:-1]
        chunk_of = torch.div(starts, max(int(cfg.batch_words), 1), rounding_mode="floor")
        first = torch.ones(len(starts), dtype=torch.bool)
        first[1:] = chunk_of[1:] != chunk_of[:-1]
        self.bounds = torch.cat([torch.nonzero(first).flatten(), torch.tensor([len(starts)])])
        self.num_words = int(split.offsets[-1])

    def __len__(self) -> int:
        return max(len(self.bounds) - 1, 0)

    def words_in(self, b: int) -> int:
        lo, hi = int(self.bounds[b]), int(self.bounds[b + 1])
        return int(self.split.offsets[hi] - self.split.offsets[lo])

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        b = int(indices[0])
        gen = self.generator
        if self.fixed_seed is not None:
            gen = torch.Generator().manual_seed(self.fixed_seed * 1_000_003 + b)
        lo, hi = int(self.bounds[b]), int(self.bounds[b + 1])
        start, end = int(self.split.offsets[lo]), int(self.split.offsets[hi])
        ids = self.split.ids[start:end]
        lengths = self.split.lengths[lo:hi]
        sentence = torch.repeat_interleave(torch.arange(hi - lo), lengths, output_size=len(ids))
        kept = torch.rand(len(ids), generator=gen) < self.keep[ids]  # subsampling (+ min_count)
        ids, sentence = ids[kept], sentence[kept]
        centre, context = window_pairs(sentence, self.window, gen)
        batch: dict[str, Any] = {"words": end - start}
        if self.cbow:  # one bag of context words per centre word that has any
            order = torch.argsort(centre, stable=True)
            centre, context = centre[order], context[order]
            targets, counts = torch.unique_consecutive(centre, return_counts=True)
            batch["inputs"] = ids[context]
            batch["offsets"] = torch.cumsum(counts, 0) - counts
            batch["targets"] = ids[targets]
        else:
            batch["inputs"] = ids[context]
            batch["targets"] = ids[centre]
        batch["negatives"] = self.negatives.sample((len(batch["targets"]), self.k), gen)
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])


class Word2VecDataModule(TextDataModule):
    """Any text source (labels ignored) -> tokenizer -> word2vec batches (see the module doc)."""

    def __init__(
        self,
        data_cfg: Any,
        tokenizer_cfg: Any,
        paths_cfg: Any,
        seed: int,
        task_cfg: Any,
        cbow: bool,
    ) -> None:
        super().__init__(data_cfg, tokenizer_cfg, paths_cfg, seed)
        self.task_cfg = task_cfg
        self.cbow = cbow
        self.tokens_per_example = 1.0  # an example is one word of the training text
        self.datasets: dict[str, Word2VecBatches] = {}
        self.counts: torch.Tensor | None = None  # training counts of the kept words (0: dropped)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.encoded = self._load_and_tokenize()
        cfg = self.task_cfg
        counts = token_counts(self.encoded["train"], len(self.vocab))
        for tok in self.specials:  # specials and unused ids are not words
            if tok in self.vocab:
                counts[self.vocab.index(tok)] = 0
        counts[[i for i, w in enumerate(self.vocab) if w.startswith("<unused")]] = 0
        counts[counts < cfg.min_count] = 0
        self.counts = counts
        keep = keep_probabilities(counts, cfg.sample) * (counts > 0)
        negatives = NegativeSampler(counts, cfg.ns_exponent)
        for name, enc in self.encoded.items():
            fixed = None if name == "train" else self.seed
            self.datasets[name] = Word2VecBatches(enc, keep, negatives, cfg, self.cbow, None, fixed)
        log.info(
            "word2vec data: %s | vocab %d, %d words with count >= %d (%d training tokens) | tokenized cache: %s",
            self.data_cfg.source,
            len(self.vocab),
            int((counts > 0).sum()),
            cfg.min_count,
            int(counts.sum()),
            self.cache_status,
        )

    def _loader(self, split: str, train: bool) -> DataLoader:
        # a dataset item is a whole batch (a run of sentences); train batches in random order;
        # data.num_workers=1 builds them in another process, beside the training step
        workers = self.data_cfg.num_workers if train else 0
        return DataLoader(
            self.datasets[split],
            batch_size=1,
            shuffle=train,
            collate_fn=identity_collate,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
