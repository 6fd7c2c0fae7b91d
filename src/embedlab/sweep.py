"""Multirun support: OmegaConf resolvers used by ``configs/hydra`` and ``configs/sweep``, the
failed-job record, and a Hydra callback that reports the sweep's outcome.

Resolvers (registered on import; ``embedlab.train`` imports this module, so they exist in the
launching process and in every joblib/submitit worker that unpickles the task function):

- ``${embedlab.job_dir:${hydra.job.num},${hydra.overrides.task},<exclude keys>}`` ->
  ``3_embedding=normal,seed=1``: a job folder (and TensorBoard run) name that says what the
  job varies, safe for any filesystem.
- ``${embedlab.direction:${optimized_metric}}`` -> ``maximize`` | ``minimize``.
- ``${embedlab.threads_per_job:${hydra.launcher.n_jobs}}`` -> CPU threads for each parallel job.

A job that raises inside a multirun does not stop the sweep: :func:`record_failure` writes
``failed.json`` into its folder, the job returns None (Optuna marks the trial failed), and
:class:`SweepSummary` lists the failed jobs when the sweep ends (the process then exits 1).
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

FAILED_FILE = "failed.json"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "sweep_summary.json"
MAX_NAME = 200  # bytes; most filesystems allow 255 per path component

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+\-@]")


def safe_name(text: str, max_len: int = MAX_NAME) -> str:
    """``text`` with every character a filesystem or TensorBoard may choke on replaced by ``_``.

    Keeps letters, digits and ``. _ = , + - @``; slashes, spaces, quotes, brackets and colons
    become ``_``. Long names are cut (the job number in front keeps them unique).
    """
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned[:max_len]


SWEPT_KEYS_ENV = "EMBEDLAB_SWEPT_KEYS"


def override_items(overrides: Any) -> list[tuple[str, str]]:
    """``[(key, value), ...]`` of Hydra override strings, as ``override_dirname`` spells them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides])
    return [(o.get_key_element(), o.get_value_element_as_str()) for o in parsed]


def swept_keys(overrides: Any, sweeper_params: Any = None) -> list[str]:
    """Keys a multirun varies: sweep overrides (``a=1,2``, ``interval(...)``) and sweeper params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides or []])
    keys = [o.get_key_element() for o in parsed if o.is_sweep_override()]
    keys += [str(k) for k in (sweeper_params or {})]
    return sorted(set(keys))


def job_overrides(overrides: Any, exclude_keys: Any = ()) -> list[tuple[str, str]]:
    """``[(key, value), ...]`` of the overrides that say what this job varies.

    In a sweep whose swept keys are known (``EMBEDLAB_SWEPT_KEYS``, set by
    :class:`SweepSummary` when the multirun starts) only those keys, so constant overrides such
    as ``data=trec`` are left out; otherwise every override not in ``exclude_keys``.
    """
    excluded = {str(k) for k in exclude_keys or ()}
    swept = os.environ.get(SWEPT_KEYS_ENV)
    keep = set(swept.split(",")) if swept else None
    return [
        (k, v)
        for k, v in override_items(overrides or [])
        if k not in excluded and (keep is None or k in keep)
    ]


def job_dir_name(num: Any, overrides: Any, exclude_keys: Any = ()) -> str:
    """``<num>_<key=value,...>``: the job number, then what this job varies (:func:`job_overrides`,
    sorted, sanitized); outside a sweep, Hydra's ``override_dirname``."""
    parts = sorted(f"{k}={v}" for k, v in job_overrides(overrides, exclude_keys))
    name = safe_name(",".join(parts))
    return f"{num}_{name}" if name else str(num)


_MINIMIZE = ("loss", "perplexity", "ppl", "error", "err", "mse", "mae", "bpc")


def metric_direction(metric: str) -> str:
    """``minimize`` for losses, perplexities and errors, else ``maximize``."""
    leaf = str(metric).rsplit("/", 1)[-1].lower()
    return "minimize" if any(word in leaf for word in _MINIMIZE) else "maximize"


def threads_per_job(n_jobs: Any) -> int:
    """Split the machine's cores between ``n_jobs`` parallel jobs (joblib's -1: all cores)."""
    cores = os.cpu_count() or 1
    try:
        n = int(n_jobs)
    except (TypeError, ValueError):
        return 1
    if n <= 0:
        n = cores
    return max(1, cores // n)


def register_resolvers() -> None:
    """Register the ``embedlab.*`` resolvers (idempotent)."""
    for name, fn in (
        ("embedlab.job_dir", job_dir_name),
        ("embedlab.direction", metric_direction),
        ("embedlab.threads_per_job", threads_per_job),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


# --------------------------------------------------------------------------- Optuna

# Shared by the sweeper (hydra_plugins/embedlab_optuna_sweeper) and the pruning callback that
# runs in each trial (embedlab/callbacks/optuna_pruning.py); the study's storage is how they talk.
OPTUNA_PRUNER_ATTR = "embedlab_pruner"  # study user attr: the pruner's config (_target_, kwargs)
OPTUNA_PRUNED_ATTR = "pruned_at_epoch"  # trial user attr: the callback stopped it at this epoch
OPTUNA_INTERRUPTED_ATTR = "interrupted"  # trial user attr: FAIL because a killed sweep left it
OPTUNA_RETRY_ATTR = "retry_of"  # trial user attr: the interrupted trial whose params it retries


def optuna_storage(url: str) -> Any:
    """Optuna's RDB storage for ``url``; on sqlite a writer waits up to 60 s for the file's lock
    (parallel trials report into the same file)."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


# --------------------------------------------------------------------------- failures


def record_failure(
    output_dir: str | Path, exc: BaseException, overrides: list[str] | None = None
) -> Path:
    """Write ``failed.json`` (error type, message, traceback, overrides) into ``output_dir``."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "failed",
        "error": type(exc).__name__,
        "message": str(exc),
        "overrides": list(overrides or []),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    path = folder / FAILED_FILE
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def job_folders(sweep_dir: str | Path) -> list[Path]:
    """The job folders of a sweep: sub-folders holding ``.hydra/`` (Hydra wrote them)."""
    root = Path(sweep_dir)
    found = {p.parent.parent for p in root.glob("*/.hydra/overrides.yaml")}
    found |= {p.parent for p in root.glob(f"*/{METRICS_FILE}")}
    found |= {p.parent for p in root.glob(f"*/{FAILED_FILE}")}
    return sorted(found, key=_job_sort_key)


def _job_sort_key(path: Path) -> tuple[int, str]:
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (1 << 30, path.name)


def summarize(sweep_dir: str | Path) -> dict[str, Any]:
    """Count finished, failed and unfinished jobs of a sweep folder; write ``sweep_summary.json``."""
    succeeded: list[str] = []
    failed: list[dict[str, str]] = []
    unfinished: list[str] = []
    pruned: list[str] = []
    for folder in job_folders(sweep_dir):
        if (folder / FAILED_FILE).is_file():
            rec = json.loads((folder / FAILED_FILE).read_text())
            failed.append(
                {"job": folder.name, "error": f"{rec.get('error')}: {rec.get('message')}"}
            )
        elif (folder / METRICS_FILE).is_file():
            succeeded.append(folder.name)
            if "pruned_at_epoch" in json.loads((folder / METRICS_FILE).read_text()):
                pruned.append(folder.name)
        else:  # still running, or interrupted (a killed sweep; Optuna retries its parameters)
            unfinished.append(folder.name)
    summary = {
        "sweep_dir": str(Path(sweep_dir).absolute()),
        "jobs": len(succeeded) + len(failed) + len(unfinished),
        "succeeded": succeeded,  # pruned Optuna trials included: they ended early, on purpose
        "pruned": pruned,
        "failed": failed,
        "unfinished": unfinished,
    }
    if Path(sweep_dir).is_dir():
        (Path(sweep_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def failure_line(summary: dict[str, Any]) -> str:
    """The console script's last line when jobs of a sweep failed (it then exits 1)."""
    bad, jobs, where = summary["failed"], summary["jobs"], summary["sweep_dir"]
    if len(bad) < jobs or summary["unfinished"]:
        return f"embedlab-train: {len(bad)} of {jobs} jobs failed (see {where})"
    first = " ".join(bad[0]["error"].split())
    first = first if len(first) <= 160 else first[:157] + "..."
    return (
        f"embedlab-train: all {jobs} jobs failed, nothing to compare; first: {first} "
        f"(see {where}/*/{FAILED_FILE})"
    )


# --------------------------------------------------------------------------- Hydra callback

# Set by SweepSummary.on_multirun_end in the launching process; embedlab.train.main() exits 1
# when a job failed.
LAST_SUMMARY: dict[str, Any] | None = None


try:  # hydra is a core dependency; the import is guarded only to keep this module light
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class SweepSummary(_HydraCallback):  # type: ignore[misc]
    """Hydra callback (configs/hydra/default.yaml).

    At the start of a multirun it records which keys the sweep varies (for the job names, see
    :func:`job_dir_name`); at the end it lists the jobs that failed and where the results are,
    and remembers the outcome for the process exit status.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = config.hydra.sweeper.get("params") or {}
        keys = swept_keys(list(config.hydra.overrides.task), params)
        # inherited by joblib workers and (sbatch --export=ALL) SLURM jobs
        os.environ[SWEPT_KEYS_ENV] = ",".join(keys)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global LAST_SUMMARY
        sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = summarize(sweep_dir)
        LAST_SUMMARY = summary
        n, bad = summary["jobs"], summary["failed"]
        log.info(
            "sweep finished: %d jobs, %d succeeded (%d pruned), %d failed in %s",
            n,
            len(summary["succeeded"]),
            len(summary["pruned"]),
            len(bad),
            sweep_dir,
        )
        for rec in bad:
            log.error("failed job %s: %s", rec["job"], " ".join(rec["error"].split()))
        if bad:
            log.error("see failed.json in each failed job folder for the traceback")
        log.info("report: embedlab-report %s", sweep_dir)
