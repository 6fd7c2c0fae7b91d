"""The console script: --help, --cfg job, hydra.run.dir, multirun, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUIET, TINY_DATA

BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "EMBEDLAB_CACHE_DIR": str(cwd / "cache"), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [str(BIN / "embedlab-train"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc


def test_help_lists_groups(tmp_path: Path):
    out = run_cli("--help", cwd=tmp_path).stdout
    assert "embedlab-train" in out
    for group in ("data", "embedding", "model", "optimizer", "trainer", "debug", "experiment"):
        assert f"{group}:" in out


def test_cfg_job_prints_the_composed_config(tmp_path: Path):
    out = run_cli("--cfg", "job", "embedding=xavier_uniform", cwd=tmp_path).stdout
    assert "init: xavier_uniform" in out and "source: synthetic" in out
    assert not (tmp_path / "outputs").exists()


def test_config_error_exits_with_the_problem(tmp_path: Path):
    proc = run_cli("optimizer.name=adamx", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "optimizer.name" in proc.stderr and "adamw" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_dir_and_multirun(tmp_path: Path):
    run_dir = tmp_path / "single"
    proc = run_cli(
        *QUIET, *TINY_DATA, "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    console = proc.stdout + proc.stderr
    # Lightning's lines that say nothing about the run are kept off the console, its others not
    for noise in ("Tip:", "LeafSpec", "overridden `transfer_batch_to_device`"):
        assert noise not in console
    assert "GPU available: False" in console
    # no learning-rate schedule: no schedule length to count, so no early train-loader load
    assert "to estimate number of stepping batches" not in console
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 1
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    sweep = tmp_path / "sweep"
    run_cli(
        "-m",
        *QUIET,
        *TINY_DATA,
        "trainer.max_epochs=1",
        "optimizer.lr=1e-3,1e-2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").is_file())
    assert len(jobs) == 2
    lrs = sorted(
        float(
            next(
                line.split("=")[1]
                for line in (j / ".hydra" / "overrides.yaml").read_text().splitlines()
                if "optimizer.lr" in line
            )
        )
        for j in jobs
    )
    assert lrs == [1e-3, 1e-2]
    assert all(list(j.glob("events.out.tfevents.*")) for j in jobs)


@pytest.mark.parametrize("bad", ["embedding=gaussian"])
def test_bad_choice_lists_options(tmp_path: Path, bad: str):
    proc = run_cli(bad, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "xavier_uniform" in proc.stderr
