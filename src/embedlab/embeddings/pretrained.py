"""Pretrained vector sources, aligned to a vocabulary.

A source is a registered function ``load(cfg, vocab, cache_dir) -> AlignedVectors``: it reads
vectors for the vocabulary's words only and returns a ``(len(vocab), dim)`` matrix with a mask
of the rows it found. Rows it did not find are filled by the OOV initializer in the factory.
Adding a source: a function registered here and ``configs/pretrained/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from embedlab.registry import Registry

PRETRAINED_SOURCES: Registry = Registry("pretrained source", "pretrained.source")


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


@PRETRAINED_SOURCES.register("none")
def no_vectors(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors | None:
    """No pretrained vectors: every row comes from the initializer."""
    return None


def load_pretrained(cfg: Any, vocab: Sequence[str], cache_dir: str) -> AlignedVectors | None:
    """Load the configured source aligned to ``vocab`` (None for ``source: none``)."""
    return PRETRAINED_SOURCES.get(cfg.source)(cfg, vocab, cache_dir)
