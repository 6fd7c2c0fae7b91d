"""Kim (2014)'s sentence CNN: convolutions of several widths, max-over-time pooling, a linear head.

The token embedding is built by the embedding factory and handed in (every initializer and
pretrained source applies; ``embedding.channels=2`` hands in Kim's static + non-static pair,
whose summed rows are exactly "each filter applied to both channels, results added").

Padding. Every text is padded with ``widest - 1`` zero vectors on both sides (Kim pads with
``max(filter_widths) - 1``), so a text shorter than the widest filter still has windows,
and every window that covers at least one real token exists for every width (a "wide"
convolution). Windows that cover only padding are masked out of the max, and the vectors at
padded positions are zeroed whatever the ``<pad>`` row holds: the same text gives the same
logits however much padding its batch adds.

Max-norm. :meth:`SentenceCNN.apply_constraints` rescales each output-layer weight row (one
per class) to an L2 norm of at most ``max_norm`` (Kim's s = 3); the task calls it after every
optimizer step (:meth:`embedlab.tasks.base.EmbeddingTask.optimizer_step`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from embedlab.models.layers import Dropout
from embedlab.models.layers import activation as make_activation


class SentenceCNN(nn.Module):
    """Logits from ``len(filter_widths) x num_filters`` max-pooled convolution features."""

    def __init__(
        self,
        embedding: nn.Module,
        num_classes: int,
        filter_widths: Sequence[int] = (3, 4, 5),
        num_filters: int = 100,
        activation: str = "relu",
        dropout: float = 0.5,
        max_norm: float | None = 3.0,
    ) -> None:
        super().__init__()
        if isinstance(embedding, nn.EmbeddingBag) or not hasattr(embedding, "embedding_dim"):
            raise TypeError(
                f"the CNN needs a sequence lookup (nn.Embedding), got {type(embedding).__name__}"
            )
        widths = [int(w) for w in filter_widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"model.filter_widths: positive widths needed, got {widths}")
        self.embedding = embedding
        self.pad = max(widths) - 1  # zero vectors on each side of every text
        dim = embedding.embedding_dim
        self.convs = nn.ModuleList(nn.Conv1d(dim, num_filters, w) for w in widths)
        self.act = make_activation(str(activation))
        self.drop = Dropout(dropout)
        self.out = nn.Linear(num_filters * len(widths), num_classes)
        self.max_norm = max_norm

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) token ids
        mask: torch.Tensor | None = None,  # (B, T) bool, true at real tokens
    ) -> torch.Tensor:
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)  # (B, T)
        x = self.embedding(ids).masked_fill(~mask[:, :, None], 0.0)  # (B, T, D), pads zero
        x = F.pad(x.transpose(1, 2), (self.pad, self.pad))  # (B, D, P+T+P)
        real = F.pad(mask, (self.pad, self.pad))[:, None].float()  # (B, 1, P+T+P)
        pooled = []
        for conv in self.convs:
            h = self.act(conv(x))  # (B, F, P+T+P-w+1)
            # window j covers positions j..j+w-1; it counts when one of them is a real token
            covers = F.max_pool1d(real, conv.kernel_size[0], stride=1) > 0  # (B, 1, P+T+P-w+1)
            pooled.append(h.masked_fill(~covers, float("-inf")).amax(dim=2))  # (B, F)
        z = torch.cat(pooled, dim=1)  # (B, F * widths)
        z = z.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)  # an empty text: no window
        return self.out(self.drop(z))  # (B, C)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Rescale output-layer weight rows with an L2 norm above ``max_norm`` down to it."""
        if self.max_norm is not None:
            w = self.out.weight  # (C, F * widths)
            w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=self.max_norm))
