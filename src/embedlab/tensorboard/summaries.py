"""Write the HPARAMS dashboard entry and the resolved config into a run's event file."""

from __future__ import annotations

from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


def _hparam_value(v: Any) -> Any:
    if isinstance(v, bool | int | float | str):
        return v
    return str(v)


def log_hparams(writer: SummaryWriter, params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Record ``params`` with final ``metrics`` for TensorBoard's HPARAMS dashboard.

    The metrics are written as scalars named ``hparams/<name>`` in the same run, so the
    dashboard shows real values (no placeholders logged at step 0).
    """
    tags = {f"hparams/{k.replace('/', '_')}": float(v) for k, v in metrics.items()}
    exp, ssi, sei = hparams({k: _hparam_value(v) for k, v in params.items()}, tags)
    fw = writer._get_file_writer()
    fw.add_summary(exp)
    fw.add_summary(ssi)
    fw.add_summary(sei)
    for tag, value in tags.items():
        writer.add_scalar(tag, value, 0)
    writer.flush()


def log_config_text(writer: SummaryWriter, yaml_text: str) -> None:
    """The resolved config under TEXT, as a Markdown code block."""
    indented = "\n".join("    " + line for line in yaml_text.splitlines())
    writer.add_text("config", indented, 0)
    writer.flush()


def log_embedding_report(writer: SummaryWriter, report: dict[str, Any]) -> None:
    """Pretrained-vector coverage as scalars (``embedding/coverage_*``) and a text table."""
    for key, value in report.items():
        if key.startswith("coverage") and isinstance(value, int | float):
            writer.add_scalar(f"embedding/{key}", float(value), 0)
    rows = "\n".join(f"| {k} | {v} |" for k, v in report.items())
    writer.add_text("embedding/pretrained", "| key | value |\n|---|---|\n" + rows, 0)
    writer.flush()
