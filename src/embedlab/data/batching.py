"""Vectorised batching from CSR token arrays: no per-example Python work per batch.

``BagBatches`` yields bags for ``nn.EmbeddingBag`` (flat ids + offsets), ``PaddedBatches``
yields ``(B, T)`` ids with a padding mask for sequence models. Both implement
``__getitems__`` so a standard ``DataLoader(batch_size=..., shuffle=...)`` (which Lightning
can re-shard for DDP) hands them a whole list of indices at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from embedlab.data.types import EncodedSplit


def gather_bags(
    split: EncodedSplit, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate texts ``index`` into (ids (T,), offsets (B,), lengths (B,))."""
    starts = split.offsets[index]
    lengths = split.offsets[index + 1] - starts
    bag_offsets = torch.cumsum(lengths, 0) - lengths  # where each bag starts in the batch
    total = int(lengths.sum())
    # position in the flat array = batch position - bag start in batch + text start in flat
    shift = torch.repeat_interleave(starts - bag_offsets, lengths, output_size=total)
    ids = split.ids[torch.arange(total) + shift]
    return ids, bag_offsets, lengths


def identity_collate(batch: Any) -> Any:
    """The datasets below return finished batches; the DataLoader must not touch them."""
    return batch


class BagBatches(Dataset):
    """Batches ``{"ids", "offsets", "labels"}`` for bag-of-embeddings models."""

    def __init__(self, split: EncodedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        ids, offsets, _ = gather_bags(self.split, index)
        batch = {"ids": ids, "offsets": offsets}
        if self.split.labels is not None:
            batch["labels"] = self.split.labels[index]
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


class PaddedBatches(Dataset):
    """Batches ``{"ids" (B, T), "mask" (B, T) true at real tokens, "labels"}`` padded with ``pad_id``."""

    def __init__(self, split: EncodedSplit, pad_id: int) -> None:
        self.split = split
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.int64)
        ids, offsets, lengths = gather_bags(self.split, index)
        width = max(int(lengths.max()) if len(lengths) else 0, 1)
        rows = torch.repeat_interleave(torch.arange(len(index)), lengths, output_size=ids.numel())
        cols = torch.arange(ids.numel()) - offsets[rows]
        padded = torch.full((len(index), width), self.pad_id, dtype=torch.int64)
        padded[rows, cols] = ids
        mask = torch.arange(width)[None, :] < lengths[:, None]
        batch = {"ids": padded, "mask": mask}
        if self.split.labels is not None:
            batch["labels"] = self.split.labels[index]
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])
