"""Intrinsic evaluation of the embedding table during training (``callbacks.intrinsic``).

After each validation epoch (every ``every_n_epochs``) the table, its words sorted by training
frequency (:func:`embedlab.embeddings.intrinsic.by_frequency`), is scored on the evaluation
sets found (:func:`~embedlab.embeddings.intrinsic.load_benchmarks`; none found: a warning
once, nothing else). Logged with ``self.log`` as ``intrinsic/<name>`` and
``intrinsic/<name>_coverage`` (so TensorBoard, the CSV logger and ``metrics.json`` get the
values of the last validation), and, with TensorBoard, a nearest-neighbours table of
``words`` under TEXT (``intrinsic/neighbors``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import lightning as L

from embedlab.callbacks.embeddings import trained_table, vocab_counts
from embedlab.embeddings import intrinsic
from embedlab.tensorboard import writer_of

log = logging.getLogger(__name__)


class IntrinsicEvaluation(L.Callback):
    def __init__(
        self,
        eval_dir: str | None = None,
        files: dict[str, str | None] | None = None,
        words: list[str] | None = None,
        k: int = 8,
        pairs_restrict: int = intrinsic.PAIRS_RESTRICT,
        analogy_restrict: int = intrinsic.ANALOGY_RESTRICT,
        every_n_epochs: int = 1,
    ) -> None:
        self.eval_dir, self.files = eval_dir, dict(files or {})
        self.words, self.k = list(words or []), k
        self.pairs_restrict, self.analogy_restrict = pairs_restrict, analogy_restrict
        self.every_n_epochs = every_n_epochs
        self.benchmarks: dict[str, Any] | None = None
        self.last: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.benchmarks is None:
            self.benchmarks = intrinsic.load_benchmarks(self.eval_dir, self.files)
            if not self.benchmarks:
                where = self.eval_dir or intrinsic.default_eval_dir()
                log.warning("intrinsic evaluation: no evaluation files in %s; skipped", where)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        data = vocab_counts(trainer)
        weight = trained_table(pl_module)
        if data is None or weight is None:
            return
        vocab, counts, specials = data
        # the words the task trains, where it says (word2vec: min_count applied), as exported
        trained = getattr(trainer.datamodule, "counts", None)
        counts = trained if trained is not None else counts
        wv = intrinsic.by_frequency(
            vocab[: weight.shape[0]], weight, counts[: weight.shape[0]], specials
        )
        if self.benchmarks:
            self.last = intrinsic.evaluate(
                wv, self.benchmarks, self.pairs_restrict, self.analogy_restrict
            )
            for key, value in self.last.items():
                if not math.isnan(value):
                    pl_module.log(f"intrinsic/{key}", value)
        writer = writer_of(trainer.loggers)
        if self.words and writer is not None and trainer.is_global_zero:
            table = intrinsic.neighbors(wv, self.words, self.k)
            if table:
                writer.add_text(
                    "intrinsic/neighbors", intrinsic.neighbors_markdown(table), trainer.global_step
                )
