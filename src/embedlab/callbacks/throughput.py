"""Measure start-up, training wall time and examples per second (into metrics.json and TensorBoard)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class Throughput(L.Callback):
    """Times the training epochs, pausing during validation, and counts training examples.

    Reads ``pl_module.examples_seen`` (the tasks count the examples of every training batch).
    ``startup_seconds`` is the process's age at the first training batch of this process.
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0  # all epochs so far
        self.examples = 0
        self.startup_seconds: float | None = None
        self._epoch_seconds = 0.0
        self._seen_at_start = 0
        self._start: float | None = None
        self._resume = False  # restart the clock at the next training batch

    def _pause(self) -> None:
        if self._start is not None:
            elapsed = time.perf_counter() - self._start
            self._epoch_seconds += elapsed
            self.train_seconds += elapsed
            self._start = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_seconds = 0.0
        self._seen_at_start = getattr(pl_module, "examples_seen", 0)
        self._start = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.startup_seconds is None:
            from embedlab.utils import process_age

            self.startup_seconds = process_age()
        if self._resume:
            self._resume = False
            self._start = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # resume only for validation in the middle of an epoch (val_check_interval < 1), and
        # only at the next training batch: the checkpoint written after this validation (the
        # checkpoint callbacks run after this one) is no more training than the one written
        # after an epoch's last validation
        self._resume = (
            trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and not trainer.fit_loop.epoch_loop.done
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pause()
        self._resume = False
        seen = getattr(pl_module, "examples_seen", 0) - self._seen_at_start
        self.examples += seen
        rate = seen / self._epoch_seconds if self._epoch_seconds > 0 else 0.0
        # every rank logs (a collective under DDP): the sum is the whole job's rate
        pl_module.log("perf/examples_per_second", rate, sync_dist=True, reduce_fx="sum")

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.train_seconds if self.train_seconds > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "examples": self.examples}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = state_dict.get("train_seconds", 0.0)
        self.examples = state_dict.get("examples", 0)
