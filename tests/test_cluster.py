"""The SLURM path without a cluster: submitit's local executor runs a sweep, and the sbatch
script submitit would submit for ``launcher=slurm`` holds the resources and the requeue."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import TINY_SWEEP
from tests.test_sweep_configs import compose_with_hydra


def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "embedlab.train",
        "-m",
        "launcher=submitit_local",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={tmp_path}",
        *TINY_SWEEP,
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, env={**os.environ})
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["jobs"] == 2 and not summary["failed"]
    seeds = sorted(
        json.loads((d / "metrics.json").read_text()) and d.name for d in sweep.glob("*_seed=*")
    )
    assert seeds == ["0_seed=1", "1_seed=2"]
    assert list((sweep / ".submitit").iterdir())  # submitit's own folder: pickles and logs


def test_slurm_submission_script_has_resources_array_and_requeue(tmp_path, monkeypatch):
    import submitit

    # submitit looks for srun before it writes anything: a stand-in on PATH (nothing runs it)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    cfg = compose_with_hydra(
        "launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.tasks_per_node=4",
        "hydra.launcher.timeout_min=90",
        f"hydra.sweep.dir={tmp_path}",
        "trainer=ddp",
    )
    assert cfg.resume == "auto"  # a requeued job continues from its last.ckpt
    params = dict(instantiate(cfg.hydra.launcher).params)
    # what the plugin's launch() hands submitit (hydra_submitit_launcher, launch)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(submitit_base()).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    slurm = executor._executor
    slurm.parameters["map_count"] = 40  # what map_array sets for a 40-job sweep
    script = slurm._make_submission_file_text("python -m embedlab.train", "uid")
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=90",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --array=0-39%16",  # at most array_parallelism at once
    ):
        assert line in script, line
    assert slurm.max_num_timeout == 3  # requeued up to 3 times, resuming via resume=auto
    GlobalHydra.instance().clear()


def submitit_base():
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    return BaseQueueConf
