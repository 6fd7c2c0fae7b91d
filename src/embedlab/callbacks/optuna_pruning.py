"""Pruning an Optuna trial from inside its training run (``callbacks.optuna_pruning``).

The Optuna sweeper (``sweep=optuna``) runs each trial as a Hydra job, possibly in another
process (``launcher=joblib``) or machine (``launcher=slurm``), and hands it the study's storage
URL, study name and trial number. After every validation epoch this callback opens that trial
in the storage (``optuna.trial.Trial(study, trial_id)`` on a loaded study: Optuna's way to
report from outside ``study.optimize``), reports the monitored metric at step = epoch and asks
the pruner, the one the sweeper stored in the study (``embedlab.sweep.OPTUNA_PRUNER_ATTR``).
When it says prune, training stops after this epoch and the trial gets the user attribute
``pruned_at_epoch``, from which the sweeper tells the trial PRUNED. Under DDP rank 0 reports
and decides, every rank stops.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from embedlab.errors import ConfigError

log = logging.getLogger(__name__)


def _pruner(config: Any) -> Any:
    """The pruner from the config the sweeper stored (only ``optuna.pruners.*`` classes)."""
    import optuna

    if not isinstance(config, dict) or not str(config.get("_target_", "")).startswith(
        "optuna.pruners."
    ):
        return optuna.pruners.NopPruner()
    from hydra.utils import instantiate

    return instantiate(config)


class OptunaPruning(L.Callback):
    """Report ``monitor`` to trial ``trial`` of ``study_name`` in ``storage`` each validation
    epoch; stop training when the study's pruner says so (``pruned_at_epoch`` tells when)."""

    def __init__(self, storage: str, study_name: str, trial: int, monitor: str) -> None:
        self.storage_url = storage
        self.study_name = study_name
        self.trial_number = trial
        self.monitor = monitor
        self.pruned_at_epoch: int | None = None
        self._trial: Any = None  # optuna.Trial on rank 0 once fitting starts
        self._reported: set[int] = set()

    def _open(self) -> Any:
        import optuna

        from embedlab.sweep import OPTUNA_PRUNER_ATTR, optuna_storage

        try:
            storage = optuna_storage(self.storage_url)
            study_id = storage.get_study_id_from_name(self.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial_number)
            pruner = _pruner(storage.get_study_user_attrs(study_id).get(OPTUNA_PRUNER_ATTR))
            study = optuna.load_study(study_name=self.study_name, storage=storage, pruner=pruner)
            state = storage.get_trial(trial_id).state
        except Exception as exc:
            raise ConfigError(
                [
                    f"callbacks.optuna_pruning: trial {self.trial_number} of study "
                    f"{self.study_name!r} in {self.storage_url}: {type(exc).__name__}: {exc}"
                ]
            ) from exc
        if state != optuna.trial.TrialState.RUNNING:  # e.g. a finished trial's run resumed
            log.warning(
                "callbacks.optuna_pruning: trial %d of study %r is %s, not running: not reporting",
                self.trial_number,
                self.study_name,
                state.name,
            )
            return None
        return optuna.trial.Trial(study, trial_id)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._trial = self._open()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero and self._trial is not None and epoch not in self._reported:
            # one point per epoch: the first validation of it (val_check_interval < 1)
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                log.warning(
                    "callbacks.optuna_pruning: %r was not logged at validation (logged: %s); "
                    "this trial cannot be pruned",
                    self.monitor,
                    sorted(trainer.callback_metrics),
                )
                self._trial = None
            else:
                self._reported.add(epoch)
                number = float(value)
                self._trial.report(number, step=epoch)
                prune = math.isnan(number) or self._trial.should_prune()
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune:
            self.pruned_at_epoch = epoch
            trainer.should_stop = True
            if trainer.is_global_zero:
                from embedlab.sweep import OPTUNA_PRUNED_ATTR

                self._trial.set_user_attr(OPTUNA_PRUNED_ATTR, epoch)
                log.info(
                    "trial %d pruned after epoch %d (%s %.4f)",
                    self.trial_number,
                    epoch,
                    self.monitor,
                    float(trainer.callback_metrics[self.monitor]),
                )
