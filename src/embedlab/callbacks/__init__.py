"""Lightning callbacks of embedlab."""

from embedlab.callbacks.throughput import Throughput
from embedlab.callbacks.unfreeze import UnfreezeEmbedding

__all__ = ["Throughput", "UnfreezeEmbedding"]
