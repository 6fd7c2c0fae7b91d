"""Tokenizer training + encoding with and without the ASCII fast paths, in one process.

The word tokenizer normalises text (NFKC by default) before splitting it; no ASCII text is
changed by that, so ``embedlab.data.tokenizer`` trains on chunks of pure-ASCII texts with a
twin tokenizer that skips it, and encodes them in Python (one regex pass and one dict lookup a
word, ``word_lookup``) instead of through an ``Encoding`` per text. Both sides here run the
same ``build_tokenizer`` + ``encode`` on the same texts, alternately, ``--repeats`` times:
"baseline" with both switched off (the tokenizer's own passes), "embedlab" as shipped.
Printed: seconds for each (median), the ratio baseline / embedlab, and whether vocabulary and
ids are identical.

    python scripts/bench_tokenize.py                       # 1M texts of the synthetic generator
    python scripts/bench_tokenize.py --texts 200000 --repeats 3
    python scripts/bench_tokenize.py --tsv ../shared/data/mr/train.tsv
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import embedlab.data.tokenizer as tokenization


def word_tokenizer() -> Any:
    """The shipped ``tokenizer`` config of a default run (``configs/tokenizer/word.yaml``)."""
    from embedlab.config import compose_config

    return compose_config(["print_config=false"]).tokenizer


def load_texts(tsv: Path | None, n: int) -> list[str]:
    """The text column of ``tsv`` (label<TAB>text), else ``n`` texts of the synthetic generator."""
    if tsv is not None:
        with tsv.open(encoding="utf-8") as f:
            return [line.rstrip("\n").split("\t", 1)[-1] for line in f]
    from embedlab.data.synthetic import generate

    splits, _ = generate({"train": n})
    return list(splits["train"].texts)


def run(texts: list[str], cfg: Any, fast: bool) -> tuple[float, float, object, object]:
    """(train seconds, encode seconds, tokenizer, encoded) with the ASCII paths on or off."""
    original = tokenization.ascii_twin, tokenization.word_lookup
    if not fast:
        tokenization.ascii_twin = tokenization.word_lookup = lambda tok: None
    try:
        start = time.perf_counter()
        tok = tokenization.build_tokenizer(cfg, texts)
        trained = time.perf_counter()
        encoded = tokenization.encode(tok, texts)
        done = time.perf_counter()
    finally:
        tokenization.ascii_twin, tokenization.word_lookup = original
    return trained - start, done - trained, tok, encoded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1_000_000, help="synthetic texts")
    parser.add_argument("--tsv", type=Path, default=None, help="read texts from label<TAB>text")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    texts = load_texts(args.tsv, args.texts)
    cfg = word_tokenizer()
    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "embedlab": []}
    results = {}
    for _ in range(args.repeats):
        for side in times:
            train_s, encode_s, tok, encoded = run(texts, cfg, fast=side == "embedlab")
            times[side].append((train_s, encode_s))
            results[side] = (tok, encoded)
    (tok_a, enc_a), (tok_b, enc_b) = results["baseline"], results["embedlab"]
    same = (
        tok_a.to_str() == tok_b.to_str()
        and torch.equal(enc_a.ids, enc_b.ids)
        and torch.equal(enc_a.offsets, enc_b.offsets)
    )
    ascii_share = sum(map(str.isascii, texts)) / max(len(texts), 1)
    source = str(args.tsv) if args.tsv else "synthetic generator"
    print(f"{len(texts):,} texts ({source}, {ascii_share:.0%} ASCII), median of {args.repeats}")
    print("| side | train s | encode s | total s |")
    print("|---|---|---|---|")
    totals = {}
    for side, rows in times.items():
        train_s = statistics.median(r[0] for r in rows)
        encode_s = statistics.median(r[1] for r in rows)
        totals[side] = statistics.median(r[0] + r[1] for r in rows)
        print(f"| {side} | {train_s:.2f} | {encode_s:.2f} | {totals[side]:.2f} |")
    ratio = totals["baseline"] / max(totals["embedlab"], 1e-9)
    print(f"ratio baseline / embedlab: {ratio:.2f}x; same tokenizer and ids: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
