"""Benchmark: embedlab's pretrained loading vs gensim on the real glove.6B.50d.txt.

Times, in one process and one thread, for a 20,000-word vocabulary:
  1. embedlab cold load  (scan the file, parse floats for vocabulary words only, align, write the cache)
  2. embedlab cached load (the aligned matrix from paths.cache_dir)
  3. gensim ``KeyedVectors.load_word2vec_format(path, no_header=True)`` (parses every row)
and prints the times and the ratios. Targets: cold >= 10x faster than gensim, cached <= 0.1 s.

    python scripts/bench_vectors.py --dir /tmp/glove          # writes glove.6B.50d.txt there if missing
    python scripts/bench_vectors.py --dir /tmp/glove --vocab mr --mr ../shared/data/mr/train.tsv

The file is read once before timing so every loader starts from the OS page cache.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "glove-6b-50d"


def ensure_glove(folder: Path) -> Path:
    path = folder / "glove.6B.50d.txt"
    if not path.is_file():
        if not TOOL.is_file():
            sys.exit(f"{path} missing and {TOOL} not found: put glove.6B.50d.txt into {folder}")
        subprocess.run([str(TOOL), str(folder)], check=True)
    return path


def file_vocab(path: Path, n: int, seed: int) -> list[str]:
    """The first ``n`` words of the file (its most frequent), shuffled."""
    words = []
    with open(path, "rb") as f:
        for line in f:
            words.append(line.split(b" ", 1)[0].decode("utf-8"))
            if len(words) == n:
                break
    random.Random(seed).shuffle(words)
    return words


def mr_vocab(path: Path, n: int) -> list[str]:
    from collections import Counter

    counts = Counter(
        w
        for line in path.read_text(encoding="utf-8").splitlines()
        for w in line.split("\t", 1)[1].split()
    )
    return [w for w, _ in counts.most_common(n)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--dir", type=Path, default=Path(".vector_cache"), help="folder of glove.6B.50d.txt"
    )
    ap.add_argument("--size", type=int, default=20000, help="vocabulary size")
    ap.add_argument(
        "--vocab",
        choices=["file", "mr"],
        default="file",
        help="file: first N words shuffled; mr: MR's top N",
    )
    ap.add_argument(
        "--mr", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mr/train.tsv"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-gensim", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from embedlab.embeddings.vectors import load_aligned

    path = ensure_glove(args.dir)
    vocab = (
        file_vocab(path, args.size, args.seed)
        if args.vocab == "file"
        else mr_vocab(args.mr, args.size)
    )
    with open(path, "rb") as f:  # warm the page cache for everyone
        while f.read(1 << 24):
            pass

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cold = load_aligned(path, vocab, fmt="text", cache_dir=cache)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = load_aligned(path, vocab, fmt="text", cache_dir=cache)
        t_cached = time.perf_counter() - t0
    if not cached["stats"]["cached"] or not torch.equal(cold["vectors"], cached["vectors"]):
        sys.exit("cache did not answer or returned other vectors")
    found = int(cold["found"].sum())
    print(
        f"file: {path} ({path.stat().st_size / 1e6:.0f} MB, {cold['stats']['file_words']} words, dim {cold['stats']['dim']})"
    )
    print(f"vocabulary: {len(vocab)} words ({args.vocab}), {found} found")
    print(f"embedlab cold load:   {t_cold:8.3f} s")
    print(f"embedlab cached load: {t_cached:8.3f} s")
    if args.skip_gensim:
        return
    from gensim.models import KeyedVectors

    t0 = time.perf_counter()
    kv = KeyedVectors.load_word2vec_format(str(path), no_header=True)
    t_gensim = time.perf_counter() - t0
    row = next(i for i, w in enumerate(vocab) if w in kv.key_to_index)
    if not torch.allclose(cold["vectors"][row], torch.from_numpy(kv[vocab[row]].copy())):
        sys.exit(f"embedlab and gensim disagree on {vocab[row]!r}")
    print(f"gensim full load:     {t_gensim:8.3f} s")
    print(f"ratio gensim / embedlab cold:   {t_gensim / t_cold:6.1f}x  (target >= 10x)")
    print(f"ratio gensim / embedlab cached: {t_gensim / t_cached:6.0f}x  (cached target <= 0.1 s)")


if __name__ == "__main__":
    main()
