"""TensorBoard helpers: hparams with real final metrics, the config as text, embedding coverage."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from embedlab.tensorboard.summaries import (
    hparams_table,
    log_config_text,
    log_embedding_report,
    log_hparams,
)


def writer_of(loggers: Iterable[Any]) -> Any | None:
    """The ``SummaryWriter`` of the first TensorBoard logger among ``loggers`` (None if none)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    return next((lg.experiment for lg in loggers if isinstance(lg, TensorBoardLogger)), None)


__all__ = ["hparams_table", "log_config_text", "log_embedding_report", "log_hparams", "writer_of"]
