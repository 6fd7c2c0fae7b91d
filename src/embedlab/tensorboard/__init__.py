"""TensorBoard helpers: hparams with real final metrics, the config as text, embedding coverage."""

from embedlab.tensorboard.summaries import log_config_text, log_embedding_report, log_hparams

__all__ = ["log_config_text", "log_embedding_report", "log_hparams"]
