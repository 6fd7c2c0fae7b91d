"""The Hydra Sweeper plugin class; the work is in ``_impl`` (imported when a sweep starts)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class EmbedlabOptunaSweeper(Sweeper):
    """Optuna study as a Hydra sweeper: see ``configs/sweep/optuna.yaml`` and the README."""

    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.embedlab_optuna_sweeper._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
