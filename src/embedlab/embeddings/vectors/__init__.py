"""Word-vector files: format readers, downloads into the vector cache, alignment + its cache."""

from embedlab.embeddings.vectors.align import coverage, load_aligned
from embedlab.embeddings.vectors.download import ensure_file, extract, fasttext_urls, glove_urls
from embedlab.embeddings.vectors.formats import FORMATS, ReadResult, detect_format, read_vectors

__all__ = [
    "FORMATS",
    "ReadResult",
    "coverage",
    "detect_format",
    "ensure_file",
    "extract",
    "fasttext_urls",
    "glove_urls",
    "load_aligned",
    "read_vectors",
]
