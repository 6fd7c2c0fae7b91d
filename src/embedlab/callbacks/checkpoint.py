"""``ModelCheckpoint`` whose ``last.ckpt`` follows every validation, as ``save_last`` did before
Lightning 2.6, and is a hard link where it would be a copy.

Lightning 2.6 writes ``last.ckpt`` only at a step where a top-k checkpoint was written too: with
``save_top_k=1`` it is a copy of the best, and a run killed after epochs that did not improve
resumes (``resume=RUN_DIR``, ``resume=auto``) from the last improvement, redoing the epochs
after it (a 1M-text run whose best epoch was its second kept ``last.ckpt`` at step 7,032 of
28,128). Here ``last.ckpt`` is also written at a validation where no top-k file changed.

Where a top-k file was just written at the same step, ``last.ckpt`` holds the same state:
instead of writing it a second time it becomes a hard link to that file (one inode, two
names). On the 1M-text benchmark a checkpoint is 348 MB and two of its four epochs improved:
two writes of the six are saved, and the run folder holds 348 MB instead of 696. Every
checkpoint is still written whole to a new file and renamed into place
(:class:`~embedlab.training.checkpoint_io.LocalCheckpointIO`), so a later ``last.ckpt`` or a
removed best leaves the other name's content as it was. Where the filesystem has no hard
links, or the path is remote, ``last.ckpt`` is written as before.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from embedlab.training.checkpoint_io import local_path
from embedlab.utils import replaced_whole


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

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        saved = self._last_checkpoint_saved
        if (
            self.save_last is True
            and saved
            and self._last_global_step_saved == trainer.global_step  # a top-k file, just now
            and local_path(saved) is not None
        ):
            self.save_last = "link"  # Lightning's path for it: _link_checkpoint below
            try:
                super()._save_last_checkpoint(trainer, monitor_candidates)
            finally:
                self.save_last = True
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)

    @staticmethod
    def _link_checkpoint(trainer: L.Trainer, filepath: str, linkpath: str) -> None:
        if (
            trainer.is_global_zero
            and os.path.abspath(filepath) != os.path.abspath(linkpath)
            and not _hard_link(filepath, linkpath)
        ):  # copied whole, then renamed into place
            with open(filepath, "rb") as src, replaced_whole(Path(linkpath)) as dst:
                shutil.copyfileobj(src, dst)
        trainer.strategy.barrier()


def _hard_link(source: str, target: str) -> bool:
    """Make ``target`` another name of ``source``'s file, replacing what ``target`` was in one
    rename; False where the filesystem cannot (nothing changed)."""
    tmp = f"{target}.link{secrets.token_hex(6)}"
    try:
        os.link(source, tmp)
    except OSError:
        return False
    try:
        os.replace(tmp, target)
    except OSError:
        os.unlink(tmp)
        return False
    return True
