"""Tasks: LightningModules that own loss, metrics and optimizers, plus how to set them up.

``TASKS`` maps ``task.name`` to a :class:`TaskSpec` whose ``setup(cfg)`` returns the
datamodule (already set up) and the LightningModule for a validated config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
from omegaconf import OmegaConf

from embedlab.registry import Registry
from embedlab.tasks.classification import ClassificationTask


@dataclass(frozen=True)
class TaskSpec:
    setup: Callable[[Any], tuple[L.LightningDataModule, L.LightningModule]]
    monitor: str  # default metric for the best checkpoint


TASKS: Registry[TaskSpec] = Registry("task", "task.name")


def setup_classification(cfg: Any) -> tuple[L.LightningDataModule, L.LightningModule]:
    from embedlab.data.datamodule import ClassificationDataModule
    from embedlab.embeddings import build_embedding, load_pretrained
    from embedlab.models import MODELS

    spec = MODELS.get(cfg.model.name)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout=spec.layout)
    dm.setup("fit")
    vectors = load_pretrained(cfg.pretrained, dm.vocab, cfg.paths.cache_dir)
    embedding = build_embedding(
        cfg.embedding, len(dm.vocab), dm.pad_id, spec.bag_embedding, vectors
    )
    model = spec.build(cfg.model, embedding, dm.num_classes)
    extra = {
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "tokenizer": dm.tokenizer.to_str(),
        "labels": dm.label_names,
    }
    module = ClassificationTask(
        model,
        dm.num_classes,
        cfg.optimizer,
        cfg.scheduler,
        embedding=embedding,
        embedding_lr=cfg.embedding.lr,
        label_smoothing=cfg.task.label_smoothing,
        checkpoint_extra=extra,
    )
    return dm, module


TASKS.register("classification")(TaskSpec(setup_classification, monitor="val/acc"))

__all__ = ["TASKS", "ClassificationTask", "TaskSpec"]
