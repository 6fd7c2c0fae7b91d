"""word2vec's two models with negative sampling: skip-gram and CBOW (plain ``nn.Module``s).

Each holds the two tables: the input table (the embedding under study, built by the factory)
and the output table (word2vec's ``syn1neg``, zero-initialised like word2vec's). Training
and scoring are the compiled kernel's (:mod:`embedlab.training.word2vec_kernel`), which reads
and updates both tables in place; ``cbow`` and ``bag_mean`` tell it which model this is.
"""

from __future__ import annotations

from torch import nn


class SkipGram(nn.Module):
    """Each context word's input row predicts the centre word against ``K`` negatives."""

    cbow = False

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding
        self.output = nn.Embedding(embedding.num_embeddings, embedding.embedding_dim)
        nn.init.zeros_(self.output.weight)

    @property
    def bag_mean(self) -> bool:
        return True


class CBOW(SkipGram):
    """The bag of context words (an ``nn.EmbeddingBag``: mean, or sum) predicts the centre word.

    As in word2vec and gensim (``cbow_mean=1``), every context word receives the bag's whole
    error, not 1/n of it.
    """

    cbow = True

    def __init__(self, embedding: nn.EmbeddingBag) -> None:
        super().__init__(embedding)  # type: ignore[arg-type]

    @property
    def bag_mean(self) -> bool:
        return self.embedding.mode == "mean"
