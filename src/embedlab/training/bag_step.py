"""The bag model's whole training step in one compiled call (``optimizer.fuse_train_step``).

With the table's update already inside its backward (:func:`~embedlab.training.optim.
fuse_table_update`), what was left of a step of ``model=boe`` on short texts was eager
PyTorch's fixed cost: ~30 small ops (the bag's bookkeeping, dropout, the linear layer, the
cross-entropy and their backward), autograd's engine and the head's optimizer step, ~1 ms
for a batch of 256 MPQA texts whose table update takes 0.1 ms. fastText spends ~0.5 us a
text. :class:`FusedBagStep` makes the step the ``nn.Module`` and autograd make (forward,
loss, backward, the table's row-wise Adagrad update, the head's Adagrad update) in C
(``native/bag_update.c``, ``bag_train_steps_f32``), for one batch or, with
:meth:`FusedBagStep.steps`, for all of a Lightning step's batches in one call (to the bit the
steps of one call each: Python's trip per update had become ~100-250 us of a 0.2-0.6 ms
update). The ``nn.Module`` stays the model: validation, testing and every other configuration
run it; this is a kernel for one shape of it, like cuDNN's LSTM for ``nn.LSTM``, and its tests
compare it with the autograd step on the same batches.

The dropout mask is drawn from torch's generator as ``layers.Dropout`` draws it (one
``uniform_`` of the pooled bags' shape), so a fused run draws the same random numbers as the
unfused one and ends on the same weights up to float rounding. That draw (torch's mt19937) is
70 us of a ~290 us MPQA step; a cheaper generator of our own would make runs that differ from
the module's, and every recipe's accuracy would have to be measured again.

It applies (:func:`fuse_bag_step`) where the step is exactly that: ``BagOfEmbeddings`` with a
linear head (no hidden layers) on a fused sparse ``BagEmbedding`` (sum or mean, float32, on
the CPU), ``CrossEntropyLoss`` (mean, no class weights; label smoothing is fine), the head
trained by torch's ``Adagrad`` (any lr, lr decay, weight decay, eps) and the table by
:class:`~embedlab.training.optim.RowWiseAdagrad`, float32 precision, and no callback that
hooks the backward. A batch it cannot take (other keys, ids or labels out of range, a table
frozen for now) takes autograd's path, which reports what is wrong with it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from embedlab.embeddings.bag import BagEmbedding, BagGradient
from embedlab.models.bag_of_embeddings import BagOfEmbeddings
from embedlab.models.layers import Dropout
from embedlab.training.optim import RowWiseAdagrad

INPUTS = frozenset({"ids", "offsets", "labels"})  # + per_sample_weights


@functools.cache
def _kernels() -> tuple[Any, Any] | None:
    """``(bag_train_steps_f32, check_batches)`` from the compiled library, or None."""
    from embedlab.training import native

    lib = native.bag_update()
    return None if lib is None else (lib.bag_train_steps_f32, lib.check_batches)


class FusedBagStep:
    """One training step of a linear-head ``BagOfEmbeddings`` in one compiled call (module
    docstring). Call it on a batch: ``(loss, preds)`` after updating the model, or None where
    the batch takes autograd's path."""

    def __init__(
        self,
        model: BagOfEmbeddings,
        loss_fn: nn.CrossEntropyLoss,
        table_optimizer: RowWiseAdagrad,
        head_optimizer: torch.optim.Adagrad,
    ) -> None:
        self.embedding: BagEmbedding = model.embedding
        self.linear: nn.Linear = model.head[-1]
        self.dropout: Dropout | None = model.head[0] if len(model.head) == 2 else None
        self.smoothing = float(loss_fn.label_smoothing)
        self.table_optimizer, self.head_optimizer = table_optimizer, head_optimizer
        self.kernel, self.check = _kernels()  # type: ignore[misc]
        self.pad = -1 if self.embedding.padding_idx is None else int(self.embedding.padding_idx)
        self._groups = {
            id(p): g for g in head_optimizer.param_groups for p in g["params"]
        }  # head parameter -> its group

    def __call__(
        self,
        batch: dict[str, torch.Tensor],
        confusion: torch.Tensor | None = None,
        totals: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Update the model from ``batch``: ``(loss, preds)``, or None (autograd's path). The
        tallies ``confusion`` and ``totals`` are added to where given, as :meth:`steps` does."""
        result = self.steps([batch], confusion, totals)
        return None if result is None else (result[0][0], result[1])

    def steps(
        self,
        batches: list[dict[str, torch.Tensor]],
        confusion: torch.Tensor | None = None,
        totals: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Update the model from each of ``batches`` in turn, head included, in one compiled
        call (``bag_train_steps_f32``): the updates, and the random draws, of calling this
        object on each. ``(losses (K,), preds (all texts))``, or None where one of them takes
        autograd's path (then nothing was done, nothing drawn).

        The head's ``.grad`` is left None (an optimizer step after this one finds nothing to
        apply: Lightning's, which runs its hooks and counts the step); the last batch's table
        gradient is kept in the embedding's ``last_gradient`` (for the callbacks' histograms).

        Where given, the training log's tallies are added to in the same call: ``confusion``
        (contiguous int64, classes x classes: [label, prediction] += 1 a text) and ``totals``
        (contiguous float64 (2,): the summed loss of the texts, their count)."""
        tallies = self._tallies(confusion, totals)
        p = self._dropout_p()
        if p is None or not batches or not all(self._takes(batch) for batch in batches):
            return None
        table, table_group = self.embedding.weight, self.table_optimizer.param_groups[0]
        W, bias = self.linear.weight, self.linear.bias
        n_classes, (n_rows, dim) = W.shape[0], table.shape
        rows = [
            [
                b["ids"].data_ptr(),
                b["offsets"].data_ptr(),
                b["labels"].data_ptr(),
                b["per_sample_weights"].data_ptr() if "per_sample_weights" in b else 0,
                b["ids"].numel(),
                b["labels"].numel(),
            ]
            for b in batches
        ]
        table_of_batches = torch.tensor(rows, dtype=torch.int64)
        sizes = [row[5] for row in rows]  # texts a batch
        n_total, n_most = sum(sizes), max(sizes)
        head, states = [], []
        # W's settings and state, then the bias's (W's again where there is no bias: unread)
        for param in (W, bias if bias is not None else W):
            group, state = self._groups[id(param)], self.head_optimizer.state[param]
            head += [group["lr"], group["lr_decay"], group["eps"], group["weight_decay"]]
            states += [state["sum"].data_ptr(), state["step"].data_ptr()]
        head_settings = torch.tensor(head, dtype=torch.float64)
        mean = self.embedding.mode == "mean"
        losses, preds = torch.empty(len(batches)), torch.empty(n_total, dtype=torch.int64)
        scratch = [
            torch.empty(n_most, dim),  # pooled
            torch.empty(n_most, n_classes),  # logits
            torch.empty(n_most, dtype=torch.int64),  # lengths
            torch.empty(n_most) if mean else None,  # scale
            torch.empty(n_most, dim),  # grad_pooled
            torch.empty_like(W),  # grad_W
            None if bias is None else torch.empty_like(bias),
        ]
        sums = self.table_optimizer.row_sums(table)

        # checked before the draw: a batch autograd's path must report draws nothing
        if self.check(len(batches), table_of_batches.data_ptr(), n_classes, n_rows):
            return None
        # the draws of calling this object on each batch (torch's generator is serial: one
        # draw of all the bags equals the draws batch after batch; tested)
        uniform = torch.empty(n_total, dim).uniform_() if p > 0 else None
        last_n_pad = torch.zeros((), dtype=torch.int64)
        self.kernel(
            len(batches),
            table_of_batches.data_ptr(),
            dim,
            n_classes,
            n_rows,
            self.pad,
            mean,
            table.data_ptr(),
            sums.data_ptr(),
            table_group["lr"],
            table_group["eps"],
            None if uniform is None else uniform.data_ptr(),
            p,
            1.0 / (1.0 - p),  # as layers.Dropout: the float multiplier of mul_(1/(1-p))
            W.data_ptr(),
            None if bias is None else bias.data_ptr(),
            head_settings.data_ptr(),
            *states,
            self.smoothing,
            *(None if t is None else t.data_ptr() for t in scratch),
            losses.data_ptr(),
            preds.data_ptr(),
            *tallies,
            last_n_pad.data_ptr(),
        )
        # what the last batch's backward would leave: its bag gradient, as the module's
        # BagGradient
        last, n_last = batches[-1], sizes[-1]
        _, _, lengths, scale, grad, _, _ = scratch
        ids = last["ids"]
        keep = ids != self.pad if last_n_pad.item() else None
        self.embedding.last_gradient = BagGradient(
            grad[:n_last],
            ids,
            lengths[:n_last],
            last.get("per_sample_weights"),
            None if scale is None else scale[:n_last].unsqueeze(1),
            keep,
        )
        W.grad = None  # applied: an earlier autograd update's must not be applied again
        if bias is not None:
            bias.grad = None
        return losses, preds

    def _tallies(self, confusion: torch.Tensor | None, totals: torch.Tensor | None) -> list:
        """The tallies' addresses for the kernels (None where not given), checked: the kernels
        write into them unchecked."""
        classes = self.linear.weight.shape[0]
        out = []
        for tally, dtype, shape in (
            (confusion, torch.int64, (classes, classes)),
            (totals, torch.float64, (2,)),
        ):
            if tally is not None and not (
                tally.dtype == dtype
                and tuple(tally.shape) == shape
                and tally.is_contiguous()
                and tally.device.type == "cpu"
            ):
                raise ValueError(
                    f"a tally must be a contiguous CPU {dtype} tensor of shape {shape}"
                )
            out.append(None if tally is None else tally.data_ptr())
        return out

    def _dropout_p(self) -> float | None:
        """The dropout rate of this step (0: none), or None where this step cannot make it
        (a rate of 1: ``layers.Dropout``'s zeros without a draw)."""
        dropout = self.dropout
        p = float(dropout.p) if dropout is not None and dropout.training else 0.0
        return None if p >= 1.0 else p

    def _takes(self, batch: dict[str, torch.Tensor]) -> bool:
        """Whether ``batch`` is one this step can make (else autograd's path reports it)."""
        if not INPUTS <= batch.keys() <= INPUTS | {"per_sample_weights"}:
            return False
        if not self.embedding.weight.requires_grad:  # frozen for now (unfreeze_at_epoch)
            return False
        ids, offsets, labels = batch["ids"], batch["offsets"], batch["labels"]
        weights = batch.get("per_sample_weights")
        return (
            ids.dtype == offsets.dtype == labels.dtype == torch.int64
            and ids.dim() == offsets.dim() == labels.dim() == 1
            and ids.is_contiguous()
            and offsets.is_contiguous()
            and labels.is_contiguous()
            and offsets.numel() == labels.numel() > 0
            and (weights is None or (weights.dtype == torch.float32 and weights.is_contiguous()))
            and (weights is None or self.embedding.mode == "sum")  # else torch refuses them
        )


def fuse_bag_step(model: Any, loss_fn: Any, optimizer: Any, trainer: Any) -> FusedBagStep | None:
    """A :class:`FusedBagStep` for ``model`` trained with ``loss_fn`` and ``optimizer`` (a
    :class:`~embedlab.training.optim.CompositeOptimizer` or one optimizer), or None where the
    step is not the one it makes (module docstring). Needs the table's update fused already."""
    if not (type(model) is BagOfEmbeddings and isinstance(model.embedding, BagEmbedding)):
        return None
    embedding = model.embedding
    update = embedding.fused_update
    table_optimizer = getattr(update, "__self__", None)
    head = list(model.head)
    if not (
        isinstance(table_optimizer, RowWiseAdagrad)
        and embedding.weight.dtype == torch.float32
        and embedding.weight.is_contiguous()
        and embedding.mode in ("sum", "mean")
        and len(table_optimizer.param_groups) == 1
        and 1 <= len(head) <= 2
        and type(head[-1]) is nn.Linear
        and (len(head) == 1 or type(head[0]) is Dropout)
        and type(loss_fn) is nn.CrossEntropyLoss
        and loss_fn.weight is None
        and loss_fn.reduction == "mean"
        and str(getattr(trainer, "precision", "32-true")) in ("32-true", "32")
        and not _hooks_backward(trainer)
        and _kernels() is not None
    ):
        return None
    linear = head[-1]
    head_params = [p for p in (linear.weight, linear.bias) if p is not None]
    if any(
        p.dtype != torch.float32 or not p.is_contiguous() or not p.requires_grad
        for p in head_params
    ):
        return None
    for member in getattr(optimizer, "optimizers", [optimizer]):
        if type(member) is not torch.optim.Adagrad:
            continue
        owned = {id(p): g for g in member.param_groups for p in g["params"]}
        if all(id(p) in owned for p in head_params) and all(
            not owned[id(p)][flag] for p in head_params for flag in ("maximize", "differentiable")
        ):
            states = [member.state[p] for p in head_params]
            if all(
                s["sum"].dtype == torch.float32 and s["step"].dtype == torch.float32 for s in states
            ):
                return FusedBagStep(model, loss_fn, table_optimizer, member)
    return None


def _hooks_backward(trainer: Any) -> bool:
    """Whether a callback hooks the backward (the fused step has none to call)."""
    import lightning as L

    return any(
        getattr(type(cb), hook) is not getattr(L.Callback, hook)
        for cb in getattr(trainer, "callbacks", [])
        for hook in ("on_before_backward", "on_after_backward")
    )
