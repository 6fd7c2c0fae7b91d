"""The LightningModule every task derives from: the embedding, optimizer and checkpoint plumbing.

A task owns its loss and metrics; what every task does the same way lives here once: the
model (a plain ``nn.Module``) and the embedding table inside it, the optimizer and schedule
with the table's own parameter group (:func:`embedlab.training.optim.build_optimization`), a
table that a callback unfreezes later, the examples counter the Throughput callback reads,
the pretrained-coverage report, the model's weight constraints after each optimizer step
(``apply_constraints``, e.g. the CNN's max-norm), and the self-contained checkpoint (resolved config,
tokenizer, labels, n-grams under ``checkpoint["embedlab"]``).
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning as L
from torch import nn

from embedlab.data.batching import PrefetchLoader
from embedlab.errors import ConfigError
from embedlab.tasks.training_log import WindowSums, logs_this_step
from embedlab.training.optim import build_optimization, fuse_table_update, unfuse_table_update

# torch's warning for a schedule stepped before the optimizer's first step()
SCHEDULE_BEFORE_STEP = r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`"


class EmbeddingTask(L.LightningModule):
    """Base of the tasks: subclasses add their loss, metrics and steps."""

    def __init__(
        self,
        model: nn.Module,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        embedding: nn.Module | None = None,
        embedding_lr: float | None = None,
        unfreeze_later: bool = False,
        checkpoint_extra: dict[str, Any] | None = None,
        batches_per_step: int = 1,
        gradient_clip_val: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_cfg = optimizer_cfg
        self.scheduler_cfg = scheduler_cfg
        self.embedding = embedding  # the same module as inside the model, for param groups
        self.embedding_lr = embedding_lr
        self.unfreeze_later = unfreeze_later  # a frozen table joins the optimizer up front
        self.checkpoint_extra = checkpoint_extra or {}
        self.embedding_report: dict[str, Any] = {}  # pretrained coverage (set by the setup)
        self.examples_seen = 0  # training examples (LM: predicted tokens), for Throughput
        self.train_loss = WindowSums()  # summed loss and count, per log window and epoch
        self.pending: list[Any] = []  # what train_batch noted, for record_train (once a step)
        # several batches (one update each) per Lightning step: the updates run in
        # training_step (manual optimization); see data.batches_per_step
        self.batches_per_step = batches_per_step
        if batches_per_step > 1:
            self.automatic_optimization = False
        # clipped here under manual optimization (trainer.gradient_clip_val, which Lightning
        # applies itself to automatic optimization only)
        self.clip_val = gradient_clip_val if batches_per_step > 1 else None
        # the whole step in one compiled call where the task and model allow it (set while
        # training; optimizer.fuse_train_step, fuse_train_step())
        self.fused_step: Any = None

    def on_fit_start(self) -> None:
        if self.batches_per_step > 1 and self.trainer.world_size > 1:
            # config.one_batch_per_step refuses what it can see; this is what it cannot
            raise ConfigError(
                [
                    f"data.batches_per_step: {self.batches_per_step} is not possible with "
                    f"{self.trainer.world_size} processes (DDP reduces the gradients of one "
                    "backward per step); set 1"
                ]
            )

    def on_train_start(self) -> None:
        # a sparse bag table's row-wise Adagrad updates it inside the backward, from the bag
        # gradients (optimizer.fuse_table_update; where nothing needs the table's .grad)
        cfg, trainer = self.optimizer_cfg, self.trainer
        fused = cfg.get("fuse_table_update", True) and fuse_table_update(
            trainer.optimizers[0], self.embedding, trainer
        )
        # and the whole step, for the updates training_step makes itself
        if fused and cfg.get("fuse_train_step", True) and self.batches_per_step > 1:
            self.fused_step = self.fuse_train_step()
        # the loader's prefetch thread (data.prefetch) pays only beside the fused step's one
        # C call, which releases the GIL (batching.PrefetchLoader)
        loader = trainer.train_dataloader
        if isinstance(loader, PrefetchLoader):
            loader.background = self.fused_step is not None

    def teardown(self, stage: str) -> None:
        # the module outlives the run's optimizer; Lightning calls this after every fit, also
        # one stopped by an error
        unfuse_table_update(self.embedding)
        self.fused_step = None

    def fuse_train_step(self) -> Any:
        """The task's whole training step as one callable, or None: each update of
        :meth:`training_step` then runs :meth:`train_batch` and autograd. Called at the start
        of training, with the table's update fused."""
        return None

    def fused_train_batches(self, batches: list[Any]) -> bool:
        """Make the updates of ``batches`` (one each, in turn) with ``self.fused_step`` in one
        call, leaving no gradient in ``.grad``, and record what the logs need (in
        ``self.pending`` for :meth:`record_train`, or in the training tallies directly); False
        where the fused step cannot make them all (nothing was done)."""
        return False

    def other_tables(self) -> list[nn.Module]:
        """Embedding tables beside ``embedding`` that get their own (sparse) parameter group."""
        return []

    def configure_optimizers(self) -> Any:
        return build_optimization(
            self.model,
            self.embedding,
            self.optimizer_cfg,
            self.scheduler_cfg,
            self.trainer,
            embedding_lr=self.embedding_lr,
            unfreeze_later=self.unfreeze_later,
            other_tables=self.other_tables(),
        )

    def train_batch(self, batch: Any) -> Any:
        """The loss of one training batch; what the logs need of it goes to ``self.pending``."""
        raise NotImplementedError

    def record_train(self, pending: list[Any]) -> None:
        """Add what ``train_batch`` noted in this step (one entry a batch) to the training sums
        and ``examples_seen``: once a step, in a few tensor ops for all its batches (per
        batch, the bincount and sums cost 0.14 ms of a 1.8 ms bag update)."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        """One batch, or with ``data.batches_per_step`` > 1 a list of batches, one update each.

        Lightning's per-step cost (hooks, closure, loop bookkeeping: ~0.9 ms on 2 cores, half a
        256-text bag step) is then paid once per list. The updates are the ones automatic
        optimization makes, in the same order (the lists hold the batches of the one-batch
        loader): the last through Lightning's optimizer (callbacks' ``on_before_optimizer_step``
        and ``global_step`` count Lightning steps), the others directly; gradient clipping
        (``trainer.gradient_clip_val``), step-interval schedules and the model's constraints
        apply to every update. Where the task fused its step (:meth:`fuse_train_step`), each
        update is that one call instead of :meth:`train_batch` and autograd (the same update to
        float rounding), all of them in one call where nothing runs between two updates
        (:meth:`fused_train_batches`); Lightning's optimizer step after the last one then
        finds no gradient to apply, and runs the callbacks' hooks and counts the step (hooks
        that read ``.grad`` see none, as they see none for a fused table: set
        ``optimizer.fuse_train_step=false`` for autograd's gradients).
        """
        logs = logs_this_step(self)  # before the updates move global_step on
        if self.automatic_optimization:
            loss = self.train_batch(batch)
        else:
            loss = self._train_batches(batch)
        self.record_train(self.pending)
        self.pending.clear()
        if logs:
            self._log_train("step")
        return loss

    def _train_batches(self, batches: list[Any]) -> None:
        lightning_optimizer = self.optimizers()
        optimizer = lightning_optimizer.optimizer
        schedulers = self._schedulers("step")
        # every update in one call where nothing runs between two updates (a step-interval
        # schedule or the model's constraints do); Lightning's step then runs the hooks only
        if (
            self.fused_step is not None
            and not schedulers
            and getattr(self.model, "apply_constraints", None) is None
            and self.fused_train_batches(batches)
        ):
            lightning_optimizer.step()
            return
        last = len(batches) - 1
        for i, batch in enumerate(batches):
            fused = self.fused_step is not None and self.fused_train_batches([batch])
            if i < last:
                if not fused:
                    loss = self.train_batch(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self._clip(optimizer)
                    optimizer.step()
            else:  # clipped in on_before_optimizer_step, after the callbacks' hooks
                if not fused:
                    optimizer.zero_grad(set_to_none=True)
                    self.manual_backward(self.train_batch(batch))
                lightning_optimizer.step()
            self._constrain()
            if schedulers:
                self.step_schedules("step")

    def transfer_batch_to_device(self, batch: Any, device: Any, dataloader_idx: int) -> Any:
        # the loaders make CPU tensors: on the CPU there is nothing to move, and walking the
        # batches of a step to find that out took 0.5 ms a step (32 bag batches)
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        self._clip(optimizer)  # where automatic optimization clips: after the callbacks' hooks

    def _clip(self, optimizer: Any) -> None:
        if self.clip_val:  # as Lightning clips under automatic optimization
            self.configure_gradient_clipping(
                optimizer, gradient_clip_val=self.clip_val, gradient_clip_algorithm="norm"
            )

    def _schedulers(self, interval: str) -> list[Any]:
        return [c.scheduler for c in self.trainer.lr_scheduler_configs if c.interval == interval]

    def step_schedules(self, interval: str) -> None:
        """Step the ``interval`` ("step" or "epoch") schedules: under manual optimization
        Lightning steps none of them."""
        with warnings.catch_warnings():
            if self.fused_step is not None:
                # the fused step updates without calling optimizer.step(), which torch's
                # schedulers take for a schedule stepped before its first update and warn about
                warnings.filterwarnings(
                    "ignore", message=SCHEDULE_BEFORE_STEP, category=UserWarning
                )
            for scheduler in self._schedulers(interval):
                scheduler.step()

    def _constrain(self) -> None:
        constrain = getattr(self.model, "apply_constraints", None)
        if constrain is not None:
            constrain()

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Lightning's step, then the model's weight constraints (e.g. the CNN's max-norm).

        The model's ``apply_constraints()`` runs after every optimizer step (:meth:`_constrain`;
        under manual optimization, after each update of :meth:`training_step`).
        """
        super().optimizer_step(*args, **kwargs)
        self._constrain()

    def _log_train(self, when: str) -> None:
        """Log the mean training loss of the window (``step``) or the epoch (``epoch``)."""
        value = self.train_loss.take(when)
        if value is not None:
            step = when == "step"
            self.log(
                f"train/loss_{when}",
                value,
                prog_bar=step,
                on_step=step,
                on_epoch=not step,
                sync_dist=not step,  # epoch value: the mean over ranks under DDP
            )

    def on_train_epoch_end(self) -> None:
        self._log_train("epoch")
        if not self.automatic_optimization:
            self.step_schedules("epoch")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # self-contained checkpoints: resolved config, tokenizer, vocabulary, label names
        checkpoint["embedlab"] = self.checkpoint_extra
        # and the random streams (dropout, samplers' workers), so that a run resumed from here
        # draws what the uninterrupted run drew (tensors and plain values: weights_only loads)
        checkpoint["rng"] = rng_states()

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # Testing a checkpoint: take its tensors (memory-mapped by LocalCheckpointIO, read as
        # used) instead of copying every weight into the live ones; the copy doubled the
        # tables in memory. Fitting copies, so the optimizers keep their parameters.
        if self._trainer is not None and self._trainer.state.fn == "test":
            assign = True
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rng" in checkpoint and self.trainer.state.fn == "fit":  # resuming, not testing
            set_rng_states(checkpoint["rng"])


def rng_states() -> dict[str, Any]:
    """Python's, numpy's and torch's random states, as tensors and plain values."""
    import random

    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(state), gauss_next],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` saved."""
    import random

    import numpy as np
    import torch

    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, state, gauss_next = states["python"]
    random.setstate((version, tuple(state), gauss_next))
