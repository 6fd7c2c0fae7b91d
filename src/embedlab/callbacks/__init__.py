"""Lightning callbacks of embedlab."""

from embedlab.callbacks.throughput import Throughput

__all__ = ["Throughput"]
