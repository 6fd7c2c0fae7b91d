"""``embedlab-train``: compose the config with Hydra, then :func:`train`.

``train(cfg) -> dict`` is the library function tests and sweepers call; the console script
is a thin wrapper that returns ``cfg.optimized_metric`` for Hydra sweepers (e.g. Optuna).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from embedlab import sweep
from embedlab.config import to_flat_dict, validate
from embedlab.paths import config_dir
from embedlab.utils import quiet_lightning_noise, release_free_memory, reuse_freed_memory

log = logging.getLogger(__name__)


def _trainer_kwargs(cfg: Any) -> dict[str, Any]:
    kwargs = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    backend = kwargs.pop("process_group_backend", None)
    if backend is not None and str(kwargs.get("strategy", "")).startswith("ddp"):
        from lightning.pytorch.strategies import DDPStrategy

        start = {"ddp_spawn": "spawn", "ddp_fork": "fork"}.get(kwargs["strategy"], "popen")
        kwargs["strategy"] = DDPStrategy(process_group_backend=backend, start_method=start)
    return kwargs


def _profiler(name: str, output_dir: Path) -> Any:
    """Lightning's ``trainer.profiler`` writing ``<stage>-profile.txt`` into the run folder."""
    from lightning.pytorch import profilers

    from embedlab.config import PROFILERS

    return getattr(profilers, PROFILERS[name])(dirpath=str(output_dir), filename="profile")


def _loggers(cfg: DictConfig, output_dir: Path, purge_step: int | None = None) -> list:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list = []
    if cfg.logger.tensorboard:
        # events straight in the run folder: `tensorboard --logdir <multirun>` names runs by job;
        # a resumed run hides what the interrupted one logged after its checkpoint (purge_step)
        loggers.append(
            TensorBoardLogger(
                save_dir=str(output_dir),
                name="",
                version="",
                default_hp_metric=False,
                purge_step=purge_step,
            )
        )
    if cfg.logger.csv:
        loggers.append(CSVLogger(save_dir=str(output_dir), name="csv", version=""))
    return loggers


def _quiet_duplicate_handlers() -> None:
    """Lightning adds its own console handler; under Hydra the root logger already prints."""
    root = logging.getLogger()
    if not root.handlers:
        return
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        lg.handlers = [h for h in lg.handlers if type(h) is not logging.StreamHandler]
        lg.propagate = True  # the root's handlers (console and the run's log file) print it once


def _limit_blas_threads() -> None:
    """One thread for numpy's BLAS: training parallelism is torch's.

    OpenBLAS keeps its pool spinning after each call (TensorBoard's histograms call numpy's
    ``dot``), which starved torch's intra-op threads: 13 histograms in a 1,250-step bag run
    cost 1.3 s of its 3.5 s of training on 2 cores.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _scalar(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train (and test) one run described by ``cfg``; return its metrics.

    Validates the whole config first (nothing is read before that), then fits, tests the
    best checkpoint, writes ``metrics.json``, TensorBoard hparams and the config text into
    ``cfg.paths.output_dir``, and prints a short summary. ``overrides``: Hydra's task overrides
    (what the run varies), the first columns of the HPARAMS table.
    """
    from embedlab import resume

    cfg, finished = resume.resolve(cfg)
    if finished is not None:  # resume of a run that already ended: its metrics, nothing run
        return finished
    validate(cfg)  # the one validation of a run (the console script relies on it too)
    started = time.perf_counter()

    import lightning as L
    import torch
    from lightning.pytorch.utilities import rank_zero_only

    if cfg.print_config and rank_zero_only.rank == 0:
        from embedlab.utils import print_config_tree

        print_config_tree(cfg)  # with the model's defaults filled in

    _quiet_duplicate_handlers()
    quiet_lightning_noise()
    from embedlab.callbacks import CALLBACKS
    from embedlab.tasks import TASKS
    from embedlab.tensorboard import (
        log_config_text,
        log_embedding_report,
        log_hparams,
        writer_of,
    )
    from embedlab.training.checkpoint_io import LocalCheckpointIO

    output_dir = Path(cfg.paths.output_dir).absolute()
    if (output_dir / "metrics.json").is_file() and not cfg.ckpt_path:
        from embedlab.errors import ConfigError

        raise ConfigError(
            [
                f"paths.output_dir: {output_dir} already holds a finished run (metrics.json); "
                "give this run another hydra.run.dir, or resume=auto to keep that one"
            ]
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    _limit_blas_threads()
    if cfg.trainer.accelerator == "cpu" and os.environ.get("EMBEDLAB_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["EMBEDLAB_NUM_THREADS"]))

    # a checkpoint to resume (fit) or to test (train=false: its tokenizer, n-grams, labels and
    # weights), fetched and read safely before Lightning sees it
    checkpoint, purge_step = None, None
    if cfg.ckpt_path:
        from embedlab.inference import fetch_checkpoint, read_checkpoint

        local = fetch_checkpoint(cfg.ckpt_path, cfg.allow_remote_checkpoints, cfg.paths.cache_dir)
        with open_dict(cfg):
            cfg.ckpt_path = str(local)  # Lightning gets the vetted local file, never the URL

        read = read_checkpoint(cfg.ckpt_path)  # a clear error for a missing or broken file
        checkpoint = None if cfg.train else read
        purge_step = int(read.get("global_step", 0)) if cfg.train else None
    datamodule, module = TASKS.get(cfg.task.name).setup(cfg, checkpoint)
    if rank_zero_only.rank == 0:  # under DDP every process runs this; one writes the run folder
        datamodule.save(output_dir)
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    loggers = _loggers(cfg, output_dir, purge_step)
    callbacks = CALLBACKS.build(cfg, output_dir)
    trainer_kwargs = _trainer_kwargs(cfg.trainer)
    if "profiler" in trainer_kwargs:  # its report in the run folder, not only on the console
        trainer_kwargs["profiler"] = _profiler(trainer_kwargs["profiler"], output_dir)
    if module.batches_per_step > 1:  # the task clips each of a step's updates itself
        trainer_kwargs.pop("gradient_clip_val", None)
    trainer = L.Trainer(
        **trainer_kwargs,
        logger=loggers or False,
        callbacks=list(callbacks.values()),
        default_root_dir=str(output_dir),
        enable_checkpointing="checkpoint" in callbacks,
        plugins=[LocalCheckpointIO()],
    )

    release_free_memory()  # what reading and tokenizing the data freed
    reuse_freed_memory()  # then keep what training frees for its next allocations
    if cfg.train:
        # checkpoints are unpickled with weights_only (read_checkpoint vetted ckpt_path above)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    fit_metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
    # read before testing: trainer.test(ckpt_path="best") restores the callbacks' state from the
    # best checkpoint, saved mid-epoch, which would undo the throughput counts
    throughput = callbacks.get("throughput")
    speed = (
        (throughput.train_seconds, throughput.examples_per_second, throughput.examples)
        if throughput
        else (None, None, None)
    )
    tokens_per_example = getattr(datamodule, "tokens_per_example", None)

    ckpt = callbacks.get("checkpoint")
    best_path = ckpt.best_model_path if ckpt is not None and ckpt.best_model_path else None
    test_metrics: dict[str, Any] = {}
    if cfg.test:
        # the best checkpoint of this fit; without a fit the module holds ckpt_path's weights
        test_ckpt = best_path if cfg.train else None
        if cfg.trainer.fast_dev_run or (
            test_ckpt and saved_at_step(test_ckpt) == trainer.global_step
        ):
            test_ckpt = None  # no step since the best was saved: the module holds its weights
        # Testing needs no optimizer: dropping them frees their state and lets the weights that
        # loading the best checkpoint replaces go (EmbeddingTask.load_state_dict).
        trainer.strategy.optimizers, trainer.strategy.lr_scheduler_configs = [], []
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False, weights_only=True
        )
        test_metrics = {k: _scalar(v) for k, v in (results[0] if results else {}).items()}

    embedding_report = getattr(module, "embedding_report", None) or {}
    metrics: dict[str, Any] = {
        **{f"embedding/{k}": v for k, v in embedding_report.items() if k.startswith("coverage")},
        **{k: v for k, v in fit_metrics.items() if k.startswith(("val/", "train/", "intrinsic/"))},
        **test_metrics,
        "epochs": trainer.current_epoch,
        "world_size": trainer.world_size,  # processes (DDP); train_examples counts rank 0's
        "global_steps": trainer.global_step,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "train_seconds": round(speed[0], 4) if throughput else None,
        "train_examples": speed[2],
        "examples_per_second": round(speed[1], 1) if throughput else None,
        # word tokens (before n-grams; LM: predicted tokens) per second of training
        "train_tokens_per_second": (
            round(speed[1] * tokens_per_example, 1) if throughput and tokens_per_example else None
        ),
        "startup_seconds": throughput.startup_seconds if throughput else None,
        "checkpoint_bytes": Path(best_path).stat().st_size if best_path else None,
        "num_parameters": sum(p.numel() for p in module.parameters()),
        "best_checkpoint": best_path,
        "output_dir": str(output_dir),
    }
    if ckpt is not None and ckpt.best_model_score is not None:
        metrics[f"{cfg.task.monitor}_best"] = float(ckpt.best_model_score)
    pruning = callbacks.get("optuna_pruning")
    if pruning is not None and pruning.pruned_at_epoch is not None:
        metrics["pruned_at_epoch"] = pruning.pruned_at_epoch  # an Optuna trial its pruner stopped
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(
            json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        )
        writer = writer_of(loggers)
        if writer is not None:
            if cfg.logger.log_hparams:
                final = {
                    k: v
                    for k, v in metrics.items()
                    if isinstance(v, float) and k.startswith(("val/", "test/"))
                }
                log_hparams(writer, to_flat_dict(cfg), final, overrides or ())
            if cfg.logger.log_config_text:
                log_config_text(writer, OmegaConf.to_yaml(cfg, resolve=True))
            if embedding_report:
                log_embedding_report(writer, embedding_report)
            writer.close()  # written to disk now: the console script skips interpreter teardown
        _print_summary(metrics, output_dir, cfg)
    return metrics


def saved_at_step(path: str | os.PathLike) -> int | None:
    """The ``global_step`` recorded in the local checkpoint ``path`` (None when unreadable).

    The tensors are memory-mapped and never read, so this costs milliseconds. Testing the best
    checkpoint of a fit whose best epoch was its last would otherwise load a second copy of
    every weight beside the live module: +332 MB of peak RSS for the 830k x 100 table of the
    1M-text benchmark, the run's peak.
    """
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # remote, missing, or not a zip checkpoint: the caller loads it as usual
        return None
    step = saved.get("global_step") if isinstance(saved, dict) else None
    return step if isinstance(step, int) else None


def _print_summary(metrics: dict[str, Any], output_dir: Path, cfg: DictConfig) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"embedlab run: {cfg.task_name}", show_header=False)
    for key in sorted(metrics):
        value = metrics[key]
        if key.startswith(("val/", "test/")) or key in (
            "epochs",
            "wall_seconds",
            "examples_per_second",
        ):
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)
    if metrics.get("best_checkpoint"):
        console.print(f"best checkpoint: {metrics['best_checkpoint']}")
    console.print(f"run folder:      {output_dir}")
    console.print(f"metrics:         {output_dir / 'metrics.json'}")
    if cfg.logger.tensorboard:
        console.print(f"TensorBoard:     tensorboard --logdir {output_dir}")


_JOBS_STARTED = 0  # jobs whose function Hydra called: none means composition itself failed


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """One job; returns ``cfg.optimized_metric`` for sweepers.

    In a multirun a failing job records ``failed.json`` and returns None, so the sweep goes on
    (Optuna marks the trial failed; the sweep's end lists it, see :class:`embedlab.sweep.SweepSummary`).
    """
    from hydra.core.hydra_config import HydraConfig

    from embedlab.errors import EmbedlabError

    global _JOBS_STARTED
    _JOBS_STARTED += 1
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode.name == "MULTIRUN"
    try:
        metrics = train(cfg, list(hydra_cfg.overrides.task))
    except EmbedlabError as exc:  # bad config, data, vectors or checkpoint: one line, exit 2
        if multirun:  # this job's input is bad; the other jobs go on
            log.error("job %s: %s", hydra_cfg.job.num, exc)
            sweep.record_failure(hydra_cfg.runtime.output_dir, exc, list(hydra_cfg.overrides.task))
            return None
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        sys.stderr.write(f"embedlab-train: {exc}\n")
        raise SystemExit(2) from None
    except Exception as exc:
        if not multirun:
            raise
        log.exception("job %s failed", hydra_cfg.job.num)
        sweep.record_failure(hydra_cfg.runtime.output_dir, exc, list(hydra_cfg.overrides.task))
        return None
    value = metrics.get(cfg.optimized_metric)
    if value is None or value != value:  # missing or NaN: Optuna must not rank it
        if multirun:
            log.warning(
                "optimized_metric %r is %s (metrics: %s)",
                cfg.optimized_metric,
                value,
                sorted(metrics),
            )
        return None
    return value


def main() -> None:
    """Console entry point (``embedlab-train``); exits 1 when a job of a multirun failed."""
    from embedlab.resume import run_dir_override

    sys.argv = [sys.argv[0], *run_dir_override(sys.argv[1:])]
    try:
        _hydra_main()
    except SystemExit as exc:
        # Hydra reports a bad override or config file (already printed) with exit code 1;
        # before any job ran that is the user's input at fault: exit 2 like every such error
        if exc.code == 1 and _JOBS_STARTED == 0:
            raise SystemExit(2) from None
        raise
    summary = sweep.LAST_SUMMARY
    if summary and summary["failed"]:
        raise SystemExit(sweep.failure_line(summary))


def _stop_joblib_workers() -> None:
    """End the worker processes of ``launcher=joblib`` (loky's reusable executor).

    Loky stops them at interpreter exit, which ``os._exit`` skips: left alone they idled for
    loky's 300 s timeout after the sweep, holding memory and the console's pipes (a caller
    reading the output waited those 5 minutes for end of file).
    """
    reusable = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(reusable, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


def cli() -> None:
    """The ``embedlab-train`` console script: :func:`main`, then exit without interpreter teardown.

    Tearing down the ~3,600 modules that torch and Lightning import took 1.0 s of every run's
    wall time on 2 cores; everything a run writes is closed by then (metrics, checkpoints,
    TensorBoard writers), and logs and the standard streams are flushed here. Errors leave
    through the normal path.
    """
    main()
    _stop_joblib_workers()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    cli()
