"""Unfreeze the embedding table at a configured epoch (``embedding.unfreeze_at_epoch``)."""

from __future__ import annotations

import logging

import lightning as L

log = logging.getLogger(__name__)


class UnfreezeEmbedding(L.Callback):
    """Turn gradients on for ``pl_module.embedding`` at the start of epoch ``epoch`` (0-based).

    Epochs ``0 .. epoch-1`` train with the table frozen. The optimizer already holds the
    table's parameters (``param_groups(..., unfreeze_later=True)``), so it updates them from
    the first step of epoch ``epoch`` on. Resuming from a later epoch unfreezes at once.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.unfrozen_at: int | None = None  # the epoch it happened, for tests and logs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        embedding = getattr(pl_module, "embedding", None)
        if embedding is None or trainer.current_epoch < self.epoch or self.unfrozen_at is not None:
            return
        for p in embedding.parameters():
            p.requires_grad_(True)
        self.unfrozen_at = trainer.current_epoch
        log.info("embedding unfrozen at epoch %d", trainer.current_epoch)
        pl_module.log(
            "embedding/unfrozen_epoch", float(trainer.current_epoch), on_epoch=True, sync_dist=True
        )
