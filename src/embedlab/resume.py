"""Resuming runs: ``resume=RUN_DIR`` and ``resume=auto``.

- ``resume=RUN_DIR``: the run's own resolved config (``RUN_DIR/config.yaml``), in its own
  folder (the console script points Hydra's run dir at it), from its newest ``last.ckpt``.
- ``resume=auto``: the composed config in the folder Hydra gives this run (a fixed
  ``hydra.run.dir``, or a multirun job folder under a fixed ``hydra.sweep.dir``): a run that
  has ``metrics.json`` is finished and skipped; one with a ``last.ckpt`` resumes from it; any
  other starts fresh. Re-launching a sweep with ``resume=auto`` thus finishes what is left.

TensorBoard steps continue where the checkpoint stopped: events the killed run wrote after
it are hidden (``SummaryWriter(purge_step=...)``), so no step is shown twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from embedlab.errors import ConfigError

log = logging.getLogger(__name__)


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``last*.ckpt`` under ``run_dir/checkpoints`` (None when there is none)."""
    found = sorted((run_dir / "checkpoints").glob("last*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    return found[-1] if found else None


def finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a finished run (its ``metrics.json``), else None."""
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def resolve(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None]:
    """``(config to run, None)``, or ``(cfg, metrics)`` when the run is already finished."""
    target = cfg.get("resume")
    if not target:
        return cfg, None
    if target == "auto":
        run_dir = Path(cfg.paths.output_dir)
        run_cfg = cfg
    else:
        run_dir = Path(str(target)).expanduser()
        config = run_dir / "config.yaml"
        if not config.is_file():
            raise ConfigError([f"resume: {run_dir} is not a run folder (no config.yaml in it)"])
        run_cfg = OmegaConf.load(config)
        with open_dict(run_cfg):
            run_cfg.paths.output_dir = str(run_dir)
            run_cfg.resume = None
            # console settings of this invocation win over the stored run's
            for key in ("print_config",):
                run_cfg[key] = cfg.get(key, run_cfg.get(key))
    done = finished_metrics(run_dir)
    if done is not None:
        log.info("resume: %s already finished (metrics.json); nothing to do", run_dir)
        return run_cfg, done
    last = last_checkpoint(run_dir)
    with open_dict(run_cfg):
        run_cfg.resume = None
        if last is not None:
            run_cfg.ckpt_path = str(last)
            log.info("resume: continuing %s from %s", run_dir, last)
        elif target != "auto":
            raise ConfigError(
                [
                    f"resume: {run_dir} has no checkpoints/last.ckpt (was callbacks.checkpoint.save_last off?)"
                ]
            )
    return run_cfg, None


def run_dir_override(argv: list[str]) -> list[str]:
    """``resume=RUN_DIR`` on the command line: also make it Hydra's run dir (same folder)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if (
            key == "resume"
            and value not in ("", "auto", "null")
            and not any(a.startswith("hydra.run.dir=") for a in argv)
        ):
            return [*argv, f"hydra.run.dir={value}"]
    return argv
