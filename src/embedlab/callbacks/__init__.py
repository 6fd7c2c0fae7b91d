"""Lightning callbacks of embedlab."""

from embedlab.callbacks.embeddings import EmbeddingDrift, EmbeddingHistograms, EmbeddingProjector
from embedlab.callbacks.throughput import Throughput
from embedlab.callbacks.unfreeze import UnfreezeEmbedding

__all__ = [
    "EmbeddingDrift",
    "EmbeddingHistograms",
    "EmbeddingProjector",
    "Throughput",
    "UnfreezeEmbedding",
]
