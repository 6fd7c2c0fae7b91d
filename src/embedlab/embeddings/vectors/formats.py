"""Readers for word-vector files that parse floats only for the words asked for.

Text formats (GloVe: no header; word2vec/fastText ``.vec``: a ``count dim`` header line) are
scanned line by line in binary: the word is split off at the first space and looked up as
bytes, and only the lines whose word is wanted are turned into floats. The word2vec C binary
format is read record by record, skipping the float block of unwanted words with one
``seek``. ``.pt``/``.npy`` matrices come with a vocabulary file (one word per line).

Problems in the rows that are read (wrong number of values, NaN/inf) raise a
:class:`~embedlab.errors.DataError` naming ``file:line`` with ``on_bad_rows="error"``, or are
dropped and counted with ``"skip"``; a word seen twice keeps its first vector and is counted.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedlab.errors import DataError

VECTOR_FORMATS = ("text", "word2vec_bin", "fasttext", "pt", "npy")


@dataclass
class ReadResult:
    """Vectors read for the wanted words (keys are the file's words as UTF-8 bytes)."""

    vectors: dict[bytes, np.ndarray]  # word -> (D,) float32, wanted words and the top-k
    top_words: list[bytes]  # the first ``top_k`` words of the file, in file order
    dim: int  # vector dimension of the file
    num_words: int  # rows in the file (lines scanned)
    counts: dict[str, int] = field(default_factory=dict)  # duplicates, bad rows, header

    def warnings(self) -> list[str]:
        out = []
        if self.counts.get("duplicates"):
            out.append(
                f"{self.counts['duplicates']} duplicated word(s): kept the first vector of each"
            )
        if self.counts.get("multiword_rows"):
            out.append(
                f"{self.counts['multiword_rows']} row(s) with more than dim values skipped "
                "(words containing spaces, as in GloVe 840B)"
            )
        if self.counts.get("bad_rows"):
            out.append(f"{self.counts['bad_rows']} bad row(s) (wrong length or NaN/inf) skipped")
        return out


def detect_vector_format(path: str | Path, fmt: str | None = None) -> str:
    """The file's format: ``fmt`` if given, else from the extension (``.bin`` = word2vec binary)."""
    if fmt:
        if fmt not in VECTOR_FORMATS:
            raise DataError(
                f"unknown vector format {fmt!r}; choose one of {list(VECTOR_FORMATS)}", str(path)
            )
        return fmt
    name = str(path).lower()
    if name.endswith(".pt") or name.endswith(".pth"):
        return "pt"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".bin"):
        return "word2vec_bin"
    if name.endswith(".vec"):
        return "fasttext"
    return "text"


def _is_header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


class _Collector:
    """Shared bookkeeping of the readers: wanted/top-k selection, duplicates, bad rows.

    Text rows are queued raw (``queue``) and parsed in one block by :meth:`finish`; only if
    that block fails or holds NaN/inf are rows parsed one by one to name the bad line.
    """

    def __init__(self, path: Path, wanted: Container[bytes], top_k: int, on_bad_rows: str) -> None:
        self.path = path
        self.wanted = wanted
        self.top_k = top_k
        self.on_bad_rows = on_bad_rows
        self.vectors: dict[bytes, np.ndarray] = {}
        self.top_words: list[bytes] = []
        self.counts = {"duplicates": 0, "bad_rows": 0}
        self._pending: list[tuple[bytes, bytes, int, int]] = []  # (word, values, row, line)
        self._queued: set[bytes] = set()

    def bad(self, message: str, line: int) -> None:
        if self.on_bad_rows == "error":
            raise DataError(
                f"{message} (set pretrained.on_bad_rows=skip to drop such rows)",
                str(self.path),
                line,
            )
        self.counts["bad_rows"] += 1

    def queue(self, word: bytes, values: bytes, row: int, line: int) -> None:
        if word in self._queued or word in self.vectors:
            self.counts["duplicates"] += 1
            return
        self._queued.add(word)
        self._pending.append((word, values, row, line))

    def add(self, word: bytes, vec: np.ndarray, row: int, line: int) -> None:
        if not np.isfinite(vec).all():
            self.bad(f"NaN or inf in the vector of {word.decode('utf-8', 'replace')!r}", line)
            return
        if word in self.vectors:
            self.counts["duplicates"] += 1
            return
        self.vectors[word] = vec
        if row < self.top_k:
            self.top_words.append(word)

    def finish(self, dim: int) -> None:
        """Parse the queued text rows: one ``np.loadtxt`` over all of them, rows on failure."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        block = None
        try:
            block = np.loadtxt(
                io.BytesIO(b"\n".join(v.rstrip() for _, v, _, _ in pending)),
                dtype=np.float32,
                ndmin=2,
            )
        except ValueError:
            block = None
        if block is not None and block.shape == (len(pending), dim) and np.isfinite(block).all():
            self.vectors.update(zip((p[0] for p in pending), block, strict=True))
            self.top_words.extend(p[0] for p in pending if p[2] < self.top_k)
            return
        for word, values, row, line in pending:  # slow path: find and report the bad rows
            fields = values.split()
            if len(fields) != dim:
                self.bad(f"{len(fields)} values, expected {dim}", line)
                continue
            try:
                vec = np.array(fields, dtype=np.float32)
            except ValueError:
                self.bad("a value is not a number", line)
                continue
            self.add(word, vec, row, line)


def read_text(
    path: str | Path,
    wanted: Container[bytes],
    top_k: int = 0,
    on_bad_rows: str = "error",
    header: bool | None = None,
) -> ReadResult:
    """Read a GloVe / word2vec-text / fastText ``.vec`` file for the ``wanted`` words.

    ``header`` None detects a ``count dim`` first line. ``top_k`` also keeps the first
    ``top_k`` rows whatever their word (files are sorted by frequency). Each line is split
    at its first space and the word looked up as bytes; floats are parsed for hits only.
    """
    path = Path(path)
    col = _Collector(path, wanted, top_k, on_bad_rows)
    dim = -1
    declared = None
    base = 0  # lines before the first row (1 with a header): row r is on line r + 1 + base
    with open(path, "rb") as f:
        first = f.readline()
        hdr = _is_header(first) if header is not False else None
        if header and hdr is None:
            raise DataError("expected a 'count dim' header line", str(path), 1)
        if hdr is not None:
            declared, dim = hdr
            base = 1
            first = f.readline()
        if not first.strip():
            raise DataError("no vectors in the file", str(path))
        sample = [first]  # the first rows, to tell the dimension without a header
        while len(sample) < 10 and (line := f.readline()):
            sample.append(line)
        if dim < 0:  # GloVe: the dimension most of the first rows have (a ragged row is bad)
            sizes = Counter(len(s.partition(b" ")[2].split()) for s in sample if s.strip())
            dim = sizes.most_common(1)[0][0]
        rows = itertools.chain(sample[1:], f)
        hits: list[tuple[bytes, bytes, int]] = []  # (word, values, row): parsed after the scan
        append = hits.append
        wanted_ = col.wanted
        word, _, rest = first.partition(b" ")
        if word in wanted_ or top_k > 0:
            append((word, rest, 0))
        last = 0
        if top_k > 0:  # extending: also keep the first top_k rows
            for last, line in enumerate(rows, start=1):
                word, _, rest = line.partition(b" ")
                if word in wanted_ or last < top_k:
                    append((word, rest, last))
        else:  # the hot loop: a split and a set lookup per line, nothing else
            for last, line in enumerate(rows, start=1):
                word, _, rest = line.partition(b" ")
                if word in wanted_:
                    append((word, rest, last))
        row = last + 1  # rows in the file
    for word, rest, r in hits:
        n = len(rest.split())
        if n == dim:
            col.queue(word, rest, r, r + 1 + base)
        elif n > dim:  # a word with spaces in it (GloVe 840B has some): not this vocabulary word
            col.counts["multiword_rows"] = col.counts.get("multiword_rows", 0) + 1
        elif n == 0:
            col.bad(
                f"no vector after the word {word.strip().decode('utf-8', 'replace')!r}",
                r + 1 + base,
            )
        else:
            col.bad(f"{n} values, expected {dim}", r + 1 + base)
    col.finish(dim)
    if declared is not None and declared != row:
        col.counts["header_count_mismatch"] = declared - row
    return ReadResult(col.vectors, col.top_words, dim, row, col.counts)


def read_word2vec_binary(
    path: str | Path, wanted: Container[bytes], top_k: int = 0, on_bad_rows: str = "error"
) -> ReadResult:
    """word2vec C binary: ``count dim\\n`` then per word ``word `` + dim float32 (+ optional ``\\n``)."""
    path = Path(path)
    col = _Collector(path, wanted, top_k, on_bad_rows)
    with open(path, "rb") as f:
        hdr = _is_header(f.readline())
        if hdr is None:
            raise DataError("a word2vec binary file starts with a 'count dim' line", str(path), 1)
        count, dim = hdr
        width = 4 * dim
        for row in range(count):
            chunks = []
            while True:  # the word: bytes up to the space (skip a newline left by word2vec.c)
                ch = f.read(1)
                if not ch:
                    raise DataError(f"file ends at word {row + 1} of {count}", str(path))
                if ch == b" ":
                    break
                if ch != b"\n" or chunks:
                    chunks.append(ch)
            word = b"".join(chunks)
            if word in col.wanted or row < top_k:
                block = f.read(width)
                if len(block) != width:
                    raise DataError(f"file ends inside the vector of word {row + 1}", str(path))
                col.add(word, np.frombuffer(block, dtype="<f4").astype(np.float32), row, row + 2)
            else:
                f.seek(width, 1)
    return ReadResult(col.vectors, col.top_words, dim, count, col.counts)


def read_vocab_file(path: str | Path) -> list[str]:
    """One word per line (UTF-8); a trailing tab-separated count column is ignored."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                words.append(line.split("\t", 1)[0])
    return words


def read_matrix(
    path: str | Path,
    vocab_path: str | Path | None,
    wanted: Container[bytes],
    top_k: int = 0,
    on_bad_rows: str = "error",
) -> ReadResult:
    """A ``.pt`` (``torch.load(weights_only=True)``) or ``.npy`` matrix plus its vocabulary file."""
    path = Path(path)
    if vocab_path is None:
        raise DataError(
            "a .pt/.npy matrix needs pretrained.vocab_path (one word per line)", str(path)
        )
    if str(path).lower().endswith(".npy"):
        matrix = np.load(path, allow_pickle=False)
    else:
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):  # e.g. {"weight": tensor} or a state dict with one matrix
            tensors = [v for v in obj.values() if hasattr(v, "ndim") and v.ndim == 2]
            if len(tensors) != 1:
                raise DataError(
                    f"expected one 2-D tensor in the dict, found {len(tensors)}", str(path)
                )
            obj = tensors[0]
        if not hasattr(obj, "ndim"):
            raise DataError(f"expected a tensor, got {type(obj).__name__}", str(path))
        matrix = obj.detach().float().numpy()
    if matrix.ndim != 2:
        raise DataError(f"expected a 2-D matrix, got shape {tuple(matrix.shape)}", str(path))
    words = read_vocab_file(vocab_path)
    if len(words) != matrix.shape[0]:
        raise DataError(
            f"{len(words)} words in {vocab_path} but {matrix.shape[0]} rows in the matrix",
            str(path),
        )
    col = _Collector(path, wanted, top_k, on_bad_rows)
    for row, w in enumerate(words):
        word = w.encode("utf-8")
        if word in col.wanted or row < top_k:
            col.add(word, np.asarray(matrix[row], dtype=np.float32), row, row + 1)
    return ReadResult(col.vectors, col.top_words, int(matrix.shape[1]), len(words), col.counts)


def read_vectors(
    path: str | Path,
    fmt: str | None,
    wanted: Container[bytes],
    top_k: int = 0,
    on_bad_rows: str = "error",
    vocab_path: str | Path | None = None,
) -> ReadResult:
    """Dispatch on the format (see :func:`detect_vector_format`)."""
    fmt = detect_vector_format(path, fmt)
    if not Path(path).is_file():
        raise DataError("vector file not found", str(path))
    if fmt == "word2vec_bin":
        return read_word2vec_binary(path, wanted, top_k, on_bad_rows)
    if fmt in ("pt", "npy"):
        return read_matrix(path, vocab_path, wanted, top_k, on_bad_rows)
    header = True if fmt == "fasttext" else None
    return read_text(path, wanted, top_k, on_bad_rows, header=header)
