"""Peak memory of a streamed epoch does not grow with the corpus: RSS at 1x and 4x, and rows/s.

    python scripts/bench_streaming.py                       # 0.5M and 2M lines, LM + classification
    python scripts/bench_streaming.py --lines 2000000       # 2M and 8M (the slow test's sizes)
    python scripts/bench_streaming.py --lines 200000 --scales 1,2 --tasks classification

For each scale it writes a generated corpus (``train.txt``: one text per line for the LM,
``train.tsv``: ``label<TAB>text`` for classification, ~12 words a line, Zipf-distributed
pseudo-words, the label carried by class words) into a temporary folder, then trains one
epoch of a tiny model on it with ``data.streaming=true`` in a child process, so that the
data path (reading, tokenizing, batching in a DataLoader worker) is what is measured. The
child reports its peak resident set size (``getrusage``: its own ``ru_maxrss`` and that of
its reaped DataLoader workers); the table shows both, rows per second of training, and the
ratio of the peak at each scale to the peak at the first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ("world", "sports", "business", "science")
POOL = 100_000  # distinct lines; the corpus is shuffled copies of them


def write_corpus(folder: Path, lines: int, seed: int = 0) -> dict[str, Any]:
    """``train.txt``, ``train.tsv`` (``lines`` lines each) and 2,000-line ``valid.*`` in ``folder``."""
    rng = np.random.default_rng(seed)
    shared = np.array([f"w{i}" for i in range(20_000)])
    weights = 1.0 / np.arange(1, len(shared) + 1)  # Zipf
    weights /= weights.sum()
    labels = rng.integers(0, len(CLASSES), POOL)
    lengths = rng.integers(8, 17, POOL)
    words = rng.choice(len(shared), size=(POOL, 16), p=weights)
    signal = rng.integers(0, 50, (POOL, 2))
    texts = []
    for i in range(POOL):
        row = shared[words[i, : lengths[i] - 2]].tolist()
        row += [f"{CLASSES[labels[i]]}{k}" for k in signal[i]]  # two class words
        texts.append(" ".join(row))
    txt = np.array([t + "\n" for t in texts], dtype=object)
    tsv = np.array(
        [f"{CLASSES[y]}\t{t}\n" for y, t in zip(labels, texts, strict=True)], dtype=object
    )
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.txt").open("w") as f_txt, (folder / "train.tsv").open("w") as f_tsv:
        f_tsv.write("label\ttext\n")
        for start in range(0, lines, POOL):
            pick = rng.permutation(POOL)[: min(POOL, lines - start)]
            f_txt.write("".join(txt[pick].tolist()))
            f_tsv.write("".join(tsv[pick].tolist()))
    val = rng.permutation(POOL)[:2000]
    (folder / "valid.txt").write_text("".join(txt[val].tolist()))
    (folder / "valid.tsv").write_text("label\ttext\n" + "".join(tsv[val].tolist()))
    return {
        "lines": lines,
        "txt_mb": (folder / "train.txt").stat().st_size / 2**20,
        "tsv_mb": (folder / "train.tsv").stat().st_size / 2**20,
    }


TINY = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.rich_progress=false",
    "trainer.max_epochs=1",
    "data.streaming=true",
]


def overrides(task: str, folder: Path, workers: int) -> list[str]:
    """A tiny model, one streamed epoch over ``folder``'s corpus."""
    common = [*TINY, f"data.num_workers={workers}", f"data.root={folder}"]
    if task == "lm":
        return [
            *common,
            "task=lm",
            "model=transformer_lm",
            "data=text",
            "data.train=train.txt",
            "data.val=valid.txt",
            "data.test=null",
            "data.block_size=128",
            "data.batch_size=64",
            "model.d_model=8",
            "embedding.dim=8",
            "model.nhead=1",
            "model.num_layers=1",
            "model.dim_feedforward=16",
            "tokenizer.max_size=256",  # small logits: the data path, not the softmax, is measured
            "tokenizer.eos_token='<eos>'",
            "task.generate.num_samples=0",
        ]
    return [
        *common,
        "data=files",
        "data.train=train.tsv",
        "data.val=valid.tsv",
        "data.batch_size=2048",
        "embedding.dim=8",
    ]


def child(task: str, folder: Path, workers: int) -> None:
    """One streamed epoch in this process; print its peak RSS and speed as one JSON line."""
    from embedlab.config import compose_config
    from embedlab.train import train

    paths = {"output_dir": folder / f"run_{task}", "cache_dir": folder / "cache"}
    cfg = compose_config(overrides(task, folder, workers), paths)
    started = time.perf_counter()
    metrics = train(cfg)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "task": task,
        "rss_mb": round(own, 1),
        "worker_rss_mb": round(workers_rss, 1),
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "train_examples": metrics["train_examples"],
    }
    print("BENCH " + json.dumps(result), flush=True)


def measure(task: str, folder: Path, workers: int = 1, timeout: float = 1800) -> dict[str, Any]:
    """Run :func:`child` in a fresh process; its JSON result."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--dir",
        str(folder),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{task} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH ") :])


def run(lines: int, scales: list[int], tasks: list[str], workers: int, tmp: Path) -> list[dict]:
    rows = []
    for scale in scales:
        folder = Path(tempfile.mkdtemp(prefix=f"stream{scale}x-", dir=tmp))
        try:
            corpus = write_corpus(folder, lines * scale)
            for task in tasks:
                result = measure(task, folder, workers)
                result.update(scale=scale, **corpus)
                result["peak_mb"] = max(result["rss_mb"], result["worker_rss_mb"])
                result["rows_per_second"] = round(corpus["lines"] / result["train_seconds"])
                rows.append(result)
                print(
                    f"{scale}x {task:>14}: {corpus['lines']:>10,} lines "
                    f"({corpus['txt_mb' if task == 'lm' else 'tsv_mb']:,.0f} MiB), "
                    f"peak RSS main {result['rss_mb']:,.0f} MiB, worker {result['worker_rss_mb']:,.0f} MiB, "
                    f"{result['rows_per_second']:,} rows/s ({result['train_seconds']:.1f} s)",
                    flush=True,
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    base = {r["task"]: r["peak_mb"] for r in rows if r["scale"] == scales[0]}
    for r in rows:
        r["ratio"] = round(r["peak_mb"] / base[r["task"]], 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000, help="lines at 1x")
    parser.add_argument("--scales", default="1,4", help="corpus sizes, in multiples of --lines")
    parser.add_argument("--tasks", default="lm,classification")
    parser.add_argument("--workers", type=int, default=1, help="data.num_workers")
    parser.add_argument("--tmp", default=None, help="folder for the corpora (default: $TMPDIR)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.dir), args.workers)
        return
    scales = [int(s) for s in args.scales.split(",")]
    tasks = args.tasks.split(",")
    tmp = Path(args.tmp or tempfile.gettempdir())
    rows = run(args.lines, scales, tasks, args.workers, tmp)
    print("\nscale  task            lines       peak RSS   vs 1x   rows/s")
    for r in rows:
        print(
            f"{r['scale']:>4}x  {r['task']:<14} {r['lines']:>11,}  {r['peak_mb']:>7,.0f} MiB"
            f"  {r['ratio']:>5.3f}x  {r['rows_per_second']:>8,}"
        )


if __name__ == "__main__":
    main()
