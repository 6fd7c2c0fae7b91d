"""Write the HPARAMS dashboard entry and the resolved config into a run's event file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from embedlab.sweep import job_overrides

# What an embedding study compares, in this order, after the keys swept in the run.
STUDY_KEYS = (
    "embedding.init",
    "embedding.dim",
    "embedding.freeze",
    "pretrained.source",
    "pretrained.name",
    "model.name",
    "optimizer.name",
    "optimizer.lr",
    "data.source",
    "data.name",
    "tokenizer.ngrams",
    "seed",
)
# How and where a run logs, not what it studies: left out of the table, even when overridden.
PLUMBING = (
    "callbacks.",
    "logger.",
    "paths.",
    "trainer.enable_",
    "trainer.log_every_n_steps",
    "trainer.num_sanity_val_steps",
    "trainer.detect_anomaly",
    "data.num_workers",
    "data.cache",
    "pretrained.cache",
    "pretrained.cache_dir",
    "pretrained.download",
    "print_config",
    "task_name",
    "tags",
    "train",
    "test",
    "ckpt_path",
    "optimized_metric",
)
# The key a group override (``embedding=xavier_uniform``) changes that names the choice.
_CHOICE_KEY = {
    "embedding": "embedding.init",
    "pretrained": "pretrained.source",
    "data": "data.source",
    "tokenizer": "tokenizer.kind",
}


def _hparam_value(v: Any) -> Any:
    if isinstance(v, bool | int | float | str):
        return v
    return str(v)


def _is_plumbing(key: str) -> bool:
    return any(key == p or (p.endswith((".", "_")) and key.startswith(p)) for p in PLUMBING)


def swept_columns(flat: Mapping[str, Any], overrides: Sequence[str] = ()) -> list[str]:
    """The flat config keys set by the overrides that say what this job varies
    (:func:`embedlab.sweep.job_overrides`: in a sweep the swept ones, else all).

    A group choice maps to the key naming it (``embedding`` -> ``embedding.init``, else
    ``<group>.name``); overrides that set no config key (``experiment=``, ``hydra.*``) or a
    :data:`PLUMBING` key (``trainer.enable_progress_bar=false``) give none.
    """
    keys: list[str] = []
    for override, _ in job_overrides(overrides):
        name = override.lstrip("+~").split("@", 1)[0].replace("/", ".")
        key = name if name in flat else _CHOICE_KEY.get(name, f"{name}.name")
        if key in flat and key not in keys and not _is_plumbing(key):
            keys.append(key)
    return keys


def hparams_table(flat: Mapping[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The HPARAMS columns in order: swept keys, :data:`STUDY_KEYS`, the rest minus plumbing."""
    first = [*swept_columns(flat, overrides), *(k for k in STUDY_KEYS if k in flat)]
    rest = [k for k in flat if not _is_plumbing(k)]
    return {k: _hparam_value(flat[k]) for k in dict.fromkeys([*first, *rest])}


def log_hparams(
    writer: SummaryWriter,
    flat: Mapping[str, Any],
    metrics: dict[str, float],
    overrides: Sequence[str] = (),
) -> None:
    """Record the flat config (as :func:`hparams_table` orders it) with final ``metrics`` for
    TensorBoard's HPARAMS dashboard.

    The metrics are written as scalars named ``hparams/<name>`` in the same run, so the
    dashboard shows real values (no placeholders logged at step 0). TensorBoard sorts the
    columns by (not ``differs``, name), so the swept and study keys are marked ``differs``.
    """
    # Not Lightning's TensorBoardLogger.log_hyperparams: it cannot set `differs` (TensorBoard then
    # sorts every column by name, callbacks.* first) and it logs the metrics under their own tags
    # (val/acc_best, test/acc), an extra point on those curves (at step 0 unless given a step).
    params = hparams_table(flat, overrides)
    compared = set(swept_columns(flat, overrides)) | set(STUDY_KEYS)
    tags = {f"hparams/{k.replace('/', '_')}": float(v) for k, v in metrics.items()}
    exp, ssi, sei = hparams(params, tags)
    value = exp.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(value.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in compared
    value.content = data.SerializeToString()
    file_writer = (
        writer._get_file_writer()
    )  # reopens it after fit/test closed it, as Lightning does
    for summary in (exp, ssi, sei):
        file_writer.add_summary(summary)
    for tag, v in tags.items():
        writer.add_scalar(tag, v, 0)
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
