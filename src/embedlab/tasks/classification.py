"""Text classification as a LightningModule: cross-entropy, accuracy and macro-F1."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from embedlab.training.optim import configure_task_optimizers


class ClassificationTask(L.LightningModule):
    """Owns the loss, the metrics and the optimizers; the model is a plain nn.Module.

    Batches are dicts: the model's inputs plus ``labels``. Logged: ``{train,val,test}/loss``,
    ``/acc`` (micro accuracy), ``/f1`` (macro F1) and ``val/acc_best``.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        embedding: nn.Module | None = None,
        embedding_lr: float | None = None,
        label_smoothing: float = 0.0,
        checkpoint_extra: dict[str, Any] | None = None,
        unfreeze_later: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.optimizer_cfg = optimizer_cfg
        self.scheduler_cfg = scheduler_cfg
        self.embedding = embedding  # the same module as inside the model, for param groups
        self.embedding_lr = embedding_lr
        self.unfreeze_later = unfreeze_later  # a frozen table joins the optimizer up front
        self.embedding_report: dict[str, Any] = {}  # pretrained coverage (set by the task setup)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_acc_best = MaxMetric()
        self.checkpoint_extra = checkpoint_extra or {}
        self.examples_seen = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs)

    def _step(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self(batch)
        loss = self.loss_fn(logits, batch["labels"])
        return loss, logits.argmax(dim=-1), batch["labels"]

    def on_train_start(self) -> None:
        self.val_acc_best.reset()  # forget the sanity-check validation

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, preds, labels = self._step(batch)
        n = labels.numel()
        self.examples_seen += n
        self.train_metrics(preds, labels)  # batch values now, epoch values accumulated
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict(self.train_metrics, on_step=True, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, preds, labels = self._step(batch)
        self.val_metrics.update(preds, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=labels.numel())

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self.log_dict(values, prog_bar=True, sync_dist=True)
        self.val_acc_best.update(values["val/acc"])
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, preds, labels = self._step(batch)
        self.test_metrics.update(preds, labels)
        self.log("test/loss", loss, on_epoch=True, batch_size=labels.numel())

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()

    def configure_optimizers(self) -> Any:
        return configure_task_optimizers(self)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # self-contained checkpoints: resolved config, tokenizer, vocabulary, label names
        checkpoint["embedlab"] = self.checkpoint_extra
