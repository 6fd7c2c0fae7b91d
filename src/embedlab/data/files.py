"""Readers for labelled local files (CSV, TSV, JSONL, fastText lines, plain text) and labels.

Every reader yields ``Row(line, text, label)`` with the 1-based line number where the row
ends, and hands each bad row (undecodable bytes, wrong field count, missing key, empty text,
...) to a :class:`BadRows` policy: ``error`` raises a :class:`DataError` naming file and line,
``skip`` drops the row, counts it by reason and reports the counts once loading is done.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.errors import DataError

log = logging.getLogger(__name__)

DATA_FORMATS = ("csv", "tsv", "jsonl", "fasttext", "text")
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".ft": "fasttext",
    ".fasttext": "fasttext",
}
_FASTTEXT_LABEL = re.compile(r"__label__(\S+)")


@dataclass
class Row:
    line: int  # 1-based line number (the last line of a multi-line CSV record)
    text: str
    label: str | None  # raw label string (None: unlabelled)


class BadRows:
    """What to do with a bad row: raise (``error``) or drop, count and report (``skip``)."""

    def __init__(self, policy: str = "error", keep_examples: int = 3) -> None:
        self.policy = str(policy)
        if self.policy not in ("error", "skip"):
            raise ValueError(f"data.on_bad_rows: choose error or skip, got {policy!r}")
        self.counts: Counter[tuple[str, str]] = Counter()  # (file, reason) -> rows
        self.examples: list[str] = []
        self.keep_examples = keep_examples

    def __call__(self, reason: str, detail: str, path: str | Path, line: int | None) -> None:
        if self.policy == "error":
            hint = " (set data.on_bad_rows=skip to drop such rows and count them)"
            raise DataError(f"{reason}: {detail}{hint}", str(path), line)
        self.counts[(str(path), reason)] += 1
        if len(self.examples) < self.keep_examples:
            where = f"{path}:{line}" if line is not None else str(path)
            self.examples.append(f"{where}: {reason}: {detail}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_file_and_reason": {f"{p}: {r}": n for (p, r), n in sorted(self.counts.items())},
            "examples": list(self.examples),
        }

    def report(self) -> None:
        """Log what was skipped (once, at the end of loading); silent when nothing was."""
        if not self.total:
            return
        lines = [f"  {n:>6} x {r} in {p}" for (p, r), n in sorted(self.counts.items())]
        lines += [f"  e.g. {e}" for e in self.examples]
        log.warning(
            "data: skipped %d bad row(s) (data.on_bad_rows=skip):\n%s", self.total, "\n".join(lines)
        )


def detect_format(path: Path, fmt: str | None) -> str:
    """``fmt`` when given, else from the extension (``.txt``: fastText if it has labels, else text)."""
    if fmt:
        if fmt not in DATA_FORMATS:
            raise DataError(
                f"data.format: unknown format {fmt!r}; choose one of {list(DATA_FORMATS)}",
                str(path),
            )
        return fmt
    suffix = path.suffix.lower()
    if suffix in EXTENSION_FORMATS:
        return EXTENSION_FORMATS[suffix]
    if suffix in (".txt", ".train", ".valid", ".test", ""):
        with path.open("rb") as f:
            for raw in f:
                if raw.strip():
                    return "fasttext" if raw.lstrip().startswith(b"__label__") else "text"
        return "text"
    raise DataError(
        f"cannot tell the format from the extension {suffix!r}; set data.format to one of {list(DATA_FORMATS)}",
        str(path),
    )


@dataclass(frozen=True)
class Span:
    """Bytes ``[start, end)`` of a file; a reader over it yields the lines that *begin* there.

    The spans ``[size * k // n, size * (k + 1) // n)`` for k = 0..n-1 hand every line of the
    file to exactly one of n readers, each reading only its own part (see
    :mod:`embedlab.data.streaming`). Line numbers inside a span count from its first line;
    :class:`SpanBadRows` turns them into the file's.
    """

    start: int
    end: int

    @classmethod
    def part(cls, path: Path, index: int, count: int) -> Span:
        size = path.stat().st_size
        return cls(size * index // count, size * (index + 1) // count)


def _decoded_lines(
    path: Path, encoding: str, bad: BadRows, span: Span | None = None
) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline); lines that do not decode go to ``bad``.

    With ``span``: only the lines that begin inside it, numbered from 1 at its first line.
    """
    with path.open("rb") as f:
        pos, end = 0, None
        if span is not None:
            end = span.end
            if span.start > 0:
                f.seek(span.start - 1)
                pos = span.start - 1 + len(f.readline())  # that line began before the span
        for lineno, raw in enumerate(f, 1):
            if end is not None:
                if pos >= end:
                    break
                pos += len(raw)
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                bad(
                    "bytes not valid " + encoding,
                    f"byte {raw[exc.start : exc.start + 1]!r} at column {exc.start + 1}",
                    path,
                    lineno,
                )
                continue
            if lineno == 1 and (span is None or span.start == 0) and line.startswith("\ufeff"):
                line = line[1:]  # a UTF-8 byte-order mark
            yield lineno, line.rstrip("\r\n")


class SpanBadRows:
    """A :class:`BadRows` for a reader of one :class:`Span`: reports the file's line numbers.

    Lines inside a span are counted from its first line; the lines before it are counted only
    when a bad row is reported (once), so a clean shard never reads the bytes before it.
    """

    def __init__(self, bad: BadRows, path: Path, span: Span) -> None:
        self.bad, self.path, self.span = bad, path, span
        self._before: int | None = None

    def lines_before(self) -> int:
        if self._before is None:
            count = 0
            if self.span.start > 0:
                with self.path.open("rb") as f:
                    f.seek(self.span.start - 1)
                    first = self.span.start - 1 + len(f.readline())
                    f.seek(0)
                    left = first
                    while left > 0:
                        block = f.read(min(left, 1 << 24))
                        if not block:
                            break
                        count += block.count(b"\n")
                        left -= len(block)
            self._before = count
        return self._before

    def __call__(self, reason: str, detail: str, path: str | Path, line: int | None) -> None:
        if line is not None and Path(path) == self.path:
            line += self.lines_before()
        self.bad(reason, detail, path, line)

    def __getattr__(self, name: str) -> Any:  # total, summary, report, policy
        return getattr(self.bad, name)


def _column_index(spec: Any, header: list[str] | None, key: str, path: Path) -> int:
    if isinstance(spec, int) and not isinstance(spec, bool):
        return spec
    if isinstance(spec, str) and spec.lstrip("-").isdigit():
        return int(spec)
    if header is None:
        raise DataError(
            f"data.{key}={spec!r} is a column name but the file has no header (data.header=false); "
            "give a 0-based position instead",
            str(path),
        )
    if spec not in header:
        raise DataError(
            f"column {spec!r} (data.{key}) not in the header; columns are {header}", str(path), 1
        )
    return header.index(spec)


def read_delimited(
    path: Path,
    fmt: str,
    text_column: Any,
    label_column: Any,
    header: bool,
    delimiter: str | None,
    quoting: bool | None,
    encoding: str,
    bad: BadRows,
    span: Span | None = None,
    header_names: list[str] | None = None,
) -> Iterator[Row]:
    """CSV/TSV rows; TSV is read with quoting off (texts may begin with a double quote).

    With ``span`` (a part of the file after its first line): ``header_names`` are the
    columns the header line names (read once by :func:`read_header`).
    """
    delim = delimiter or ("\t" if fmt == "tsv" else ",")
    # the csv module refuses fields over 128 KiB; texts of any length are checked in
    # read_rows against data.max_text_chars, the same for every format
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    quote = quoting if quoting is not None else fmt == "csv"
    lines = _decoded_lines(path, encoding, bad, span)
    current = [0]

    def feed() -> Iterator[str]:
        for lineno, line in lines:
            current[0] = lineno
            yield line

    kwargs: dict[str, Any] = {"delimiter": delim}
    kwargs["quoting"] = csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE
    kwargs["strict"] = quote  # a quote left open to the end of the file is an error, not a row
    if not quote:
        kwargs["quotechar"] = None
    reader = csv.reader(feed(), **kwargs)
    names: list[str] | None = None
    n_fields: int | None = None
    text_idx = label_idx = None

    def columns(names: list[str] | None) -> tuple[int, int | None]:
        """(text, label) column positions: by name in the header ``names``, else by index."""
        text = _column_index(text_column, names, "text_column", path)
        if label_column is None:
            return text, None
        return text, _column_index(label_column, names, "label_column", path)

    if header and span is not None and span.start > 0:  # the header line is not in this part
        names = list(header_names or [])
        n_fields = len(names)
        text_idx, label_idx = columns(names)
    while True:
        start = current[0] + 1  # the record's first line (a quoted field may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            where = f" (a quote opened on line {start} is never closed?)" if quote else ""
            bad("unparsable row", f"{exc}{where}", path, start)
            continue
        line = current[0]
        spans = (
            f"; a quote opened on line {start} runs to line {line}: unclosed?"
            if line > start
            else ""
        )
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if header and names is None:
            names = [f.strip() for f in fields]
            n_fields = len(names)
            text_idx, label_idx = columns(names)
            continue
        if text_idx is None:
            text_idx, label_idx = columns(None)
            needed = max(text_idx, label_idx if label_idx is not None else 0) + 1
            if len(fields) < needed:
                bad(
                    "wrong number of fields",
                    f"expected at least {needed}, got {len(fields)}",
                    path,
                    line,
                )
                continue
            n_fields = len(fields)
        if len(fields) != n_fields:
            detail = f"expected {n_fields}, got {len(fields)}{spans}"
            bad("wrong number of fields", detail, path, start if spans else line)
            continue
        yield Row(line, fields[text_idx], None if label_idx is None else fields[label_idx].strip())


def read_jsonl(
    path: Path,
    text_column: Any,
    label_column: Any,
    encoding: str,
    bad: BadRows,
    span: Span | None = None,
) -> Iterator[Row]:
    """One JSON object per line; ``text_column``/``label_column`` are keys."""
    for lineno, line in _decoded_lines(path, encoding, bad, span):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad("invalid JSON", exc.msg, path, lineno)
            continue
        if not isinstance(obj, dict):
            bad("not a JSON object", type(obj).__name__, path, lineno)
            continue
        missing = [k for k in (text_column, label_column) if k is not None and str(k) not in obj]
        if missing:
            bad("missing key", f"{missing[0]!r} (keys: {sorted(obj)})", path, lineno)
            continue
        text = obj[str(text_column)]
        label = None if label_column is None else obj[str(label_column)]
        if not isinstance(text, str):
            bad("text is not a string", repr(text)[:60], path, lineno)
            continue
        yield Row(lineno, text, None if label is None else str(label))


def read_fasttext(
    path: Path, encoding: str, bad: BadRows, span: Span | None = None
) -> Iterator[Row]:
    """fastText supervised lines: ``__label__pos some text`` (one label per line)."""
    for lineno, line in _decoded_lines(path, encoding, bad, span):
        if not line.strip():
            continue
        tokens = line.split()
        labels = []
        while tokens and _FASTTEXT_LABEL.fullmatch(tokens[0]):
            labels.append(tokens.pop(0)[len("__label__") :])
        if not labels:
            bad("no __label__ prefix", repr(line[:60]), path, lineno)
            continue
        if len(labels) > 1:
            bad(
                "more than one label",
                f"{labels} (multi-label lines are not supported)",
                path,
                lineno,
            )
            continue
        yield Row(lineno, " ".join(tokens), labels[0])


def read_text(
    path: Path, encoding: str, bad: BadRows, skip_empty: bool = True, span: Span | None = None
) -> Iterator[Row]:
    """Plain text, one unlabelled example per line (blank lines dropped when ``skip_empty``)."""
    for lineno, line in _decoded_lines(path, encoding, bad, span):
        if line.strip() or not skip_empty:
            yield Row(lineno, line, None)


def read_header(path: Path, cfg: Any, bad: BadRows) -> list[str] | None:
    """The column names of a CSV/TSV file with ``data.header`` (None for other formats)."""
    fmt = detect_format(path, cfg.format)
    if fmt not in ("csv", "tsv") or not cfg.header:
        return None
    delim = cfg.delimiter or ("\t" if fmt == "tsv" else ",")
    for _, line in _decoded_lines(path, cfg.encoding, bad):
        if line.strip():
            return [f.strip() for f in line.split(delim)]
    return []


def iter_rows(
    path: Path,
    cfg: Any,
    bad: BadRows,
    span: Span | None = None,
    header_names: list[str] | None = None,
) -> Iterator[Row]:
    """The good rows of ``path`` (or of its ``span``) under the files config ``cfg``, lazily."""
    fmt = detect_format(path, cfg.format)
    if fmt in ("csv", "tsv"):
        rows = read_delimited(
            path,
            fmt,
            cfg.text_column,
            cfg.label_column,
            cfg.header,
            cfg.delimiter,
            cfg.quoting,
            cfg.encoding,
            bad,
            span,
            header_names,
        )
    elif fmt == "jsonl":
        rows = read_jsonl(path, cfg.text_column, cfg.label_column, cfg.encoding, bad, span)
    elif fmt == "fasttext":
        rows = read_fasttext(path, cfg.encoding, bad, span)
    else:
        rows = read_text(path, cfg.encoding, bad, span=span)
    limit = cfg.get("max_text_chars") if hasattr(cfg, "get") else None
    for row in rows:
        if not row.text.strip():
            bad("empty text", "the text field is empty", path, row.line)
            continue
        if limit is not None and len(row.text) > limit:
            bad(
                "text too long",
                f"{len(row.text):,} characters > data.max_text_chars={limit:,}",
                path,
                row.line,
            )
            continue
        if row.label is not None and row.label == "":
            bad("empty label", "the label field is empty", path, row.line)
            continue
        yield row


def read_rows(path: Path, cfg: Any, bad: BadRows) -> tuple[str, list[Row]]:
    """All good rows of ``path`` under the files config ``cfg``; returns (format, rows)."""
    return detect_format(path, cfg.format), list(iter_rows(path, cfg, bad))


# --------------------------------------------------------------------------- labels


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit()


class LabelEncoder:
    """Label strings -> ids: by ``names`` when given, else the sorted distinct train labels.

    With ``names``, a label is either one of the names or an integer id into them (the
    benchmark TSVs store ``0``/``1`` and the README names them). Without, labels sort
    numerically when they are all integers (so ``10`` comes after ``9``), else as strings.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.by_id = len(set(self.names)) == len(self.names)
        if not self.by_id:
            raise DataError(f"label names must be unique, got {self.names}")

    @classmethod
    def fit(
        cls, labels: list[str], names: list[str] | None = None, where: str | None = None
    ) -> LabelEncoder:
        if names:
            return cls(list(names))
        distinct = set(labels)
        ints = sorted((x for x in distinct if _is_int(x)), key=int)
        if ints and len(ints) < len(distinct):  # "0", "1", "neg", "pos": 4 classes, silently
            others = sorted(distinct - set(ints))
            raise DataError(
                f"the label column mixes integer ids {ints[:5]} and names {others[:5]}; use one "
                f"kind, or set data.label_names=[...] so that the integers index the names",
                where,
            )
        if distinct and all(_is_int(x) for x in distinct):
            return cls(sorted(distinct, key=int))
        return cls(sorted(distinct))

    def lookup(self, label: str) -> int | None:
        if label in self.index:
            return self.index[label]
        # an integer id into the given names (only when the names are not themselves integers)
        if (
            _is_int(label)
            and 0 <= int(label) < len(self.names)
            and not all(_is_int(n) for n in self.names)
        ):
            return int(label)
        return None


def encode_labels(
    rows: list[Row], encoder: LabelEncoder, path: Path, bad: BadRows, split: str
) -> tuple[list[Row], np.ndarray]:
    """Keep rows whose label the encoder knows; others are bad rows naming file:line."""
    kept, ids = [], []
    for row in rows:
        idx = encoder.lookup(row.label)
        if idx is None:
            known = encoder.names if len(encoder.names) <= 20 else [*encoder.names[:20], "..."]
            seen = "never seen in train" if split != "train" else "not among data.label_names"
            bad("unknown label", f"{row.label!r} {seen} (known: {known})", path, row.line)
            continue
        kept.append(row)
        ids.append(idx)
    return kept, np.asarray(ids, dtype=np.int64)
