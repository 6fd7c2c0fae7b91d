"""Prediction throughput of ``embedlab.load(ckpt).predict`` on the shared MR test file.

Trains the bag-of-embeddings recipe (``experiment=boe_mr``) and the transformer recipe
(``experiment=transformer_mr``, fewer epochs: throughput does not depend on accuracy), or
takes checkpoints you give, then times ``predict`` over the test texts (raw text in, label
names and probabilities out: tokenization, n-grams, batching and the forward pass), best of
``--repeats``. Prints texts/s per model and the ratio to the issue's target (50k texts/s for
the bag model). One process, threads = cores.

    python scripts/bench_predict.py [--boe CKPT] [--transformer CKPT] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
TARGET = 50_000.0  # texts/s for the bag model (issue 11)


def train_checkpoint(experiment: str, out: Path, extra: list[str]) -> str:
    from embedlab.config import compose_config, validate
    from embedlab.train import train

    overrides = [
        f"experiment={experiment}",
        f"paths.data_dir={SHARED}",
        "print_config=false",
        "trainer.enable_progress_bar=false",
        "callbacks.projector.enabled=false",
        "callbacks.drift.enabled=false",
        "callbacks.embedding_histograms.enabled=false",
        *extra,
    ]
    cfg = compose_config(overrides, {"output_dir": out / experiment, "cache_dir": out / "cache"})
    return train(validate(cfg))["best_checkpoint"]


def texts_per_second(ckpt: str, texts: list[str], repeats: int) -> tuple[float, float]:
    import embedlab

    model = embedlab.load(ckpt)
    model.predict(texts[:64])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        preds = model.predict(texts)
        best = min(best, time.perf_counter() - start)
    assert len(preds) == len(texts)
    return len(texts) / best, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boe", help="a bag-of-embeddings checkpoint (default: train boe_mr)")
    ap.add_argument("--transformer", help="a transformer checkpoint (default: train one)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    test = SHARED / "mr" / "test.tsv"
    if not test.is_file():
        sys.exit(f"skipped: {test} not found (set EMBEDLAB_SHARED_DATA)")
    texts = [line.split("\t", 1)[1] for line in test.read_text().splitlines() if "\t" in line]
    with tempfile.TemporaryDirectory() as tmp:
        boe = args.boe or train_checkpoint("boe_mr", Path(tmp), [])
        trf = args.transformer or train_checkpoint(
            "transformer_mr", Path(tmp), ["trainer.max_epochs=1"]
        )
        rows = [("boe (word + bigram bag)", *texts_per_second(boe, texts, args.repeats))]
        rows.append(("transformer", *texts_per_second(trf, texts, args.repeats)))
    print(f"\nMR test file: {len(texts)} texts, best of {args.repeats}, {os.cpu_count()} cores")
    print(f"{'model':<26} {'texts/s':>10} {'seconds':>9} {'vs 50k target':>14}")
    for name, rate, seconds in rows:
        print(f"{name:<26} {rate:>10,.0f} {seconds:>9.3f} {rate / TARGET:>13.2f}x")


if __name__ == "__main__":
    main()
