"""TensorBoard helpers: hparams with real final metrics, the config as text, embedding coverage."""

from embedlab.tensorboard.summaries import (
    hparams_table,
    log_config_text,
    log_embedding_report,
    log_hparams,
)

__all__ = ["hparams_table", "log_config_text", "log_embedding_report", "log_hparams"]
