"""Training examples for word2vec (``task=word2vec``): the sampler and its datamodule.

The recipe is word2vec's (Mikolov et al. 2013; the C tool and gensim do the same):

- words seen fewer than ``min_count`` times in the training split, and special tokens, are
  removed from the text before anything else;
- **frequent-word subsampling**: each occurrence of word w is kept with probability
  ``min(1, (sqrt(f / (t T)) + 1) t T / f)`` (f: count of w, T: total count, t: ``sample``),
  drawn afresh every epoch (:func:`keep_probabilities`);
- **dynamic window**: each kept word draws b uniformly from 1..``window`` and pairs with the
  words at most b positions away in the same (subsampled) sentence;
- **negatives**: ``negative`` words per example from the unigram distribution raised to
  ``ns_exponent`` (0.75) (:func:`word2vec_sampling`: an alias table).

The draws and the updates happen in the compiled kernel
(:mod:`embedlab.training.word2vec_kernel`); this module gives it the text. A training batch is
a run of whole sentences holding about ``batch_words`` words (gensim's ``batch_words``):
``{"ids": (N,) int32, "bounds": (S+1,) sentence starts, "words": N, "seed": the batch's
random stream}``.
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
from embedlab.training.word2vec_kernel import Sampling, alias_table

log = logging.getLogger(__name__)


def keep_probabilities(counts: torch.Tensor, sample: float) -> torch.Tensor:
    """Per word id: the probability that one occurrence survives subsampling (1 if ``sample`` is 0)."""
    counts = counts.double()
    if sample <= 0:
        return torch.ones_like(counts)
    threshold = sample * counts.sum()
    p = (torch.sqrt(counts / threshold) + 1) * threshold / counts.clamp_min(1)
    return p.clamp_max(1.0).float()


def word2vec_sampling(
    counts: torch.Tensor, sample: float, window: int, negative: int, exponent: float = 0.75
) -> Sampling:
    """The kernel's sampling tables for the training counts (words with count 0: removed).

    Negatives come from an alias table of ``counts ** exponent`` (one random slot and one
    comparison a draw, exact probabilities, 8 bytes a word: word2vec's 2**23-slot
    ``unigram_table`` is 32 MB read at random, and drops words under half a slot).
    """
    keep = (keep_probabilities(counts, sample) * (counts > 0)).float().numpy()
    prob, alias = alias_table(counts.double().pow(exponent) * (counts > 0))
    return Sampling(keep, prob, alias, int(window), int(negative))


class Word2VecBatches(Dataset):
    """Batch b = sentences ``bounds[b]..bounds[b+1]`` of one split, with a seed for its draws.

    ``fixed_seed`` (val/test): every pass draws the same subsampling, windows and negatives;
    otherwise each pass draws a fresh seed from ``generator`` (None: torch's global generator,
    which ``seed`` seeds in the main process, the DataLoader in each worker process, and a
    checkpoint restores on resume).
    """

    def __init__(
        self,
        split: EncodedSplit,
        batch_words: int,
        generator: torch.Generator | None = None,
        fixed_seed: int | None = None,
    ) -> None:
        self.ids = split.ids.to(torch.int32).numpy()
        self.offsets = split.offsets.numpy()
        self.generator, self.fixed_seed = generator, fixed_seed
        # batch boundaries at sentence starts, about batch_words words apart
        starts = split.offsets[:-1]
        chunk_of = torch.div(starts, max(int(batch_words), 1), rounding_mode="floor")
        first = torch.ones(len(starts), dtype=torch.bool)
        first[1:] = chunk_of[1:] != chunk_of[:-1]
        self.bounds = torch.cat([torch.nonzero(first).flatten(), torch.tensor([len(starts)])])
        self.num_words = int(split.offsets[-1])

    def __len__(self) -> int:
        return max(len(self.bounds) - 1, 0)

    def words_in(self, b: int) -> int:
        lo, hi = int(self.bounds[b]), int(self.bounds[b + 1])
        return int(self.offsets[hi] - self.offsets[lo])

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        b = int(indices[0])
        if self.fixed_seed is not None:
            seed = self.fixed_seed * 1_000_003 + b
        else:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        lo, hi = int(self.bounds[b]), int(self.bounds[b + 1])
        start, end = int(self.offsets[lo]), int(self.offsets[hi])
        return {
            "ids": self.ids[start:end],
            "bounds": self.offsets[lo : hi + 1] - start,
            "words": end - start,
            "seed": seed,
        }

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
    ) -> None:
        super().__init__(data_cfg, tokenizer_cfg, paths_cfg, seed)
        self.task_cfg = task_cfg
        self.tokens_per_example = 1.0  # an example is one word of the training text
        self.datasets: dict[str, Word2VecBatches] = {}
        self.counts: torch.Tensor | None = None  # training counts of the kept words (0: dropped)
        self.sampling: Sampling | None = None  # the kernel's keep probabilities and negatives

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
        self.sampling = word2vec_sampling(
            counts, cfg.sample, cfg.window, cfg.negative, cfg.ns_exponent
        )
        for name, enc in self.encoded.items():
            fixed = None if name == "train" else self.seed
            self.datasets[name] = Word2VecBatches(enc, cfg.batch_words, None, fixed)
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
