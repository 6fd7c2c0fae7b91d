"""word2vec as a LightningModule: negative-sampling loss, export of the trained vectors.

Batches come from :mod:`embedlab.data.word2vec`; the model (skip-gram or CBOW) scores each
example's target and ``K`` negatives. The loss is word2vec's, summed over the examples of a
batch (so ``optimizer.lr`` means what word2vec's ``alpha`` means: the step per example):
``-log s(u.v_target) - sum_k log s(-u.v_neg_k)`` (a negative equal to the target is skipped,
as gensim does). Logged: ``train/loss_step``/``train/loss_epoch`` and ``{val,test}/loss``,
the mean loss per example. At the end of training the input table is written to the run
folder (:func:`export_vectors`): ``vectors.vec`` (word2vec text format), ``vectors.npy`` and
``vocab.txt`` (the words with their training counts), most frequent first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedlab.tasks.base import EmbeddingTask
from embedlab.tasks.training_log import logs_this_step

log = logging.getLogger(__name__)

EXPORT_FILES = ("vectors.vec", "vectors.npy", "vocab.txt")


def negative_sampling_loss(
    scores: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Summed loss of ``scores`` (P, 1 + K): target column 0, negatives after (those == target skipped)."""
    pos = F.logsigmoid(scores[:, 0])  # (P,)
    neg = F.logsigmoid(-scores[:, 1:]) * (negatives != targets[:, None])  # (P, K)
    return -(pos.sum() + neg.sum())


def export_vectors(
    folder: str | Path, vocab: list[str], weight: torch.Tensor, counts: torch.Tensor
) -> list[Path]:
    """Write the rows of words with a count > 0, most frequent first: .vec, .npy and vocab.txt."""
    from embedlab.tensorboard.embeddings import top_words

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = top_words(counts, vocab, len(vocab))
    matrix = weight.detach().float().cpu()[ids].numpy()
    words = [vocab[i] for i in ids.tolist()]
    np.save(folder / "vectors.npy", matrix)
    with open(folder / "vocab.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{w}\t{int(counts[i])}\n" for w, i in zip(words, ids.tolist(), strict=True))
    with open(folder / "vectors.vec", "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {matrix.shape[1]}\n")
        for w, row in zip(words, matrix, strict=True):
            f.write(w + " " + " ".join(f"{x:.6g}" for x in row) + "\n")
    return [folder / name for name in EXPORT_FILES]


class Word2VecTask(EmbeddingTask):
    """Trains skip-gram / CBOW with negative sampling; ``examples_seen`` counts training words."""

    def __init__(
        self,
        model: nn.Module,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        vocab: list[str] | None = None,
        counts: torch.Tensor | None = None,
        export: bool = True,
        **plumbing: Any,
    ) -> None:
        super().__init__(model, optimizer_cfg, scheduler_cfg, **plumbing)
        self.vocab = vocab or []
        self.counts = counts
        self.export = export
        self.eval_sums: dict[str, list[float]] = {}

    def other_tables(self) -> list[nn.Module]:
        # the output table is a second embedding table: its own group, sparse like the input
        return [self.model.output]

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int]:
        scores = self.model(
            batch["inputs"], batch["targets"], batch["negatives"], batch.get("offsets")
        )
        return negative_sampling_loss(scores, batch["targets"], batch["negatives"]), len(
            batch["targets"]
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self.examples_seen += int(batch["words"])
        if len(batch["targets"]) == 0:
            return None
        total, n = self._loss(batch)
        self.train_loss.add(total.detach(), n)
        if logs_this_step(self):
            self._log_train("step")
        return total

    def _eval_step(self, split: str, batch: dict[str, Any]) -> None:
        if len(batch["targets"]):
            total, n = self._loss(batch)
            sums = self.eval_sums.setdefault(split, [0.0, 0.0])
            sums[0] += float(total)
            sums[1] += n

    def _eval_end(self, split: str) -> None:
        total, n = self.eval_sums.pop(split, [0.0, 0.0])
        self.log(f"{split}/loss", total / max(n, 1.0), prog_bar=True)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def on_train_end(self) -> None:
        if self.export and self.trainer.is_global_zero and self.counts is not None:
            paths = export_vectors(
                self.trainer.default_root_dir, self.vocab, self.embedding.weight, self.counts
            )
            log.info("word vectors: %s", paths[0])
