"""``embedlab-export``: the trained embedding table of a checkpoint, in formats other tools read.

Word rows by default (padding and the other specials left out; ``ngrams=true`` adds the
n-gram rows). ``vec`` (word2vec text, floats written with 9 significant digits so float32
values read back bit-identical), ``word2vec-bin`` (word2vec C binary), ``npy`` / ``pt`` (the
matrix plus ``<out>.vocab.txt``, for ``pretrained=file pretrained.vocab_path=...``) and
``tensorboard`` (a PROJECTOR folder). ``neighbors=[w1,w2]`` prints each word's ``k`` nearest
words by cosine instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedlab.cli_args import run
from embedlab.errors import ConfigError

EXPORT_FORMATS = {
    "vec": ".vec",
    "word2vec-bin": ".bin",
    "npy": ".npy",
    "pt": ".pt",
    "tensorboard": "",
}


@dataclass
class ExportArgs:
    """Write a checkpoint's trained embedding table (format=vec|word2vec-bin|npy|pt|tensorboard),
    or print nearest neighbours (neighbors=[word,...] k=10)."""

    ckpt: str = "???"  # the checkpoint file
    format: str = "vec"
    out: str | None = None  # output path (None: beside the checkpoint, <stem>.<ext>)
    ngrams: bool = False  # also the word n-gram rows (boe with tokenizer.ngrams > 1)
    neighbors: list[str] = field(default_factory=list)  # print neighbours of these words
    k: int = 10  # neighbours per word
    before: str | None = None  # neighbors: also in this vector file (e.g. the run's start)


def table_rows(model: Any, ngrams: bool = False) -> tuple[list[str], torch.Tensor]:
    """(words, rows): the vocabulary without specials (+ n-grams) and their trained vectors."""
    tok = model.config.tokenizer
    specials = {t for t in (tok.pad_token, tok.unk_token, tok.bos_token, tok.eos_token) if t}
    words = len(model.vocab) - (len(model.ngrams) if model.ngrams is not None else 0)
    last = len(model.vocab) if ngrams else words
    ids = [i for i in range(last) if model.vocab[i] not in specials]
    weight = model.embedding.weight.detach().float()
    return [model.vocab[i] for i in ids], weight[ids]


def write_vectors(words: list[str], rows: torch.Tensor, fmt: str, out: Path) -> list[Path]:
    """Write ``rows`` named by ``words`` to ``out`` in ``fmt``; returns the files written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    matrix = rows.numpy().astype(np.float32)
    n, dim = matrix.shape
    if fmt == "vec":
        with open(out, "w", encoding="utf-8") as f:
            f.write(f"{n} {dim}\n")
            for word, row in zip(words, matrix, strict=True):
                f.write(word + " " + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n")
        return [out]
    if fmt == "word2vec-bin":
        with open(out, "wb") as f:
            f.write(f"{n} {dim}\n".encode())
            for word, row in zip(words, matrix, strict=True):
                f.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
        return [out]
    if fmt in ("npy", "pt"):
        vocab = out.with_suffix(".vocab.txt")
        vocab.write_text("".join(w + "\n" for w in words), encoding="utf-8")
        if fmt == "npy":
            np.save(out, matrix, allow_pickle=False)
        else:
            torch.save({"weight": torch.from_numpy(matrix)}, out)
        return [out, vocab]
    if fmt == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out))
        writer.add_embedding(torch.from_numpy(matrix), metadata=words, tag="embedding")
        writer.close()
        return [out]
    raise ConfigError([f"format: choose one of {list(EXPORT_FORMATS)}, got {fmt!r}"])


def nearest(words: list[str], rows: torch.Tensor, queries: list[str], k: int) -> dict[str, list]:
    """For each query word in ``words``: its ``k`` nearest other words by cosine, with scores."""
    unit = torch.nn.functional.normalize(rows, dim=1)
    index = {w: i for i, w in enumerate(words)}
    out: dict[str, list] = {}
    for q in queries:
        if q not in index:
            out[q] = []
            continue
        sims = unit @ unit[index[q]]
        sims[index[q]] = -2.0
        top = sims.topk(min(k, len(words) - 1))
        out[q] = [
            (words[i], round(float(s), 4)) for s, i in zip(top.values, top.indices, strict=True)
        ]
    return out


def _before(path: str, words: list[str], queries: list[str], k: int) -> dict[str, list]:
    """Neighbours in a vector file, among the checkpoint's words the file has."""
    from embedlab.embeddings.vectors import read_vectors

    result = read_vectors(Path(path).expanduser(), None, {w.encode() for w in words})
    known = [w for w in words if w.encode() in result.vectors]
    rows = torch.from_numpy(np.stack([result.vectors[w.encode()] for w in known]))
    return nearest(known, rows, queries, k)


def export(args: ExportArgs) -> list[Path] | dict[str, list]:
    from embedlab.inference import load

    if args.format not in EXPORT_FORMATS:
        raise ConfigError([f"format: choose one of {list(EXPORT_FORMATS)}, got {args.format!r}"])
    model = load(args.ckpt)
    words, rows = table_rows(model, args.ngrams)
    if args.neighbors:
        found = nearest(words, rows, list(args.neighbors), args.k)
        before = _before(args.before, words, list(args.neighbors), args.k) if args.before else {}

        def show(hits: list, missing: str) -> str:
            return ", ".join(f"{w} {s:.3f}" for w, s in hits) if hits else missing

        for q, hits in found.items():
            print(f"{q}: {show(hits, '(not in the vocabulary)')}")
            if q in before:
                print(f"{' ' * len(q)}  before: {show(before[q], '(not in the file)')}")
        return found
    ckpt = Path(args.ckpt)
    out = Path(args.out) if args.out else ckpt.with_name(ckpt.stem + EXPORT_FORMATS[args.format])
    if args.format == "tensorboard" and not args.out:
        out = ckpt.with_name(ckpt.stem + "_projector")
    files = write_vectors(words, rows, args.format, out)
    print(f"{len(words)} vectors of dim {rows.shape[1]} -> " + ", ".join(map(str, files)))
    return files


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``embedlab-export ckpt=PATH format=vec [out=PATH]``)."""
    run("embedlab-export", export, ExportArgs, argv)


if __name__ == "__main__":
    main()
