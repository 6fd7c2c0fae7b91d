"""Callbacks that show the embedding table in TensorBoard (configured under ``callbacks.*``).

- :class:`EmbeddingProjector` — PROJECTOR: the top-N most frequent training words (metadata:
  word, frequency) at the start and at the end of training.
- :class:`EmbeddingDrift` — how far each word's vector moved: cosine distance final vs initial
  as a HISTOGRAM, its mean as a scalar, the words that moved most as TEXT.
- :class:`EmbeddingHistograms` — HISTOGRAMS of row norms and gradient row norms every N steps.

All of them need a TensorBoard logger, a task with ``.embedding`` and a datamodule with
``vocab`` and ``encoded["train"]``; without one they log a warning once and do nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch

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


def _weight(pl_module: L.LightningModule) -> torch.nn.Parameter | None:
    emb = getattr(pl_module, "embedding", None)
    return getattr(emb, "weight", None)


def _vocab_counts(trainer: L.Trainer) -> tuple[list[str], torch.Tensor, set[str]] | None:
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
            and _weight(pl_module) is not None
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
    ) -> tuple[list[str], torch.Tensor, set[str], torch.nn.Parameter] | None:
        """(vocabulary, train frequencies, specials, embedding weight), or None to skip."""
        if not self._ready(trainer, pl_module):
            return None
        data = _vocab_counts(trainer)
        if data is None:
            return None
        return (*data, _weight(pl_module))


class EmbeddingProjector(_EmbeddingCallback):
    """Write the top-``top_n`` frequent words' rows for TensorBoard's PROJECTOR."""

    def __init__(self, top_n: int = 500, at_start: bool = True, at_end: bool = True) -> None:
        super().__init__()
        self.top_n, self.at_start, self.at_end = top_n, at_start, at_end

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, tag: str) -> None:
        inputs = self._inputs(trainer, pl_module)
        if inputs is None:
            return
        vocab, counts, specials, weight = inputs
        ids = top_words(counts[: weight.shape[0]], vocab, self.top_n, skip=specials)
        if ids.numel() > 0:
            log_projector(
                writer_of(trainer.loggers), weight, ids, vocab, counts, tag, trainer.global_step
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_start:
            self._log(trainer, pl_module, "embedding_start")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end:
            self._log(trainer, pl_module, "embedding_end")


class EmbeddingDrift(_EmbeddingCallback):
    """Keep a copy of the table at the start; at the end log how far each word moved."""

    def __init__(self, top_k: int = 25, min_count: int = 1) -> None:
        super().__init__()
        self.top_k, self.min_count = top_k, min_count
        self._initial: torch.Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._ready(trainer, pl_module):
            weight = _weight(pl_module)
            if weight.numel() * 4 > SPILL_BYTES:  # kept on disk until the end of training
                self._initial = SpilledTable(weight)
            else:
                self._initial = weight.detach().float().cpu().clone()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        initial, self._initial = self._initial, None  # not held through testing
        try:
            self._log_drift(trainer, pl_module, initial)
        finally:
            if isinstance(initial, SpilledTable):
                initial.close()

    def _log_drift(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        initial: torch.Tensor | SpilledTable | None,
    ) -> None:
        inputs = None if initial is None else self._inputs(trainer, pl_module)
        if inputs is None:
            return
        vocab, counts, specials, weight = inputs
        n = min(len(vocab), weight.shape[0], initial.shape[0])
        seen = counts[:n] >= self.min_count
        for i, word in enumerate(vocab[:n]):
            if word in specials:
                seen[i] = False
        ids = torch.nonzero(seen).flatten()
        drift = embedding_drift(initial, weight, ids)
        if drift.ids.numel() == 0:
            log.warning(
                "EmbeddingDrift: no word has a non-zero vector before and after training; nothing logged"
            )
            return
        log_drift(writer_of(trainer.loggers), drift, vocab, counts, self.top_k, trainer.global_step)


class EmbeddingHistograms(_EmbeddingCallback):
    """Row-norm and gradient-row-norm histograms every ``every_n_steps`` optimizer steps."""

    def __init__(
        self, every_n_steps: int = 100, row_norms: bool = True, grad_norms: bool = True
    ) -> None:
        super().__init__()
        self.every_n_steps, self.row_norms, self.grad_norms = every_n_steps, row_norms, grad_norms
        self._last_step = -1

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        step = trainer.global_step
        if (
            step % self.every_n_steps
            or step == self._last_step
            or not self._ready(trainer, pl_module)
        ):
            return
        self._last_step = step
        writer, weight = writer_of(trainer.loggers), _weight(pl_module)
        if self.row_norms:
            writer.add_histogram("embedding/row_norm", row_norms(weight), step)
        if self.grad_norms and weight.grad is not None:
            norms = grad_row_norms(weight.grad)
            if norms.numel():
                writer.add_histogram("embedding/grad_row_norm", norms, step)
