"""Kim (2014)'s multichannel embedding: a static and a fine-tuned copy of one table.

``embedding.channels=2`` makes the factory wrap the table it built (initializer and
pretrained rows as usual) in :class:`MultiChannelEmbedding`: the built ``nn.Embedding`` is the
**non-static** channel (a parameter: ``embedding.lr``, ``sparse``, ``unfreeze_at_epoch`` and
``max_norm`` apply to it) and a copy of its starting values is the **static** channel, a
buffer, so it is in checkpoints and moves with the module but no optimizer, unfreezing
callback or sparse path ever sees it.

A lookup returns the sum of the two channels' rows, (B, T) -> (B, T, D). That is exactly Kim's
combination for the CNN ("each filter is applied to both channels and the results are added",
as in harvardnlp/sent-conv-torch, which applies one convolution to each channel and adds):
a convolution is linear, so the filter applied to both and summed is the filter applied to
the sum. Other sequence models (the transformer) get the same sum as their token vectors.

:func:`embedding_tables` is the one place that names the tables of an embedding module for the
TensorBoard views: ``{"embedding": W}`` for one table, ``{"embedding/static": S,
"embedding/nonstatic": W}`` for two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STATIC, NONSTATIC = "static", "nonstatic"


class MultiChannelEmbedding(nn.Module):
    """Two channels of one vocabulary: ``static`` (frozen buffer) + ``nonstatic`` (trained)."""

    def __init__(self, nonstatic: nn.Embedding) -> None:
        super().__init__()
        if not isinstance(nonstatic, nn.Embedding):
            raise TypeError(
                f"embedding.channels=2 needs a sequence table (nn.Embedding), got {type(nonstatic).__name__}"
            )
        self.nonstatic = nonstatic
        static = nonstatic.weight.detach().clone()
        if nonstatic.max_norm is not None:  # the static rows obey max_norm from the start
            norms = static.norm(p=nonstatic.norm_type, dim=1, keepdim=True)
            static *= (nonstatic.max_norm / (norms + 1e-7)).clamp(max=1.0)
        self.register_buffer(STATIC, static)  # (V, D), never a parameter

    # the attributes the models and the optimizer plumbing read from an nn.Embedding
    @property
    def weight(self) -> nn.Parameter:
        """The trained (non-static) table: what export, ``embed()`` and intrinsic scores read."""
        return self.nonstatic.weight

    @property
    def num_embeddings(self) -> int:
        return self.nonstatic.num_embeddings

    @property
    def embedding_dim(self) -> int:
        return self.nonstatic.embedding_dim

    @property
    def padding_idx(self) -> int | None:
        return self.nonstatic.padding_idx

    @property
    def sparse(self) -> bool:
        return self.nonstatic.sparse

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        static = F.embedding(ids, self.static, self.nonstatic.padding_idx)  # (B, T, D)
        return static + self.nonstatic(ids)  # (B, T, D)

    def tables(self) -> dict[str, torch.Tensor]:
        return {STATIC: self.static, NONSTATIC: self.nonstatic.weight}


def embedding_tables(embedding: nn.Module | None) -> dict[str, torch.Tensor]:
    """The tables of an embedding module by TensorBoard name (empty when there is none)."""
    if isinstance(embedding, MultiChannelEmbedding):
        return {f"embedding/{name}": t for name, t in embedding.tables().items()}
    weight = getattr(embedding, "weight", None)
    return {} if weight is None else {"embedding": weight}
