"""Bag of embeddings classifier (fastText-style): reduce token embeddings, then an MLP head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from embedlab.models.layers import Dropout
from embedlab.models.layers import activation as make_activation


class BagOfEmbeddings(nn.Module):
    """Logits from a bag of token embeddings.

    ``embedding`` is a built ``nn.EmbeddingBag`` (its ``mode`` does the sum/mean/max
    reduction); ``hidden_dims`` adds ``Linear -> activation -> dropout`` layers before the
    output layer (none: a linear classifier on the pooled embedding, like fastText).
    """

    def __init__(
        self,
        embedding: nn.EmbeddingBag,
        num_classes: int,
        hidden_dims: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        layers: list[nn.Module] = [Dropout(dropout)] if dropout > 0 else []
        width = embedding.embedding_dim
        for h in hidden_dims:
            layers += [nn.Linear(width, h), make_activation(str(activation))]
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.head = nn.Sequential(*layers)

    def forward(
        self,
        ids: torch.Tensor,  # (T,) token ids of all bags, concatenated
        offsets: torch.Tensor,  # (B,) start of each bag in ids
        per_sample_weights: torch.Tensor | None = None,  # (T,) weights (sum mode)
    ) -> torch.Tensor:
        pooled = self.pool(ids, offsets, per_sample_weights)  # (B, D)
        return self.head(pooled)  # (B, C)

    def pool(
        self,
        ids: torch.Tensor,  # (T,)
        offsets: torch.Tensor,  # (B,)
        per_sample_weights: torch.Tensor | None = None,  # (T,)
    ) -> torch.Tensor:
        """The reduced bag (B, D); with weights in sum mode, ``weights-as-CSR @ embedding.weight``."""
        return self.embedding(ids, offsets, per_sample_weights=per_sample_weights)  # (B, D)
