"""resume=RUN_DIR and resume=auto: continue a run in its own folder, skip finished runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from embedlab.config import validate
from embedlab.errors import ConfigError
from embedlab.train import train
from tests.conftest import TINY_SWEEP

# 1200 texts: 5 batches an epoch, in 3 Lightning steps of 2, 2 and 1 batches
TINY = [
    "trainer.log_every_n_steps=2",
    "data.batches_per_step=2",
    "callbacks.projector.enabled=false",
]


def _steps(run_dir: Path, tag: str) -> list[int]:
    """Steps of ``tag`` as TensorBoard shows them (all event files, purged steps hidden)."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_resume_run_dir_continues_an_interrupted_run_in_its_folder(make_cfg, tmp_path):
    full = train(validate(make_cfg(*TINY, "trainer.max_epochs=3")))

    # a run planned for 3 epochs, stopped after the checkpoint of its first epoch
    cfg = make_cfg(*TINY, "trainer.max_epochs=1")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "interrupted")
    first = train(validate(cfg))
    run_dir = Path(first["output_dir"])
    stored = OmegaConf.load(run_dir / "config.yaml")
    stored.trainer.max_epochs = 3
    OmegaConf.save(stored, run_dir / "config.yaml")
    (run_dir / "metrics.json").unlink()

    resumed = train(make_cfg(*TINY, f"resume={run_dir}"))
    assert resumed["output_dir"] == str(run_dir)  # the same folder, not a new one
    assert resumed["epochs"] == full["epochs"] == 3
    assert resumed["global_steps"] == full["global_steps"]
    assert (
        json.loads((run_dir / "metrics.json").read_text())["global_steps"] == full["global_steps"]
    )
    steps = _steps(run_dir, "train/loss_step")
    # continued, no step logged twice (TensorBoard reads event files in name order, and two
    # writers of one process in the same second are named by a counter: ".10" before ".9")
    assert len(steps) == len(set(steps))
    assert min(steps) < full["global_steps"] // 3  # the first epoch's, logged before the stop
    assert max(steps) >= full["global_steps"] - 5


def test_resume_auto_skips_a_finished_run_and_resumes_an_unfinished_one(make_cfg, tmp_path):
    cfg = make_cfg(*TINY, "resume=auto")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "fixed")
    first = train(validate(cfg.copy()))
    again = train(cfg.copy())
    assert again == first  # finished: the stored metrics, nothing trained

    (tmp_path / "fixed" / "metrics.json").unlink()
    resumed = train(cfg.copy())  # from last.ckpt: nothing left to train, tested again
    assert resumed["global_steps"] == first["global_steps"]
    assert resumed["test/acc"] == pytest.approx(first["test/acc"], abs=1e-6)


def test_resume_of_a_folder_that_is_not_a_run_is_a_config_error(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="is not a run folder"):
        train(make_cfg(f"resume={tmp_path}"))
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(make_cfg()))
    with pytest.raises(ConfigError, match=r"no checkpoints/last\.ckpt"):
        train(make_cfg(f"resume={tmp_path}"))


def test_a_relaunched_sweep_with_resume_auto_skips_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "embedlab.train",
        "-m",
        "seed=1,2",
        "resume=auto",
        f"hydra.sweep.dir={sweep}",
        f"paths.root_dir={tmp_path}",
        *TINY_SWEEP,
    ]
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=300)
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 2
    stamps = [(p / "metrics.json").stat().st_mtime_ns for p in jobs]
    out = subprocess.run(cmd, check=True, capture_output=True, env=env, text=True, timeout=300)
    assert [(p / "metrics.json").stat().st_mtime_ns for p in jobs] == stamps  # not rerun
    assert out.stderr.count("already finished") + out.stdout.count("already finished") == 2


def _killed_then_resumed(tmp_path: Path, make_cfg, at_step: int, overrides: list[str]) -> dict:
    from tests import killed_run

    killed_run.register()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.killed_run",
            str(tmp_path / "k"),
            f"+callbacks.kill.at_step={at_step}",
            *overrides,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL: no clean-up ran
    run_dir = tmp_path / "k" / "run"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / "metrics.json").exists()
    stored = OmegaConf.load(run_dir / "config.yaml")
    stored.callbacks.kill.at_step = -1  # the resumed process is not killed again
    OmegaConf.save(stored, run_dir / "config.yaml")
    return train(make_cfg(f"resume={run_dir}"))


RESUME_CASES = {
    # 1200 texts, 5 batches an epoch: 3 Lightning steps of 2, 2 and 1 batches (the default's
    # 32 would make each epoch one step); killed in the second epoch's second step
    "bag, sparse row-wise Adagrad, mid-epoch": (4, ["data.batches_per_step=2"]),
    "bag, one batch a step, mid-epoch": (7, ["data.batches_per_step=1"]),
    "bag, sparse, right after an epoch boundary": pytest.param((5, []), marks=pytest.mark.slow),
    "bag, dense AdamW, mid-epoch": pytest.param(
        (8, ["embedding.sparse=false", "optimizer=adamw"]), marks=pytest.mark.slow
    ),
    "transformer, dense AdamW, mid-epoch": pytest.param(
        (25, ["model=transformer"]),
        marks=pytest.mark.slow,  # 19 steps an epoch
    ),
}


@pytest.mark.parametrize("case", RESUME_CASES.values(), ids=list(RESUME_CASES))
def test_a_killed_run_resumed_ends_where_the_uninterrupted_run_ends(
    case, make_cfg, tmp_path, one_thread
):
    """SIGKILL mid-run, resume=RUN_DIR: the same metrics as never stopping, to the last bit
    (the sampler order is a function of seed and epoch; dropout's random stream, the optimizer
    state and val/acc_best travel in the checkpoint)."""
    from tests import killed_run

    at_step, overrides = case
    base = [*killed_run.BASE, *overrides]
    full = train(validate(make_cfg(*base, tiny=False)))
    resumed = _killed_then_resumed(tmp_path, make_cfg, at_step, overrides)
    for key in ("val/acc", "val/loss", "val/acc_best", "test/acc", "test/loss", "global_steps"):
        assert resumed[key] == full[key], key
