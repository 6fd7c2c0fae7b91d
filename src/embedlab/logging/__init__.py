"""TensorBoard helpers: hparams with real final metrics, the config as text."""

from embedlab.logging.tensorboard import log_config_text, log_hparams

__all__ = ["log_config_text", "log_hparams"]
