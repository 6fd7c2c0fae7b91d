"""word2vec's two models with negative sampling: skip-gram and CBOW (plain ``nn.Module``s).

Both score a batch of examples against their target word and ``K`` negatives with the dot
product of an input vector (the embedding under study, built by the factory) and the output
table's row (word2vec's ``syn1neg``, zero-initialised like word2vec's); the loss is the task's.
"""

from __future__ import annotations

import torch
from torch import nn


class SkipGram(nn.Module):
    """Input word -> scores of its target and negatives: ``(P, 1 + K)``."""

    def __init__(self, embedding: nn.Embedding, sparse: bool) -> None:
        super().__init__()
        self.embedding = embedding
        # word2vec's syn1neg: sparse and scaled like the input table
        self.output = nn.Embedding(
            embedding.num_embeddings,
            embedding.embedding_dim,
            sparse=sparse,
            scale_grad_by_freq=embedding.scale_grad_by_freq,
        )
        nn.init.zeros_(self.output.weight)

    def encode(self, inputs: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        return self.embedding(inputs)  # (P, D)

    def forward(
        self,
        inputs: torch.Tensor,  # (P,) input word ids (CBOW: (T,) context ids, with offsets)
        targets: torch.Tensor,  # (P,)
        negatives: torch.Tensor,  # (P, K)
        offsets: torch.Tensor | None = None,  # (P,) CBOW: where each bag starts in inputs
    ) -> torch.Tensor:
        h = self.encode(inputs, offsets)  # (P, D)
        out = self.output(torch.cat([targets[:, None], negatives], 1))  # (P, 1 + K, D)
        return torch.bmm(out, h[:, :, None]).squeeze(-1)  # (P, 1 + K)


class CBOW(SkipGram):
    """Bag of context words (the table is an ``nn.EmbeddingBag``, mean by default) -> scores.

    With ``mode="mean"`` the forward pass averages the context vectors but, as in word2vec
    and gensim (``cbow_mean=1``), every context word receives the whole error, not 1/n of it.
    """

    def __init__(self, embedding: nn.EmbeddingBag, sparse: bool) -> None:
        super().__init__(embedding, sparse)  # type: ignore[arg-type]

    def encode(self, inputs: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embedding(inputs, offsets)  # (P, D)
        if self.embedding.mode != "mean" or offsets is None:
            return h
        ends = torch.cat([offsets[1:], offsets.new_tensor([len(inputs)])])
        n = (ends - offsets).clamp_min(1).to(h.dtype)[:, None]  # (P, 1) context words per bag
        return h.detach() + (h - h.detach()) * n  # value: the mean; gradient: n x
