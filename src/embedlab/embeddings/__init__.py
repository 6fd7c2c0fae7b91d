"""The embedding layer: initializers, pretrained sources and the factory that builds it."""

from embedlab.embeddings.factory import build_embedding
from embedlab.embeddings.init import INITIALIZERS, initialize
from embedlab.embeddings.pretrained import PRETRAINED_SOURCES, AlignedVectors, load_pretrained

__all__ = [
    "INITIALIZERS",
    "PRETRAINED_SOURCES",
    "AlignedVectors",
    "build_embedding",
    "initialize",
    "load_pretrained",
]
