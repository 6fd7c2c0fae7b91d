"""word2vec as a LightningModule: the compiled kernel over chunks of the corpus, export.

Batches come from :mod:`embedlab.data.word2vec` (runs of whole sentences); each training
step hands one to the kernel (:mod:`embedlab.training.word2vec_kernel`), which draws the
examples and applies word2vec's SGD updates to both tables in place (manual optimization:
Lightning owns the loop, the step counter, the schedule and the checkpoints; the kernel is
the optimizer step). The step sizes are the optimizer's groups' current learning rates
(``embedding`` for the input table, 0 while it is frozen; ``tables`` for the output table),
which the schedule (``scheduler=word2vec``: linear decay) sets every step. The loss is
word2vec's ``-log s(u.v_target) - sum_k log s(-u.v_neg_k)`` (a negative equal to the target
is skipped, as gensim does). Logged: ``train/loss_step``/``train/loss_epoch`` and
``{val,test}/loss``, the mean loss per example (val/test: fixed draws, no updates). At the end
of training the input table is written to the run folder (:func:`export_vectors`):
``vectors.vec`` (word2vec text format), ``vectors.npy`` and ``vocab.txt`` (the words with
their training counts), most frequent first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from embedlab.tasks.base import EmbeddingTask
from embedlab.tasks.training_log import logs_this_step

if TYPE_CHECKING:
    from embedlab.training.word2vec_kernel import Sampling

log = logging.getLogger(__name__)

EXPORT_FILES = ("vectors.vec", "vectors.npy", "vocab.txt")


def _kernel() -> ModuleType:
    """The kernel module, imported when a word2vec run needs it (numba's import: 0.5 s)."""
    from embedlab.training import word2vec_kernel

    return word2vec_kernel


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
    line = " ".join(["%s", *["%.6g"] * matrix.shape[1]]) + "\n"  # one format a row: 1.8x a join
    with open(folder / "vectors.vec", "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {matrix.shape[1]}\n")
        f.writelines(line % (w, *row) for w, row in zip(words, matrix.tolist(), strict=True))
    return [folder / name for name in EXPORT_FILES]


class Word2VecTask(EmbeddingTask):
    """Trains skip-gram / CBOW with the kernel; ``examples_seen`` counts training words."""

    def __init__(
        self,
        model: nn.Module,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        vocab: list[str] | None = None,
        counts: torch.Tensor | None = None,
        sampling: Sampling | None = None,
        export: bool = True,
        **plumbing: Any,
    ) -> None:
        super().__init__(model, optimizer_cfg, scheduler_cfg, **plumbing)
        self.automatic_optimization = False  # the kernel updates the tables itself
        self.vocab = vocab or []
        self.counts = counts
        self.sampling = sampling
        self.export = export
        self.eval_sums: dict[str, list[float]] = {}

    def other_tables(self) -> list[nn.Module]:
        # the output table is a second embedding table: its own group (its learning rate)
        return [self.model.output]

    def _run(self, batch: dict[str, Any], mode: int, lr_in: float = 0.0, lr_out: float = 0.0):
        if self.sampling is None:
            raise RuntimeError("Word2VecTask needs the datamodule's sampling tables")
        return _kernel().run(
            self.sampling,
            self.model.embedding.weight,
            self.model.output.weight,
            batch["ids"],
            batch["bounds"],
            batch["seed"],
            lr_in,
            lr_out,
            mode,
            cbow=self.model.cbow,
            cbow_mean=self.model.bag_mean,
        )

    def _learning_rates(self) -> tuple[float, float]:
        """(input table, output table): the current lr of their optimizer groups."""
        lrs = {g.get("name"): g["lr"] for g in self.optimizers().param_groups}
        frozen = not self.model.embedding.weight.requires_grad
        return (0.0 if frozen else lrs.get("embedding", 0.0)), lrs["tables"]

    def on_train_start(self) -> None:
        super().on_train_start()
        _kernel().set_threads(torch.get_num_threads())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.examples_seen += int(batch["words"])
        lr_in, lr_out = self._learning_rates()
        total, n = self._run(batch, _kernel().TRAIN, lr_in, lr_out)
        emb = self.model.embedding
        if emb.max_norm is not None and len(batch["ids"]):  # as a lookup would renormalise
            rows = torch.unique(torch.from_numpy(batch["ids"]).long())
            with torch.no_grad():
                torch.embedding_renorm_(emb.weight, rows, emb.max_norm, emb.norm_type)
        # no gradients: the step only advances Lightning's counter (global_step, checkpoints)
        self.optimizers().step()
        self.step_schedules("step")
        if n:
            self.train_loss.add(torch.tensor(total, dtype=torch.float64), n)
        if logs_this_step(self):
            self._log_train("step")

    def _eval_step(self, split: str, batch: dict[str, Any]) -> None:
        total, n = self._run(batch, _kernel().LOSS)
        sums = self.eval_sums.setdefault(split, [0.0, 0.0])
        sums[0] += total
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
