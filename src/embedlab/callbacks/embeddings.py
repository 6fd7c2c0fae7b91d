"""Callbacks that show the embedding table in TensorBoard (configured under ``callbacks.*``).

- :class:`EmbeddingProjector` — PROJECTOR: the top-N most frequent training words (metadata:
  word, frequency) at the start and at the end of training.
- :class:`EmbeddingDrift` — how far each word's vector moved: cosine distance final vs initial
  as a HISTOGRAM, its mean as a scalar, the words that moved most as TEXT.
- :class:`EmbeddingHistograms` — HISTOGRAMS of row norms and gradient row norms every N steps.

Each view covers every table of the embedding (:func:`embedding_tables`): ``embedding`` for
one table; ``embedding/static`` and ``embedding/nonstatic`` for ``embedding.channels=2``
(tensors ``embedding/static_start``, scalars ``embedding/nonstatic/drift_cosine_mean``, ...).

All of them need a TensorBoard logger, a task with ``.embedding`` and a datamodule with
``vocab`` and ``encoded["train"]``; without one they log a warning once and do nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

from embedlab.embeddings.multichannel import embedding_tables
from embedlab.tensorboard import writer_of
from embedlab.tensorboard.embeddings import (
    SpilledTable,
    embedding_drift,
    grad_row_norms,
    log_drift,
    log_projector,
    row_norms,
    top_words,
)

log = logging.getLogger(__name__)

SPILL_BYTES = 64 * 2**20  # drift snapshots of larger tables wait on disk (SpilledTable)


def trained_table(pl_module: L.LightningModule) -> torch.nn.Parameter | None:
    """The trained table (with two channels: the non-static one)."""
    emb = getattr(pl_module, "embedding", None)
    return getattr(emb, "weight", None)


def _tables(pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
    """Every table of the task's embedding by its TensorBoard name."""
    return embedding_tables(getattr(pl_module, "embedding", None))


def vocab_counts(trainer: L.Trainer) -> tuple[list[str], torch.Tensor, set[str]] | None:
    """Vocabulary, training-split frequencies and special tokens of the datamodule."""
    from embedlab.data.tokenizer import token_counts

    dm = trainer.datamodule
    vocab = getattr(dm, "vocab", None)
    encoded = getattr(dm, "encoded", None) or {}
    if not vocab or "train" not in encoded:
        return None
    counts = token_counts(encoded["train"], len(vocab))
    specials = set(getattr(dm, "specials", []) or [])
    return list(vocab), counts, specials


class _EmbeddingCallback(L.Callback):
    def __init__(self) -> None:
        self._warned = False

    def _ready(self, trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        ok = (
            trainer.is_global_zero
            and writer_of(trainer.loggers) is not None
            and trained_table(pl_module) is not None
        )
        if not ok and not self._warned and trainer.is_global_zero:
            log.warning(
                "%s: needs a TensorBoard logger and a task with .embedding; skipped",
                type(self).__name__,
            )
            self._warned = True
        return ok

    def _inputs(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> tuple[list[str], torch.Tensor, set[str], dict[str, torch.Tensor]] | None:
        """(vocabulary, train frequencies, specials, the tables by name), or None to skip."""
        if not self._ready(trainer, pl_module):
            return None
        data = vocab_counts(trainer)
        if data is None:
            return None
        return (*data, _tables(pl_module))


class EmbeddingProjector(_EmbeddingCallback):
    """Write the top-``top_n`` frequent words' rows for TensorBoard's PROJECTOR."""

    def __init__(self, top_n: int = 500, at_start: bool = True, at_end: bool = True) -> None:
        super().__init__()
        self.top_n, self.at_start, self.at_end = top_n, at_start, at_end

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        inputs = self._inputs(trainer, pl_module)
        if inputs is None:
            return
        vocab, counts, specials, tables = inputs
        for name, weight in tables.items():  # tensor "<table>_start" / "<table>_end"
            ids = top_words(counts[: weight.shape[0]], vocab, self.top_n, skip=specials)
            if ids.numel() > 0:
                writer = writer_of(trainer.loggers)
                tag = f"{name}_{when}"
                log_projector(writer, weight, ids, vocab, counts, tag, trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_start:
            self._log(trainer, pl_module, "start")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end:
            self._log(trainer, pl_module, "end")


class EmbeddingDrift(_EmbeddingCallback):
    """Keep a copy of each table at the start; at the end log how far each word moved."""

    def __init__(self, top_k: int = 25, min_count: int = 1) -> None:
        super().__init__()
        self.top_k, self.min_count = top_k, min_count
        self._initial: dict[str, torch.Tensor | SpilledTable] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._ready(trainer, pl_module):
            self._initial = {
                name: SpilledTable(t)
                if t.numel() * 4 > SPILL_BYTES
                else t.detach().float().cpu().clone()
                for name, t in _tables(pl_module).items()
            }  # tables over SPILL_BYTES wait on disk until the end of training

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        initial, self._initial = self._initial, {}  # not held through testing
        try:
            self._log_drift(trainer, pl_module, initial)
        finally:
            for snapshot in initial.values():
                if isinstance(snapshot, SpilledTable):
                    snapshot.close()

    def _log_drift(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        snapshots: dict[str, torch.Tensor | SpilledTable],
    ) -> None:
        inputs = self._inputs(trainer, pl_module) if snapshots else None
        if inputs is None:
            return
        vocab, counts, specials, tables = inputs
        for name, weight in tables.items():
            initial = snapshots.get(name)
            if initial is None:
                continue
            n = min(len(vocab), weight.shape[0], initial.shape[0])
            seen = counts[:n] >= self.min_count
            for i, word in enumerate(vocab[:n]):
                if word in specials:
                    seen[i] = False
            drift = embedding_drift(initial, weight, torch.nonzero(seen).flatten())
            if drift.ids.numel() == 0:
                log.warning(
                    "EmbeddingDrift: no word of %s has a non-zero vector before and after "
                    "training; nothing logged",
                    name,
                )
                continue
            writer = writer_of(trainer.loggers)
            log_drift(writer, drift, vocab, counts, self.top_k, trainer.global_step, prefix=name)


class EmbeddingHistograms(_EmbeddingCallback):
    """Row-norm and gradient-row-norm histograms at the end of every training epoch (the
    gradient of its last update), and every ``every_n_steps`` optimizer steps where an epoch is
    longer than that.

    The epoch's end gives every run its curve over epochs, however few Lightning steps an epoch
    has (``data.batches_per_step`` makes an epoch of every shared set one step for the bag
    model). Where it has no more than ``every_n_steps``, the step's histograms would only repeat
    the epoch end's a few steps early, at a cost inside the timed training: the one at step 0
    was 10.9 ms of MPQA's 71.5 ms of training (3 epochs of one step).
    """

    def __init__(
        self, every_n_steps: int = 100, row_norms: bool = True, grad_norms: bool = True
    ) -> None:
        super().__init__()
        self.every_n_steps, self.row_norms, self.grad_norms = every_n_steps, row_norms, grad_norms
        self._last_step = -1

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        every = self.every_n_steps
        if trainer.num_training_batches > every and trainer.global_step % every == 0:
            self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step or not self._ready(trainer, pl_module):
            return
        self._last_step = step
        writer = writer_of(trainer.loggers)
        for name, weight in _tables(pl_module).items():
            if self.row_norms:
                writer.add_histogram(f"{name}/row_norm", row_norms(weight), step)
            grad = weight.grad
            fused = getattr(getattr(pl_module, "embedding", None), "last_gradient", None)
            if grad is None and fused is not None and weight is pl_module.embedding.weight:
                grad = fused.to_sparse(weight.shape)  # updated in its backward (no .grad)
            if self.grad_norms and grad is not None:  # a static table has none
                norms = grad_row_norms(grad)
                if norms.numel():
                    writer.add_histogram(f"{name}/grad_row_norm", norms, step)
