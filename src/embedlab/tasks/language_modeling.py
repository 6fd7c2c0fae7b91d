"""Language modelling as a LightningModule: next-token cross-entropy and perplexity.

Batches are ``{"ids": (B, T), "targets": (B, T)}`` with target -100 at pads (ignored).
Logged: ``train/loss_step`` (mean over the last ``trainer.log_every_n_steps`` steps, at the
steps the loggers write) and ``train/loss_epoch``, ``{val,test}/loss`` (mean cross-entropy per
predicted token, nats),
``{val,test}/ppl`` = exp of that mean over the *whole* split (summed, not averaged over
batches) and ``val/ppl_best``. Each validation epoch a few
seeded samples go to TensorBoard's TEXT tab under ``samples``.

A recurrent model (``model.recurrent``, e.g. ``LSTMLM``) computes its own summed NLL from a
state; with ``carry_state`` (``data.chunking=rows``: batch i+1 continues batch i row by row)
the task keeps each split's state from one batch to the next (detached: truncated BPTT) and
resets it at the start of every training epoch and of every validation / test pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchmetrics import MinMetric, SumMetric

from embedlab.data.types import IGNORE
from embedlab.models.layers import summed_nll
from embedlab.tasks.base import EmbeddingTask


class LanguageModelingTask(EmbeddingTask):
    """Owns the loss, perplexity, optimizers and sample logging; the model is a plain nn.Module.

    ``examples_seen`` counts predicted tokens, so the Throughput callback's
    ``examples_per_second`` in metrics.json (``perf/examples_per_second`` in TensorBoard) is
    training tokens per second for this task.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer_cfg: Any,
        scheduler_cfg: Any,
        generate_cfg: Any = None,
        decode: Callable[[list[int]], str] | None = None,
        prompt_ids: list[int] | None = None,
        banned_ids: list[int] | None = None,
        stop_id: int | None = None,
        carry_state: bool = False,
        **plumbing: Any,  # EmbeddingTask's: embedding, embedding_lr, unfreeze_later, ...
    ) -> None:
        super().__init__(model, optimizer_cfg, scheduler_cfg, **plumbing)
        self.generate_cfg = generate_cfg
        self.decode = decode
        self.prompt_ids = prompt_ids or []
        self.banned_ids = banned_ids or []
        self.stop_id = stop_id
        self.carry_state = carry_state and getattr(model, "recurrent", False)
        self.state: dict[str, Any] = {}  # split -> the recurrent state the last batch left
        self.nll = {s: SumMetric() for s in ("val", "test")}  # summed nats per split
        self.count = {s: SumMetric() for s in ("val", "test")}  # predicted tokens per split
        # registered as submodules so they follow the device and sync under DDP
        self.val_nll, self.val_count = self.nll["val"], self.count["val"]
        self.test_nll, self.test_count = self.nll["test"], self.count["test"]
        self.val_ppl_best = MinMetric()
        self.val_ppl_best.persistent(True)  # in checkpoints: a resumed run knows its best

    def _nll(self, batch: dict[str, torch.Tensor], split: str) -> tuple[torch.Tensor, int]:
        """Summed NLL (nats) of the batch's targets and how many tokens it predicts."""
        ids, targets = batch["ids"], batch["targets"]  # (B, T), (B, T)
        if getattr(self.model, "recurrent", False):
            total, state = self.model.nll(ids, targets, self.state.get(split))
            if self.carry_state:
                self.state[split] = state  # detached by the model: truncated BPTT
        else:
            total = summed_nll(self.model(ids), targets)  # logits (B, T, V)
        return total, int((targets != IGNORE).sum())

    def _reset_state(self, split: str) -> None:
        self.state.pop(split, None)

    def on_train_epoch_start(self) -> None:
        self._reset_state("train")

    def on_validation_epoch_start(self) -> None:
        self._reset_state("val")

    def on_test_epoch_start(self) -> None:
        self._reset_state("test")

    # ------------------------------------------------------------------ train
    def train_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        total, n = self._nll(batch, "train")
        self.pending.append((total.detach(), n))
        return total / max(n, 1)

    def record_train(self, pending: list[Any]) -> None:
        totals, counts = zip(*pending, strict=True)
        self.train_loss.add(torch.stack(totals).sum(), sum(counts))
        self.examples_seen += sum(counts)

    # ------------------------------------------------------------------ eval
    def _eval_step(self, split: str, batch: dict[str, torch.Tensor]) -> None:
        total, n = self._nll(batch, split)
        self.nll[split].update(total.detach())
        self.count[split].update(torch.tensor(float(n), device=total.device))

    def _eval_end(self, split: str) -> float:
        nll, count = float(self.nll[split].compute()), float(self.count[split].compute())
        self.nll[split].reset()
        self.count[split].reset()
        loss = nll / max(count, 1.0)
        ppl = math.exp(min(loss, 50.0))
        # nll and count are summed over every rank: the values are equal on all of them
        self.log(f"{split}/loss", loss, sync_dist=True)
        self.log(f"{split}/ppl", ppl, prog_bar=True, sync_dist=True)
        return ppl

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        ppl = self._eval_end("val")
        if not self.trainer.sanity_checking:
            self.val_ppl_best.update(torch.tensor(ppl))
            self.log("val/ppl_best", self.val_ppl_best.compute(), prog_bar=True, sync_dist=True)
            self._log_samples()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ------------------------------------------------------------------ samples
    def samples(self) -> list[str]:
        """``generate.num_samples`` seeded samples continuing the prompt, decoded."""
        g = self.generate_cfg
        if g is None or g.num_samples <= 0 or self.decode is None or not self.prompt_ids:
            return []
        gen = torch.Generator(device=self.device).manual_seed(int(g.seed))
        prompt = torch.tensor(
            [self.prompt_ids] * g.num_samples, dtype=torch.int64, device=self.device
        )
        out = self.model.generate(
            prompt,
            g.max_new_tokens,
            temperature=g.temperature,
            top_k=g.top_k,
            generator=gen,
            stop_id=self.stop_id,
            banned_ids=self.banned_ids,
        )
        texts = []
        for row in out.tolist():
            if self.stop_id is not None and self.stop_id in row[len(self.prompt_ids) :]:
                row = row[: row.index(self.stop_id, len(self.prompt_ids)) + 1]
            texts.append(self.decode(row))
        return texts

    def _log_samples(self) -> None:
        if not self.trainer.is_global_zero:
            return
        from embedlab.tensorboard import writer_of

        writer = writer_of(self.loggers)
        if writer is None:
            return
        texts = self.samples()
        if texts:
            g = self.generate_cfg
            head = f"temperature {g.temperature}, top_k {g.top_k}, seed {g.seed}, epoch {self.current_epoch}\n\n"
            body = "\n\n".join(f"{i + 1}. {t}" for i, t in enumerate(texts))
            writer.add_text("samples", head + body, self.global_step)
