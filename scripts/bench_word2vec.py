"""Benchmark: embedlab's skip-gram or CBOW (``task=word2vec``) side by side with gensim's ``Word2Vec``.

Both train skip-gram (``--model cbow``: CBOW, mean of the bag) with negative sampling on the same whitespace-tokenized text with the same
recipe (dim 100, window 5, 5 negatives, min_count 5, subsampling 1e-4, alpha 0.025 decaying
linearly, ``--epochs``), and both vector sets are scored by ``embedlab.embeddings.intrinsic``
(gensim's protocol: tests/test_intrinsic.py checks it against gensim's own functions).

    python scripts/bench_word2vec.py                              # ptb and shared-all, 5 epochs
    python scripts/bench_word2vec.py --corpora ptb --epochs 10 --threads 2
    python scripts/bench_word2vec.py --corpora ptb --model cbow --threads 1

Corpora: ``ptb`` (``<data-dir>/ptb/ptb.train.txt``, 887k words) and ``shared-all``: every text
the machine holds (PTB train+valid+test, and the text column of every ``.tsv`` of mr, subj,
cr, mpqa, trec, sst5, sst2 incl. their phrase files, lower-cased, each text once), written
once to ``--out``.
PTB's ``<unk>`` tokens are removed from both tools' input (embedlab drops its unknown token
before windowing, as it drops words under min_count).

gensim: ``Word2Vec(sentences, sg=1, workers=--threads, ...)``; time = vocabulary + training.
embedlab: ``embedlab-train task=word2vec model=skipgram data=text ...`` in a child process with
``EMBEDLAB_NUM_THREADS=--embedlab-threads`` (default: ``--threads``, the kernel's threads),
TensorBoard views off; "train s" is the training loop (metrics.json ``train_seconds``), "wall s"
the whole process (start-up, tokenizing, validation, export). words/s = corpus words x epochs /
train s. Targets: rho within 0.02 and analogy within 2 points of gensim, wall time <= 2x gensim.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_SETS = ("mr", "subj", "cr", "mpqa", "trec", "sst5", "sst2")


def shared_all(data_dir: Path, dest: Path) -> Path:
    """PTB's three splits + the texts of every shared classification .tsv, one text per line."""
    if dest.is_file():
        return dest
    lines: list[str] = []
    for split in ("train", "valid", "test"):
        lines += (data_dir / "ptb" / f"ptb.{split}.txt").read_text().splitlines()
    seen: set[str] = set()  # the sets share sentences (sst2/sst5, trec's coarse/fine files)
    for name in SHARED_SETS:
        for tsv in sorted((data_dir / name).glob("*.tsv")):
            for row in tsv.read_text(encoding="utf-8").splitlines():
                text = row.split("\t", 1)[-1].strip().lower()
                if text and text != "sentence" and text not in seen:
                    seen.add(text)
                    lines.append(text)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def read_sentences(path: Path) -> list[list[str]]:
    return [[w for w in line.split() if w != "<unk>"] for line in path.read_text().splitlines()]


def evaluate(vec: Path) -> dict[str, float]:
    from embedlab.embeddings import intrinsic

    return intrinsic.evaluate(intrinsic.read_word_vectors(vec), intrinsic.load_benchmarks())


def run_gensim(corpus: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from gensim.models import Word2Vec

    sentences = read_sentences(corpus)
    words = sum(len(s) for s in sentences)
    start = time.perf_counter()
    model = Word2Vec(
        sentences,
        vector_size=100,
        window=5,
        negative=5,
        min_count=5,
        sample=1e-4,
        sg=int(args.model == "skipgram"),
        alpha=0.025,
        min_alpha=0.0001,
        epochs=args.epochs,
        workers=args.threads,
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    vec = out / "gensim.vec"
    model.wv.save_word2vec_format(str(vec))
    return {"train_s": seconds, "wall_s": seconds, "words": words, **evaluate(vec)}


def run_embedlab(corpus: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    # the text as gensim gets it (<unk> removed), so both tools see the same words
    clean = out / "corpus.txt"
    clean.write_text("\n".join(" ".join(s) for s in read_sentences(corpus)) + "\n")
    run_dir = out / "embedlab"
    cmd = [
        str(Path(sys.executable).with_name("embedlab-train")),
        "task=word2vec",
        f"model={args.model}",
        "data=text",
        f"data.root={out}",
        "data.train=corpus.txt",
        f"data.val={Path(args.data_dir) / 'ptb' / 'ptb.valid.txt'}",
        "data.test=null",
        "test=false",
        "tokenizer.lowercase=false",
        "tokenizer.split_punctuation=false",
        "tokenizer.normalization=none",
        "embedding.dim=100",
        f"trainer.max_epochs={args.epochs}",
        f"seed={args.seed}",
        f"paths.cache_dir={out / 'cache'}",
        f"hydra.run.dir={run_dir}",
        "print_config=false",
        "callbacks.rich_progress=false",
        "trainer.enable_progress_bar=false",
        "callbacks.projector.enabled=false",
        "callbacks.drift.enabled=false",
        "callbacks.embedding_histograms.enabled=false",
        "callbacks.intrinsic.enabled=false",
        *args.embedlab_args,
    ]
    env = dict(os.environ, EMBEDLAB_NUM_THREADS=str(args.embedlab_threads))
    env["OMP_NUM_THREADS"] = str(args.embedlab_threads)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"embedlab-train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    words = sum(len(line.split()) for line in clean.read_text().splitlines())
    return {
        "train_s": metrics["train_seconds"],
        "wall_s": wall,
        "words": words,
        **evaluate(run_dir / "vectors.vec"),
    }


def table(rows: list[dict[str, Any]], epochs: int) -> str:
    head = "| corpus | words | tool | train s | wall s | words/s | WS-353 rho | SimLex rho | analogy acc (cov.) |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        wps = r["words"] * epochs / r["train_s"]
        lines.append(
            f"| {r['corpus']} | {r['words']:,} | {r['tool']} | {r['train_s']:.1f} | {r['wall_s']:.1f} | "
            f"{wps:,.0f} | {r.get('ws353', float('nan')):.3f} | {r.get('simlex', float('nan')):.3f} | "
            f"{100 * r.get('analogy', float('nan')):.1f}% ({100 * r.get('analogy_coverage', 0):.0f}%) |"
        )
    return "\n".join(lines)


def verdicts(ours: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    out = []
    for key in ("ws353", "simlex"):
        diff = ours[key] - ref[key]
        out.append(
            f"{key}: {diff:+.3f} rho vs gensim ({'met' if diff >= -0.02 else 'NOT met'}: within 0.02)"
        )
    diff = 100 * (ours["analogy"] - ref["analogy"])
    out.append(f"analogy: {diff:+.1f} points ({'met' if diff >= -2 else 'NOT met'}: within 2)")
    for key in ("train_s", "wall_s"):
        ratio = ours[key] / ref[key]
        out.append(f"{key}: {ratio:.2f}x gensim ({'met' if ratio <= 2 else 'NOT met'}: at most 2x)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="ptb,shared-all", help="ptb, shared-all (comma list)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="gensim workers (default: cores)"
    )
    parser.add_argument(
        "--embedlab-threads", type=int, default=None, help="embedlab's threads (default: --threads)"
    )
    parser.add_argument("--model", choices=("skipgram", "cbow"), default="skipgram")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="outputs/bench_word2vec")
    parser.add_argument(
        "--embedlab-args", nargs="*", default=[], help="extra embedlab-train overrides"
    )
    args = parser.parse_args(argv)
    if args.embedlab_threads is None:
        args.embedlab_threads = args.threads
    try:
        import gensim  # noqa: F401
    except ImportError:
        print("bench_word2vec: gensim is not installed (pip install -e '.[bench]'); skipped")
        return
    data_dir, out = Path(args.data_dir), Path(args.out)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in args.corpora.split(","):
        corpus = (
            data_dir / "ptb" / "ptb.train.txt"
            if name == "ptb"
            else shared_all(data_dir, out / "shared-all.txt")
        )
        work = out / name
        work.mkdir(parents=True, exist_ok=True)
        ref = {
            "corpus": name,
            "tool": f"gensim {args.model} {args.threads} thr",
            **run_gensim(corpus, args, work),
        }
        ours = {
            "corpus": name,
            "tool": f"embedlab {args.model} {args.embedlab_threads} thr",
            **run_embedlab(corpus, args, work),
        }
        rows += [ref, ours]
        notes += [f"{name} {v}" for v in verdicts(ours, ref)]
        print(table(rows[-2:], args.epochs), flush=True)
    text = f"`python scripts/bench_word2vec.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
    text += table(rows, args.epochs) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (out / "bench_word2vec.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
