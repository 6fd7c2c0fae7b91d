"""Text classification as a LightningModule: cross-entropy, accuracy and macro-F1."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from embedlab.tasks.base import EmbeddingTask


class ClassificationTask(EmbeddingTask):
    """Owns the loss, the metrics and the optimizers; the model is a plain nn.Module.

    Batches are dicts: the model's inputs plus ``labels``. Logged: ``{val,test}/loss``,
    ``/acc`` (micro accuracy), ``/f1`` (macro F1), ``val/acc_best``, and for training
    ``train/{loss,acc,f1}_step`` (means over the last ``trainer.log_every_n_steps`` steps, at
    the steps the loggers write) and ``train/{loss,acc,f1}_epoch``.

    A training step only adds to a confusion matrix and a loss sum (:class:`WindowSums`);
    values are made and logged every N steps.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        label_smoothing: float = 0.0,
        **plumbing: Any,  # EmbeddingTask's: embedding, embedding_lr, unfreeze_later, ...
    ) -> None:
        super().__init__(model, optimizer_cfg, scheduler_cfg, **plumbing)
        self.num_classes = num_classes
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        # training counts, (true, predicted) confusion matrices of the window (since the last
        # log) and the epoch: one bincount a step (torchmetrics' update took 0.15 ms of 2.8)
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.register_buffer("train_window", zeros, persistent=False)
        self.register_buffer("train_epoch", zeros.clone(), persistent=False)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # losses weighted by examples; like the metrics, summed over every rank's examples
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in checkpoints: a resumed run knows its best
        self.test_confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)
        self.test_confusion_matrix: torch.Tensor | None = None  # (true, predicted) after testing

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs)

    def _step(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self(batch)
        loss = self.loss_fn(logits, batch["labels"])
        return loss, logits.argmax(dim=-1), batch["labels"]

    def train_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        loss, preds, labels = self._step(batch)
        self.pending.append((loss.detach(), preds, labels))
        return loss

    def fuse_train_step(self) -> Any:
        from embedlab.training.bag_step import fuse_bag_step

        return fuse_bag_step(self.model, self.loss_fn, self.trainer.optimizers[0], self.trainer)

    # The fused calls add their batches' counts and loss to the training tallies themselves:
    # after ~25 ms of a step's updates in C, the torch ops of record_train's bincount and sums
    # took ~1 ms a step (measured inside a run; 0.1 ms on their own)
    def fused_train_batches(self, batches: list[dict[str, torch.Tensor]]) -> bool:
        step, tallies = self.fused_step, (self.train_window, self.train_loss.window)
        result = None if step is None else step.steps(batches, *tallies)
        if result is None:
            return False
        self.examples_seen += result[1].numel()  # a prediction a text
        return True

    def record_train(self, pending: list[Any]) -> None:
        if not pending:  # the fused calls tallied the step themselves
            return
        losses, preds, labels = zip(*pending, strict=True)
        sizes = [len(y) for y in labels]
        labels_all, preds_all = torch.cat(labels), torch.cat(preds)
        counts = torch.bincount(
            labels_all * self.num_classes + preds_all, minlength=self.train_window.numel()
        )
        self.train_window.add_(counts.view_as(self.train_window))
        total = torch.stack(losses).double() @ torch.tensor(sizes, dtype=torch.float64)
        self.train_loss.add(total, sum(sizes))
        self.examples_seen += sum(sizes)

    def _log_train(self, when: str) -> None:
        """Log the training loss, acc and F1 of the window (``step``) or the epoch (``epoch``)."""
        self.train_epoch += self.train_window
        confusion = self.train_window if when == "step" else self.train_epoch
        loss = self.train_loss.take(when)
        if loss is not None:
            acc, f1 = accuracy_and_macro_f1(confusion)
            step = when == "step"
            values = {f"train/loss_{when}": loss, f"train/acc_{when}": acc, f"train/f1_{when}": f1}
            # epoch values: the mean over ranks under DDP (one collective, at the epoch's end)
            self.log_dict(
                values, prog_bar=step, on_step=step, on_epoch=not step, sync_dist=not step
            )
        self.train_window.zero_()
        if when == "epoch":
            self.train_epoch.zero_()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, preds, labels = self._step(batch)
        self.val_metrics.update(preds, labels)
        self.val_loss.update(loss, labels.numel())

    def on_validation_epoch_end(self) -> None:
        values = {**self.val_metrics.compute(), "val/loss": self.val_loss.compute()}
        self.val_metrics.reset()
        self.val_loss.reset()
        # torchmetrics' compute() already gathered every rank's counts, so every rank holds the
        # same values; sync_dist (their mean) leaves them unchanged and tells Lightning so
        self.log_dict(values, prog_bar=True, sync_dist=True)
        if not self.trainer.sanity_checking:  # the best of real validations only
            self.val_acc_best.update(values["val/acc"])
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, preds, labels = self._step(batch)
        self.test_metrics.update(preds, labels)
        self.test_confusion.update(preds, labels)
        self.test_loss.update(loss, labels.numel())

    def on_test_epoch_end(self) -> None:
        test = {**self.test_metrics.compute(), "test/loss": self.test_loss.compute()}
        self.log_dict(test, sync_dist=True)  # equal on every rank (see on_validation_epoch_end)
        self.test_metrics.reset()
        self.test_loss.reset()
        self.test_confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()


def accuracy_and_macro_f1(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Micro accuracy and macro F1 from a (true, predicted) confusion matrix.

    Classes absent from both targets and predictions are left out of the F1 mean, as
    torchmetrics' ``MulticlassF1Score(average="macro")`` does.
    """
    confusion = confusion.double()
    tp = confusion.diag()
    support, predicted = confusion.sum(1), confusion.sum(0)
    acc = tp.sum() / confusion.sum().clamp(min=1)
    denom = support + predicted  # 2tp + fp + fn
    present = denom > 0
    f1 = (2 * tp[present] / denom[present]).mean() if present.any() else acc.new_zeros(())
    return acc.float(), f1.float()
