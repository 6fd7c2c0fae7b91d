"""Intrinsic evaluation of a word-vector table: word similarity, analogies, nearest neighbours.

The protocol is gensim's (``KeyedVectors.evaluate_word_pairs`` / ``evaluate_word_analogies``),
so numbers compare with published ones:

- **similarity** (WordSim-353, SimLex-999, any ``word1<TAB>word2<TAB>score`` file, ``#``
  comments): Spearman's rho between the cosine of the two vectors and the human score, over
  the pairs whose two words are among the first ``pairs_restrict`` rows (gensim: 300,000);
  the others are out of vocabulary and counted in the coverage.
- **analogy** (``questions-words.txt``: ``: section`` lines, then ``a b c d``): 3CosAdd,
  ``argmax_x cos(x, b - a + c)`` over the unit vectors of the first ``analogy_restrict``
  rows (gensim's ``restrict_vocab``; 30,000 here), the three question words excluded;
  accuracy over the questions whose four words are in those rows.

Rows must come in frequency order (vector files are; a run's table is sorted by training
counts first, see :func:`by_frequency`). Matching is case-insensitive like gensim's: a word
stands for the first (most frequent) row of its lower-cased form.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.errors import DataError

# where the evaluation sets are looked up unless a path is given ($EMBEDLAB_EVAL_DIR wins)
DEFAULT_EVAL_DIR = "../shared/data/eval"
# benchmark name -> (file in the eval folder, kind)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "ws353": ("wordsim353.tsv", "pairs"),
    "simlex": ("simlex999.txt", "pairs"),
    "analogy": ("questions-words.txt", "analogy"),
}
PAIRS_RESTRICT = 300_000  # gensim's evaluate_word_pairs default
ANALOGY_RESTRICT = 30_000  # the usual restriction of the Google analogies (gensim's docs)


def default_eval_dir() -> Path:
    return Path(os.environ.get("EMBEDLAB_EVAL_DIR") or DEFAULT_EVAL_DIR)


# --------------------------------------------------------------------------- reading


@dataclass
class Pairs:
    name: str
    pairs: list[tuple[str, str, float]]  # (word1, word2, human score), lower-cased words


@dataclass
class Analogies:
    name: str
    questions: list[tuple[str, str, str, str]]  # a : b :: c : d, lower-cased
    sections: list[str]  # section of each question


def read_pairs(path: str | Path, name: str | None = None) -> Pairs:
    """``word1<TAB>word2<TAB>score`` lines (``#`` comments, blank lines skipped)."""
    path = Path(path)
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise DataError(
                    f"expected word1<TAB>word2<TAB>score, got {line!r}", str(path), line_no
                )
            try:
                score = float(fields[2])
            except ValueError:
                raise DataError(
                    f"score {fields[2]!r} is not a number", str(path), line_no
                ) from None
            pairs.append((fields[0].lower(), fields[1].lower(), score))
    return Pairs(name or path.stem, pairs)


def read_analogies(path: str | Path, name: str | None = None) -> Analogies:
    """``: section`` lines, then ``a b c d`` questions (a is to b as c is to d)."""
    path = Path(path)
    questions, sections = [], []
    section = ""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if line.startswith(":"):
                section = line[1:].strip()
                continue
            words = line.lower().split()
            if not words:
                continue
            if len(words) != 4:
                raise DataError(f"expected 4 words (a b c d), got {len(words)}", str(path), line_no)
            questions.append(tuple(words))
            sections.append(section)
    return Analogies(name or path.stem, questions, sections)  # type: ignore[arg-type]


def load_benchmarks(
    eval_dir: str | Path | None = None, files: dict[str, str | None] | None = None
) -> dict[str, Pairs | Analogies]:
    """The benchmarks found: ``files`` (name -> path, None: skip) over the defaults in ``eval_dir``.

    A default file that is absent is skipped (the result lacks its key); a file named
    explicitly in ``files`` must exist.
    """
    root = Path(eval_dir) if eval_dir is not None else default_eval_dir()
    files = dict(files or {})
    out: dict[str, Pairs | Analogies] = {}
    for name, (default, kind) in BENCHMARKS.items():
        explicit = name in files
        path = files.get(name) if explicit else root / default
        if path is None:
            continue
        path = Path(path)
        if not path.is_file():
            if explicit:
                raise DataError(f"{name} evaluation file not found", str(path))
            continue
        out[name] = read_pairs(path, name) if kind == "pairs" else read_analogies(path, name)
    return out


@dataclass
class WordVectors:
    """Words in frequency order and their vectors (row i is ``words[i]``)."""

    words: list[str]
    vectors: torch.Tensor  # (N, D) float32
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def index(self) -> dict[str, int]:
        """Lower-cased word -> its first row (the most frequent form)."""
        if not self._index:
            for i in range(len(self.words) - 1, -1, -1):
                self._index[self.words[i].lower()] = i
        return self._index


def read_word_vectors(
    path: str | Path,
    fmt: str | None = None,
    vocab_path: str | Path | None = None,
    limit: int | None = PAIRS_RESTRICT,
) -> WordVectors:
    """The first ``limit`` rows (None: all) of any file the pretrained readers open."""
    from embedlab.embeddings.vectors import read_vectors

    res = read_vectors(path, fmt, set(), top_k=limit or 2**62, vocab_path=vocab_path)
    words = [w.decode("utf-8", "replace") for w in res.top_words]
    if not words:
        raise DataError("no vectors in the file", str(path))
    matrix = torch.from_numpy(np.stack([res.vectors[w] for w in res.top_words]))
    return WordVectors(words, matrix.float())


def by_frequency(
    vocab: Sequence[str], weight: torch.Tensor, counts: torch.Tensor, skip: set[str] | None = None
) -> WordVectors:
    """A run's table as :class:`WordVectors`: seen words, most frequent first, ``skip`` left out."""
    from embedlab.tensorboard.embeddings import top_words

    ids = top_words(counts, list(vocab), len(vocab), skip=skip)
    rows = weight.detach().float().cpu()[ids]
    return WordVectors([vocab[i] for i in ids.tolist()], rows)


# --------------------------------------------------------------------------- scores


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def word_similarity(
    wv: WordVectors, pairs: Pairs, restrict: int = PAIRS_RESTRICT
) -> dict[str, float]:
    """Spearman rho (cosine vs human score) and the coverage (share of pairs in vocabulary)."""
    from scipy.stats import spearmanr

    index = wv.index()
    found = [
        (index[a], index[b], s)
        for a, b, s in pairs.pairs
        if index.get(a, restrict) < restrict and index.get(b, restrict) < restrict
    ]
    n = len(pairs.pairs)
    coverage = len(found) / n if n else 0.0
    if len(found) < 2:
        return {"rho": math.nan, "coverage": coverage, "pairs": float(len(found))}
    a = torch.tensor([f[0] for f in found])
    b = torch.tensor([f[1] for f in found])
    cos = (_unit(wv.vectors[a]) * _unit(wv.vectors[b])).sum(-1)
    rho = spearmanr(np.array([f[2] for f in found]), cos.numpy()).statistic
    return {"rho": float(rho), "coverage": coverage, "pairs": float(len(found))}


def analogy_accuracy(
    wv: WordVectors, analogies: Analogies, restrict: int = ANALOGY_RESTRICT, batch: int = 512
) -> dict[str, float]:
    """3CosAdd accuracy over the in-vocabulary questions, and their share (coverage)."""
    index = wv.index()
    n_rows = min(restrict, len(wv.words))
    found = [
        [index[w] for w in q]
        for q in analogies.questions
        if all(index.get(w, n_rows) < n_rows for w in q)
    ]
    n = len(analogies.questions)
    coverage = len(found) / n if n else 0.0
    if not found:
        return {"accuracy": math.nan, "coverage": coverage, "questions": 0.0}
    unit = _unit(wv.vectors[:n_rows].float())  # (V, D)
    # each row stands for its lower-cased form's first row: "Paris" is excluded with "paris"
    canon = torch.tensor([index[w.lower()] for w in wv.words[:n_rows]])  # (V,)
    q = torch.tensor(found)  # (Q, 4)
    correct = 0
    for s in range(0, len(q), batch):
        a, b, c, d = q[s : s + batch].unbind(1)  # (B,) each
        target = _unit(unit[b] - unit[a] + unit[c])  # (B, D)
        scores = target @ unit.T  # (B, V)
        banned = (
            (canon[None] == a[:, None]) | (canon[None] == b[:, None]) | (canon[None] == c[:, None])
        )
        scores.masked_fill_(banned, -math.inf)
        correct += int((canon[scores.argmax(1)] == d).sum())
    return {"accuracy": correct / len(found), "coverage": coverage, "questions": float(len(found))}


def evaluate(
    wv: WordVectors,
    benchmarks: dict[str, Pairs | Analogies],
    pairs_restrict: int = PAIRS_RESTRICT,
    analogy_restrict: int = ANALOGY_RESTRICT,
) -> dict[str, float]:
    """``{name: score, name_coverage: share}`` per benchmark (rho for pairs, accuracy for analogies)."""
    out: dict[str, float] = {}
    for name, bench in benchmarks.items():
        if isinstance(bench, Pairs):
            r = word_similarity(wv, bench, pairs_restrict)
            out[name], out[f"{name}_coverage"] = r["rho"], r["coverage"]
        else:
            r = analogy_accuracy(wv, bench, analogy_restrict)
            out[name], out[f"{name}_coverage"] = r["accuracy"], r["coverage"]
    return out


def neighbors(
    wv: WordVectors, queries: Sequence[str], k: int = 10
) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` nearest rows by cosine of each query word found (itself excluded)."""
    index = wv.index()
    unit = _unit(wv.vectors.float())
    out: dict[str, list[tuple[str, float]]] = {}
    for word in queries:
        i = index.get(word.lower())
        if i is None:
            continue
        sims = unit @ unit[i]
        sims[i] = -math.inf
        top = torch.topk(sims, min(k, len(wv.words) - 1))
        out[word] = [
            (wv.words[j], float(v))
            for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]
    return out


def neighbors_markdown(table: dict[str, list[tuple[str, float]]]) -> str:
    """A markdown table (TensorBoard TEXT): one row per query word."""
    lines = ["| word | nearest neighbours (cosine) |", "|---|---|"]
    for word, near in table.items():
        lines.append(f"| {word} | " + ", ".join(f"{w} ({s:.2f})" for w, s in near) + " |")
    return "\n".join(lines)


def results_table(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(benchmark, score, coverage) rows for printing."""
    rows = []
    for name in BENCHMARKS:
        if name in results:
            score = results[name]
            rows.append((name, f"{score:.4f}", f"{100 * results[f'{name}_coverage']:.1f}%"))
    return rows
