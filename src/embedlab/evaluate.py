"""``embedlab-eval``: score a checkpoint on any data, with the checkpoint's own encoding.

``evaluate(cfg) -> dict`` is the library function; the console script composes
``configs/eval.yaml`` with Hydra (``data=...`` picks any data source the train command knows)
and prints the metrics. The run's resolved config comes from the checkpoint; only the data
(and the run folder) change, so the model sees ids that mean what they meant in training.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

import embedlab.config  # noqa: F401  (stores the schemas the data configs start from)
from embedlab.errors import EmbedlabError
from embedlab.paths import config_dir

log = logging.getLogger(__name__)


def _run_config(cfg: DictConfig, checkpoint: dict[str, Any], output_dir: Path) -> DictConfig:
    """The checkpoint's resolved config with this evaluation's data, paths and batch size."""
    run = OmegaConf.create(checkpoint["embedlab"]["config"])
    with open_dict(run):
        if cfg.get("data") is not None:
            data = OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
            if data.get("source") == "files" and data.get("train") in (None, "???"):
                # only the scored split is needed: a lone test (or val) file stands in for train
                data["train"] = data.get(cfg.split) or data.get("test") or data.get("val")
            run.data = data
        if cfg.batch_size:
            run.data.eval_batch_size = cfg.batch_size
        run.paths.output_dir = str(output_dir)
        run.paths.cache_dir = str(cfg.paths.cache_dir)
        run.ckpt_path = str(cfg.ckpt)
        run.train = False
    return run


def _confusion_outputs(confusion: Any, labels: list[str], output_dir: Path, writer: Any) -> None:
    """confusion_matrix.csv (rows: true, columns: predicted), a PNG, and a TensorBoard image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(confusion.numpy().astype(int), index=labels, columns=labels)
    frame.index.name = "true \\ predicted"
    frame.to_csv(output_dir / "confusion_matrix.csv")
    size = 2.5 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(frame.values, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), n in pd.DataFrame(frame.values).stack().items():
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(output_dir / "confusion_matrix.png", dpi=120)
    if writer is not None:
        writer.add_figure("eval/confusion_matrix", fig, 0)
    plt.close(fig)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt`` on ``cfg.data`` (default: its own data); write and return the metrics."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from embedlab.config import validate
    from embedlab.inference import read_checkpoint
    from embedlab.tasks import TASKS
    from embedlab.utils import quiet_lightning_noise

    if cfg.split not in ("test", "val", "train"):
        from embedlab.errors import ConfigError

        raise ConfigError([f"split: choose test, val or train, got {cfg.split!r}"])
    checkpoint = read_checkpoint(cfg.ckpt)
    output_dir = Path(cfg.paths.output_dir).absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    run = validate(_run_config(cfg, checkpoint, output_dir))
    datamodule, module = TASKS.get(run.task.name).setup(run, checkpoint)
    split = cfg.split if cfg.split in datamodule.encoded else "val"
    loader = datamodule.eval_loader(split)
    quiet_lightning_noise()
    logger = TensorBoardLogger(
        save_dir=str(output_dir), name="", version="", default_hp_metric=False
    )
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    results = trainer.test(module, dataloaders=loader, verbose=False)
    scores = {k.replace("test/", f"{cfg.split}/", 1): float(v) for k, v in results[0].items()}
    metrics: dict[str, Any] = {
        **scores,
        "examples": len(datamodule.encoded[split]),
        "split": split,
        "data": run.data.get("name") or run.data.source,
        "checkpoint": str(Path(cfg.ckpt).expanduser().absolute()),
        "output_dir": str(output_dir),
    }
    confusion = getattr(module, "test_confusion_matrix", None)
    if confusion is not None:
        _confusion_outputs(confusion, datamodule.label_names, output_dir, logger.experiment)
    logger.experiment.flush()
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    for key in sorted(metrics):
        print(f"{key:>16}  {metrics[key]}")
    return metrics


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except EmbedlabError as exc:  # the user's input is at fault: one line, exit 2
        sys.stderr.write(f"embedlab-eval: {exc}\n")
        raise SystemExit(2) from None


def main() -> None:
    """Console entry point (``embedlab-eval``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
