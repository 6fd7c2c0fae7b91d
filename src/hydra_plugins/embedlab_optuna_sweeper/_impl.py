"""The Optuna sweeper: ask a batch of trials, launch them as Hydra jobs, tell the results.

- **Persistent, resumable study.** The study lives in ``storage`` (default
  ``sqlite:///<sweep dir>/optuna.db``) under ``study_name``; ``n_trials`` is the number of
  finished trials the study should hold, so rerunning the same command with the same sweep
  folder runs only the trials still missing (none once it is done).
- **Interrupted trials.** A trial still RUNNING when the sweep starts was left by a sweep that
  was killed (one sweeper per study at a time). It is marked FAIL with the user attribute
  ``interrupted: true`` (its job folder stays, listed as unfinished), does not count towards
  ``n_trials``, and its parameters are enqueued, so the next trial retries them.
- **Parallel trials.** ``n_jobs`` trials are asked together and launched as one batch, so a
  parallel launcher (``launcher=joblib``) runs them at once; the next batch starts when the
  whole batch has finished. Job numbers are the trial numbers: folder ``7_...`` is trial 7.
- **Pruning.** Each job gets ``callbacks.optuna_pruning.{storage,study_name,trial}``; that
  Lightning callback (``embedlab.callbacks.optuna_pruning``) reports the metric after every
  validation epoch, asks the pruner (whose config this sweeper stores in the study's user
  attribute ``embedlab_pruner``) and stops training when told, marking the trial with the user
  attribute ``pruned_at_epoch``; the sweeper then tells the trial PRUNED.
- **Failures.** A job that raises or returns no value (``failed.json`` in its folder) is a FAIL
  trial; the sweep goes on, and with no COMPLETE trial it ends without best parameters (the
  console script prints one line and exits 1). Bad sweeper settings stop it before any trial,
  with one line naming the key (:class:`SweeperConfigError`).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from embedlab.sweep import (
    OPTUNA_INTERRUPTED_ATTR,
    OPTUNA_PRUNED_ATTR,
    OPTUNA_PRUNER_ATTR,
    OPTUNA_RETRY_ATTR,
    optuna_storage,
)

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
PRUNING_KEY = "callbacks.optuna_pruning"  # the trial's config node (embedlab.callbacks)
DIRECTIONS = ("minimize", "maximize")
# the smallest value of the pruners' integer settings (Optuna raises deep inside otherwise)
_PRUNER_MINIMUMS = {
    "n_startup_trials": 0,
    "n_warmup_steps": 0,
    "interval_steps": 1,
    "n_min_trials": 1,
    "min_resource": 1,
    "reduction_factor": 2,
}


class SweeperConfigError(CompactHydraException):
    """A bad ``hydra.sweeper.*`` setting, in one line naming the key."""


# --------------------------------------------------------------------------- search space


def distribution(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override; None for a plain value.

    ``interval(a, b)``: float (int when both ends are ints); ``tag(log, interval(a, b))``: the
    same on a log scale; ``choice(a, b, ...)`` and ``a,b,...``: categorical;
    ``range(a, b, step)``: int or float steps (``shuffle(range(...))``: categorical).
    """
    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep() or (
        override.is_range_sweep() and isinstance(value, RangeSweep) and value.shuffle
    ):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        bad = [c for c in choices if not isinstance(c, str | int | float | bool | type(None))]
        if bad:
            raise ValueError(f"choices must be str, int, float, bool or null, got {bad[0]!r}")
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            step = float(value.step) if value.step else None
            return FloatDistribution(float(value.start), float(value.stop), step=step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step or 1))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(float(value.start), float(value.end), log=log_scale)
    raise ValueError(f"{override.input_line!r}: this kind of sweep is not supported by Optuna")


def search_space(
    params: dict[str, str] | None, arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], list[str]]:
    """``({name: distribution}, [fixed override, ...])`` from ``hydra.sweeper.params`` and the
    command line (whose sweep overrides join the search space; the rest go to every trial)."""
    parser = OverridesParser.create()
    space: dict[str, BaseDistribution] = {}
    fixed: list[str] = []
    lines = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in (params or {}).items()]
    lines += [(f"override {a!r}", str(a)) for a in arguments]
    for where, line in lines:
        try:
            (override,) = parser.parse_overrides([line])
        except Exception as exc:  # Hydra's parse errors span lines: keep the first
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            value = line.split("=", 1)[-1]
            raise SweeperConfigError(f"{where}: cannot parse {value!r}: {first}") from None
        try:
            dist = distribution(override)
        except Exception as exc:  # e.g. interval(1, 0): Optuna's check of the bounds
            raise SweeperConfigError(f"{where}: {' '.join(str(exc).split())}") from None
        if dist is None:
            fixed.append(line)
        else:
            space[override.get_key_element()] = dist
    # a key both searched (params) and set to a plain value on the command line: the value wins
    fixed_keys = {line.split("=", 1)[0] for line in fixed}
    return {k: v for k, v in space.items() if k not in fixed_keys}, fixed


def quote(value: Any) -> str:
    """``value`` as a quoted string in Hydra's override grammar (paths with any character)."""
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


# --------------------------------------------------------------------------- storage


def absolute_storage(url: str) -> str:
    """``url`` with a relative sqlite path made absolute (trial processes may start elsewhere)
    and its folder created."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if not path or path.startswith(":memory:") or path.startswith("file:"):
        return url
    absolute = Path(path).expanduser().absolute()
    absolute.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(absolute)


# --------------------------------------------------------------------------- the sweeper


class OptunaSweeperImpl(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: Any,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
    ) -> None:
        self.sampler_cfg = sampler
        self.pruner_cfg = pruner
        self.direction = direction
        self.study_name = study_name
        self.storage_url = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None
        self.storage: optuna.storages.BaseStorage | None = None
        self.study_id: int | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # ------------------------------------------------------------------ checks

    def _problems(self) -> list[str]:
        problems = []
        if self.direction not in DIRECTIONS:
            problems.append(
                f"hydra.sweeper.direction: one of {list(DIRECTIONS)}, got {self.direction!r}"
            )
        if not self.study_name:
            problems.append("hydra.sweeper.study_name: must be a non-empty name")
        if self.n_trials < 1:
            problems.append(f"hydra.sweeper.n_trials: must be >= 1, got {self.n_trials}")
        if self.n_jobs == 0:
            problems.append("hydra.sweeper.n_jobs: must be >= 1 (or -1: one per core), got 0")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            problems.append(
                f"hydra.sweeper.max_failure_rate: must be in [0, 1], got {self.max_failure_rate}"
            )
        for node, prefix in (
            (self.sampler_cfg, "optuna.samplers."),
            (self.pruner_cfg, "optuna.pruners."),
        ):
            kind = "sampler" if prefix.endswith("samplers.") else "pruner"
            target = str(node.get("_target_", ""))
            if not target.startswith(prefix):
                problems.append(
                    f"hydra.sweeper.{kind}._target_: must name a class in {prefix[:-1]}, got {target!r}"
                )
        for key, low in _PRUNER_MINIMUMS.items():
            value = self.pruner_cfg.get(key)
            if isinstance(value, int) and value < low:
                problems.append(f"hydra.sweeper.pruner.{key}: must be >= {low}, got {value}")
        return problems

    def _build(self, node: DictConfig, key: str, **extra: Any) -> Any:
        try:
            return instantiate(node, **extra)
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise SweeperConfigError(
                f"hydra.sweeper.{key}: {type(cause).__name__}: {cause}"
            ) from None

    def _open_study(self) -> optuna.Study:
        url = absolute_storage(self.storage_url) if self.storage_url else None
        self.storage_url = url
        try:
            self.storage = optuna_storage(url) if url else optuna.storages.InMemoryStorage()
            study = optuna.create_study(
                storage=self.storage,
                study_name=self.study_name,
                direction=self.direction,
                load_if_exists=True,
            )
        except Exception as exc:
            message = " ".join(str(exc).split())[:300]
            raise SweeperConfigError(
                f"hydra.sweeper.storage: cannot open study {self.study_name!r} in {url}: "
                f"{type(exc).__name__}: {message}"
            ) from None
        self.study_id = self.storage.get_study_id_from_name(study.study_name)
        if study.direction.name.lower() != self.direction:
            raise SweeperConfigError(
                f"hydra.sweeper.direction: study {self.study_name!r} in {url} was created to "
                f"{study.direction.name.lower()}, not {self.direction} (optimized_metric changed? "
                "use another hydra.sweeper.study_name or sweep folder)"
            )
        # a resumed study gets a different seed, so it does not repeat the first suggestions
        seed = self.sampler_cfg.get("seed")
        shift = {"seed": seed + len(study.trials)} if seed is not None and study.trials else {}
        study.sampler = self._build(self.sampler_cfg, "sampler", **shift)
        study.pruner = self._build(self.pruner_cfg, "pruner")
        if url is not None:
            study.set_user_attr(
                OPTUNA_PRUNER_ATTR, OmegaConf.to_container(self.pruner_cfg, resolve=True)
            )
        return study

    # ------------------------------------------------------------------ resume

    def _trial_id(self, number: int) -> int:
        assert self.storage is not None and self.study_id is not None
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _fail_interrupted(self, study: optuna.Study) -> list[int]:
        """Mark trials a killed sweep left RUNNING as FAIL (``interrupted``) and enqueue their
        parameters once more; return their numbers."""
        assert self.storage is not None
        numbers = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.storage.set_trial_user_attr(
                self._trial_id(trial.number), OPTUNA_INTERRUPTED_ATTR, True
            )
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(dict(trial.params), user_attrs={OPTUNA_RETRY_ATTR: trial.number})
            numbers.append(trial.number)
        return numbers

    @staticmethod
    def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """The trials that count towards ``n_trials``: COMPLETE, PRUNED, FAIL (not interrupted)."""
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return [
            t
            for t in study.get_trials(deepcopy=False, states=states)
            if not t.user_attrs.get(OPTUNA_INTERRUPTED_ATTR)
        ]

    # ------------------------------------------------------------------ the loop

    def _job_overrides(
        self, trial: optuna.Trial, fixed: list[str], pruning: bool
    ) -> tuple[str, ...]:
        sampled = [f"{name}={value}" for name, value in trial.params.items()]
        extra = []
        if pruning:  # ++: set or add, whatever the callbacks config lists
            extra = [
                f"++{PRUNING_KEY}.storage={quote(self.storage_url)}",
                f"++{PRUNING_KEY}.study_name={quote(self.study_name)}",
                f"++{PRUNING_KEY}.trial={trial.number}",
            ]
        return (*fixed, *sampled, *extra)

    def _launch(
        self, trials: list[optuna.Trial], overrides: list[tuple[str, ...]]
    ) -> list[JobReturn]:
        """Launch the batch; job numbers are trial numbers (consecutive runs launched together)."""
        assert self.launcher is not None
        returns: list[JobReturn] = []
        start = 0
        for i in range(1, len(trials) + 1):
            if i == len(trials) or trials[i].number != trials[i - 1].number + 1:
                returns += list(
                    self.launcher.launch(overrides[start:i], initial_job_idx=trials[start].number)
                )
                start = i
        return returns

    def _outcome(self, study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> str:
        """Tell the study how the trial's job ended; return the state's name."""
        if ret.status != JobStatus.COMPLETED:
            error = getattr(ret, "_return_value", None)
            log.error("trial %d failed: %s: %s", trial.number, type(error).__name__, error)
            study.tell(trial, state=TrialState.FAIL)
            return "FAIL"
        assert self.storage is not None
        current = self.storage.get_trial(self._trial_id(trial.number))  # the job wrote to it
        if OPTUNA_PRUNED_ATTR in current.user_attrs:
            study.tell(trial, state=TrialState.PRUNED)
            log.info(
                "trial %d pruned at epoch %s", trial.number, current.user_attrs[OPTUNA_PRUNED_ATTR]
            )
            return "PRUNED"
        value = ret.return_value
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isnan(number):
            log.error(
                "trial %d failed: its job returned %r (see failed.json or metrics.json in its folder)",
                trial.number,
                value,
            )
            study.tell(trial, state=TrialState.FAIL)
            return "FAIL"
        study.tell(trial, values=number)
        return "COMPLETE"

    def sweep(self, arguments: list[str]) -> None:
        """Run the study's remaining trials; a bad setting is one line on stderr and exit 2
        (``HYDRA_FULL_ERROR=1``: the exception)."""
        assert self.config is not None
        try:
            self._sweep(arguments)
        except SweeperConfigError as exc:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            app = OmegaConf.select(self.config, "hydra.help.app_name", default=None) or "hydra"
            sys.stderr.write(f"{app}: {exc}\n")
            raise SystemExit(2) from None

    def _sweep(self, arguments: list[str]) -> None:
        assert self.config is not None
        problems = self._problems()
        if problems:
            raise SweeperConfigError("; ".join(problems))
        space, fixed = search_space(self.params, arguments)
        study = self._open_study()
        pruning = self.storage_url is not None and not self.pruner_cfg._target_.endswith(
            ".NopPruner"
        )
        if self.storage_url is None:
            log.warning(
                "hydra.sweeper.storage is null: the study is kept in memory (no resume, no pruning)"
            )

        # One sweeper per study: RUNNING trials are from a sweep that was killed. They are
        # marked FAIL (not left RUNNING, which would block nothing but confuse every count) and
        # their parameters re-queued, so the interrupted configuration is still tried.
        interrupted = self._fail_interrupted(study)
        done = len(self.finished(study))
        remaining = self.n_trials - done
        log.info(
            "Study %r in %s: %d of %d trials finished%s; %d to run, %d at a time",
            study.study_name,
            self.storage_url or "memory",
            done,
            self.n_trials,
            f" (interrupted trials {interrupted} failed and re-queued)" if interrupted else "",
            max(remaining, 0),
            self.n_jobs,
        )
        batch_size = self.n_jobs if self.n_jobs > 0 else (os.cpu_count() or 1)
        ran, failed = 0, 0
        while remaining > 0:
            trials = [
                study.ask(fixed_distributions=space) for _ in range(min(batch_size, remaining))
            ]
            overrides = [self._job_overrides(t, fixed, pruning) for t in trials]
            try:
                self.validate_batch_is_legal(overrides)
            except Exception:
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                raise
            returns = self._launch(trials, overrides)
            states = [self._outcome(study, t, r) for t, r in zip(trials, returns, strict=True)]
            ran += len(trials)
            failed += states.count("FAIL")
            remaining -= len(trials)
            if remaining > 0 and failed / ran > self.max_failure_rate:
                log.error(
                    "%d of the %d trials run failed (max_failure_rate=%s): no more trials launched",
                    failed,
                    ran,
                    self.max_failure_rate,
                )
                break
        self._save_results(study)

    def _save_results(self, study: optuna.Study) -> None:
        assert self.config is not None
        trials = study.get_trials(deepcopy=False)
        counts = {
            s.name.lower(): sum(t.state == s for t in trials)
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        if not counts["complete"]:
            log.error(
                "Study %r: no trial completed (%d pruned, %d failed): no best parameters",
                study.study_name,
                counts["pruned"],
                counts["fail"],
            )
            return
        best = study.best_trial
        results = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": self.storage_url,
            "direction": self.direction,
            "best_trial": best.number,
            "best_params": best.params,
            "best_value": best.value,
            "trials": counts,
        }
        path = Path(str(self.config.hydra.sweep.dir)) / RESULTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), path)
        log.info(
            "Best trial: %d (%s)", best.number, ", ".join(f"{k}: {n}" for k, n in counts.items())
        )
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", best.value)
