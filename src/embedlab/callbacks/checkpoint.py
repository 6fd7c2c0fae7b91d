"""``ModelCheckpoint`` whose ``last.ckpt`` follows every validation, as ``save_last`` did before
Lightning 2.6.

Lightning 2.6 writes ``last.ckpt`` only at a step where a top-k checkpoint was written too: with
``save_top_k=1`` it is a copy of the best, and a run killed after epochs that did not improve
resumes (``resume=RUN_DIR``, ``resume=auto``) from the last improvement, redoing the epochs
after it (a 1M-text run whose best epoch was its second kept ``last.ckpt`` at step 7,032 of
28,128). Here ``last.ckpt`` is also written at a validation where no top-k file changed.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LastEveryValidation(ModelCheckpoint):
    """``ModelCheckpoint`` that writes ``last.ckpt`` after every validation (or every training
    epoch when saving on train epoch end), whether or not the monitored value improved."""

    def _also_save_last(self, trainer: L.Trainer, on_train_epoch_end: bool) -> None:
        if (
            self.save_last
            and self._should_save_on_train_epoch_end(trainer) == on_train_epoch_end
            and not self._should_skip_saving_checkpoint(trainer)  # incl. saved at this step
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._also_save_last(trainer, on_train_epoch_end=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._also_save_last(trainer, on_train_epoch_end=False)
