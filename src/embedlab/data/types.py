"""Plain containers passed between data sources, the tokenizer and the datamodules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

IGNORE = -100  # target id the language-model losses skip (F.cross_entropy's default)


def positions_within(lengths: np.ndarray) -> np.ndarray:
    """For segments of ``lengths`` laid end to end (a CSR array's rows), each element's
    position within its own segment: ``[2, 3] -> [0, 1, 0, 1, 2]``."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


@dataclass
class TextSplit:
    """Raw texts of one split; ``labels`` is None for unlabelled text (language modelling)."""

    texts: list[str]
    labels: np.ndarray | None = None  # (N,) int64 class ids

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextDataset:
    """What a data source returns: raw splits, label names, and notes for the log."""

    splits: dict[str, TextSplit]  # "train", "val", "test" (val may be carved from train)
    label_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncodedSplit:
    """Token ids of one split in CSR layout: text i is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: torch.Tensor  # (T,) int64, all texts concatenated
    offsets: torch.Tensor  # (N+1,) int64
    labels: torch.Tensor | None = None  # (N,) int64

    def __len__(self) -> int:
        return int(self.offsets.numel() - 1)

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]
