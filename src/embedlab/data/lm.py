"""LightningDataModule for language modelling over unlabelled text splits.

Texts (lines, sentences) from any data source whose splits have no labels are tokenized
with the train-split tokenizer, then batched one of two ways (``data.chunking``):

- ``stream``: every split becomes one token stream (each text followed by ``eos`` when the
  tokenizer has one, the usual PTB convention), cut into contiguous, non-overlapping
  ``block_size`` windows; the targets are the inputs shifted by one. Every token of a split
  but the first is predicted exactly once, so val/test perplexity is over the whole file.
  The last window is padded; its pad targets are ignored.
- ``rows``: the same stream cut into ``batch_size`` contiguous rows (``eval_batch_size`` for
  val/test; under DDP each rank its own rows), read left to right ``block_size`` tokens per
  batch, in order (the ``batchify`` of PyTorch's word_language_model example): batch i+1
  continues batch i row by row, so a recurrent model can carry its state across batches
  (truncated BPTT). Every token but the first is still predicted exactly once (the last row
  is padded; pad targets are ignored), so perplexity is over the same tokens as ``stream``.
- ``sentence``: one text per example, ``bos + tokens + eos`` truncated to ``block_size + 1``
  tokens, right-padded per batch (training batches length-bucketed).

Batches are ``{"ids": (B, T), "targets": (B, T)}`` with target ``-100`` (ignored) at pads.
Reading and tokenizing (through the tokenized cache) is :class:`TextDataModule`'s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from embedlab.data.batching import index_tensor, pad_rows, world_and_rank
from embedlab.data.datamodule import TextDataModule
from embedlab.data.types import IGNORE, EncodedSplit

log = logging.getLogger(__name__)


def with_specials(split: EncodedSplit, bos: int | None, eos: int | None) -> EncodedSplit:
    """Wrap every text of ``split`` in ``bos`` / ``eos`` (either may be None), vectorised."""
    n = len(split)
    add_front, add_back = int(bos is not None), int(eos is not None)
    lengths = split.lengths + add_front + add_back
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=offsets[1:])
    ids = torch.empty(int(offsets[-1]), dtype=torch.int64)
    if bos is not None:
        ids[offsets[:-1]] = bos
    if eos is not None:
        ids[offsets[1:] - 1] = eos
    total = int(split.lengths.sum())
    # where each original token lands: its text's new start + front special + position in text
    owner = torch.repeat_interleave(torch.arange(n), split.lengths, output_size=total)
    pos = torch.arange(total) - split.offsets[:-1][owner]
    ids[offsets[:-1][owner] + add_front + pos] = split.ids
    return EncodedSplit(ids=ids, offsets=offsets)


class StreamWindows(Dataset):
    """Contiguous ``block_size`` windows over one token stream; targets shifted by one."""

    def __init__(self, stream: torch.Tensor, block_size: int, pad_id: int) -> None:
        self.block_size = block_size
        self.num_windows = max(math.ceil((len(stream) - 1) / block_size), 0)
        size = self.num_windows * block_size + 1
        self.stream = torch.full((size,), pad_id, dtype=torch.int64)
        self.stream[: len(stream)] = stream
        self.targets = torch.full((size,), IGNORE, dtype=torch.int64)
        self.targets[: len(stream)] = stream
        self.num_tokens = max(len(stream) - 1, 0)  # predicted tokens in the split

    def __len__(self) -> int:
        return self.num_windows

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        starts = index_tensor(indices) * self.block_size  # (B,)
        pos = starts[:, None] + torch.arange(self.block_size)  # (B, T)
        return {"ids": self.stream[pos], "targets": self.targets[pos + 1]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


class StreamRows(Dataset):
    """The stream as ``rows`` contiguous rows, one (rows, <=block_size) batch per index, in order.

    Row r holds inputs ``stream[r*L : (r+1)*L]`` with L = ceil((N - 1) / rows), targets shifted
    by one; the tail past the stream is pad (target ignored). ``shard`` = (rank, world) keeps
    this rank's ``rows`` of ``rows * world``.
    """

    def __init__(
        self,
        stream: torch.Tensor,
        rows: int,
        block_size: int,
        pad_id: int,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        rank, world = shard
        total_rows = rows * world
        self.num_tokens = max(len(stream) - 1, 0)  # predicted tokens in the split (all ranks)
        length = max(math.ceil(self.num_tokens / total_rows), 1)  # inputs per row
        windows = StreamWindows(stream, length, pad_id)  # row r = window r, padded to full rows
        index = list(range(rank * rows, (rank + 1) * rows))
        grid = windows.__getitems__([min(i, windows.num_windows - 1) for i in index])
        beyond = torch.tensor(index) >= windows.num_windows  # rows past the stream: all pad
        self.ids = grid["ids"].masked_fill(beyond[:, None], pad_id)  # (rows, L)
        self.targets = grid["targets"].masked_fill(beyond[:, None], IGNORE)  # (rows, L)
        self.block_size = block_size
        self.num_batches = math.ceil(length / block_size)

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cols = slice(i * self.block_size, (i + 1) * self.block_size)
        return {"ids": self.ids[:, cols], "targets": self.targets[:, cols]}


class SentenceBatches(Dataset):
    """One (bos ... eos) text per row, right-padded; targets shifted by one, pads ignored."""

    def __init__(self, split: EncodedSplit, pad_id: int) -> None:
        self.split = split
        self.pad_id = pad_id
        self.num_tokens = int((split.lengths - 1).clamp_min(0).sum())

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = index_tensor(indices)
        padded, lengths = pad_rows(self.split, index, self.pad_id, min_width=2)  # (B, W), (B,)
        real = torch.arange(padded.shape[1])[None, :] < lengths[:, None]  # (B, W)
        targets = padded[:, 1:].masked_fill(~real[:, 1:], IGNORE)  # (B, W-1)
        return {"ids": padded[:, :-1], "targets": targets}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


class LanguageModelDataModule(TextDataModule):
    """Unlabelled text -> tokenizer (train split) -> windows or sentences for a causal LM."""

    def __init__(self, data_cfg: Any, tokenizer_cfg: Any, paths_cfg: Any, seed: int) -> None:
        super().__init__(data_cfg, tokenizer_cfg, paths_cfg, seed)
        self.tokens_per_example = 1.0  # an LM example is one predicted token
        self.datasets: dict[str, StreamWindows | StreamRows | SentenceBatches] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        encoded = self._load_and_tokenize()
        bs = self.data_cfg.block_size
        for name, enc in encoded.items():
            if self.data_cfg.chunking == "stream":
                enc = with_specials(enc, None, self.eos_id)
                if name != "train" or not self.streaming:  # streamed: StreamBatches, per worker
                    self.datasets[name] = StreamWindows(enc.ids, bs, self.pad_id)
            elif self.data_cfg.chunking == "rows":
                enc = with_specials(enc, None, self.eos_id)
                rows = (
                    self.data_cfg.batch_size if name == "train" else self.data_cfg.eval_batch_size
                )
                world, rank = world_and_rank()
                self.datasets[name] = StreamRows(enc.ids, rows, bs, self.pad_id, (rank, world))
            else:  # truncated to block_size + 1 tokens (inputs + 1 target)
                enc = with_specials(enc, self.bos_id, self.eos_id)
                enc = _truncate(enc, enc.lengths.clamp_max(bs + 1))
                self.datasets[name] = SentenceBatches(enc, self.pad_id)
            self.encoded[name] = enc
        log.info(
            "lm data: %s | %s | vocab %d | tokenized cache: %s | %s%s",
            self.data_cfg.source,
            self.data_cfg.chunking,
            len(self.vocab),
            self.cache_status,
            ", ".join(f"{k} {v.num_tokens} tokens" for k, v in self.datasets.items()),
            " | train: streamed (vocabulary from a sample)" if self.streaming else "",
        )

    def _stream_layout(self) -> str:
        return "lm"

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids back to text (specials kept visible, pads dropped)."""
        return " ".join(self.vocab[i] for i in ids if i != self.pad_id)

    def _dataset(self, split: str) -> StreamWindows | StreamRows | SentenceBatches:
        return self.datasets[split]

    def _loader(self, split: str, train: bool) -> DataLoader:
        if self.data_cfg.chunking != "rows":
            return super()._loader(split, train)
        # one whole batch per index, every split in order (the rows' state runs on)
        dataset = self._dataset(split)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=list(range(len(dataset))),
            num_workers=self.data_cfg.num_workers,
            persistent_workers=self.data_cfg.num_workers > 0,
        )

    def _lengths(self, split: str) -> Any:
        # sentence batches are padded: bucket them by length; stream windows are all full
        return self.encoded[split].lengths if self.data_cfg.chunking == "sentence" else None


def _truncate(split: EncodedSplit, keep: torch.Tensor) -> EncodedSplit:
    """Keep the first ``keep[i]`` tokens of text i."""
    if bool((keep == split.lengths).all()):
        return split
    n = len(split)
    total = int(keep.sum())
    owner = torch.repeat_interleave(torch.arange(n), keep, output_size=total)
    offsets = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(keep, 0, out=offsets[1:])
    pos = torch.arange(total) - offsets[:-1][owner]
    return EncodedSplit(ids=split.ids[split.offsets[:-1][owner] + pos], offsets=offsets)
