"""Word-vector files: format readers, downloads into the vector cache, alignment + its cache."""

from embedlab.embeddings.vectors.align import coverage, load_aligned
from embedlab.embeddings.vectors.download import ensure_file, fasttext_urls, glove_urls
from embedlab.embeddings.vectors.formats import (
    VECTOR_FORMATS,
    ReadResult,
    detect_vector_format,
    read_vectors,
)

__all__ = [
    "VECTOR_FORMATS",
    "ReadResult",
    "coverage",
    "detect_vector_format",
    "ensure_file",
    "fasttext_urls",
    "glove_urls",
    "load_aligned",
    "read_vectors",
]
