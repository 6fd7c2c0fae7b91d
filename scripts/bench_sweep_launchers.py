"""Time one sweep under Hydra's basic launcher (jobs one after another) and under
``launcher=joblib`` (parallel processes); print both wall times and the speed-up.

    python scripts/bench_sweep_launchers.py --n-jobs 2 -- sweep=init_study hydra.sweeper.params.model=boe
    python scripts/bench_sweep_launchers.py --n-jobs 4 -- sweep=init_study data=trec

Under the basic launcher each job gets ``--threads`` torch threads (default 1); under joblib
each job gets cores // n_jobs (configs/launcher/joblib.yaml), i.e. 1 when n_jobs = cores, so
the comparison is job-level parallelism. Each sweep folder is printed; run ``embedlab-report``
on either.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def run(overrides: list[str], sweep_dir: Path, threads: int) -> float:
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "embedlab.train",
        "-m",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.enable_progress_bar=false",
        "print_config=false",
    ]
    print("+", " ".join(cmd), flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"sweep exited {proc.returncode} (see {sweep_dir}/sweep_summary.json)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel jobs under launcher=joblib")
    parser.add_argument(
        "--out", default="outputs/bench_launchers", help="parent of the two sweep folders"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per job in both sweeps"
    )
    parser.add_argument("overrides", nargs="*", help="embedlab-train overrides (after --)")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out).absolute()
    basic = run(args.overrides, out / f"{stamp}_basic", args.threads)
    joblib = run(
        [*args.overrides, "launcher=joblib", f"hydra.launcher.n_jobs={args.n_jobs}"],
        out / f"{stamp}_joblib",
        args.threads,
    )
    print(f"basic launcher (sequential):  {basic:8.1f} s  -> {out / (stamp + '_basic')}")
    print(
        f"joblib launcher, n_jobs={args.n_jobs}:  {joblib:8.1f} s  -> {out / (stamp + '_joblib')}"
    )
    print(f"speed-up: {basic / joblib:.2f}x on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
