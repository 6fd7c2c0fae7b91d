"""Measure training wall time and examples per second (into metrics.json and TensorBoard)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class Throughput(L.Callback):
    """Times the training epochs (validation inside them excluded), counts training examples."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.examples = 0
        self._start: float | None = None
        self._seen_at_start = 0

    def _pause(self) -> float:
        if self._start is None:
            return 0.0
        elapsed = time.perf_counter() - self._start
        self.train_seconds += elapsed
        self._start = None
        return elapsed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_seconds = 0.0
        self._seen_at_start = getattr(pl_module, "examples_seen", 0)
        self._start = time.perf_counter()

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.training or trainer.state.fn == "fit":
            self._epoch_seconds = getattr(self, "_epoch_seconds", 0.0) + self._pause()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            not trainer.sanity_checking
            and trainer.state.fn == "fit"
            and not self._epoch_done(trainer)
        ):
            self._start = time.perf_counter()

    def _epoch_done(self, trainer: L.Trainer) -> bool:
        return trainer.fit_loop.epoch_loop.done

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = getattr(self, "_epoch_seconds", 0.0) + self._pause()
        seen = getattr(pl_module, "examples_seen", 0) - self._seen_at_start
        self.examples += seen
        if seconds > 0:
            pl_module.log("perf/examples_per_second", seen / seconds)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.train_seconds if self.train_seconds > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"train_seconds": self.train_seconds, "examples": self.examples}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_seconds = state_dict.get("train_seconds", 0.0)
        self.examples = state_dict.get("examples", 0)
