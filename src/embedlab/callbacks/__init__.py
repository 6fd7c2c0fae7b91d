"""Lightning callbacks of embedlab."""

from embedlab.callbacks.embeddings import EmbeddingDrift, EmbeddingHistograms, EmbeddingProjector
from embedlab.callbacks.throughput import Throughput

__all__ = ["EmbeddingDrift", "EmbeddingHistograms", "EmbeddingProjector", "Throughput"]
