"""``BagEmbedding``: ``nn.EmbeddingBag`` with a faster sparse backward for sum/mean bags.

The table's gradient of a sum/mean bag is the bag's output gradient copied to each of its
tokens (times 1/len for mean, times the token's weight with ``per_sample_weights``). Torch's
sparse ``embedding_bag`` backward builds it through ``offset2bag``, a padding mask with
``nonzero`` and a division per token: 0.95 ms for 256 texts x 35 ids x dim 100 on 2 threads,
where one ``index_select`` and one multiply take 0.25 ms (``scripts/bench_bag_step.py``). The
forward is torch's own ``embedding_bag``. Everything else (dense gradients, ``mode="max"``,
``max_norm``, ``scale_grad_by_freq``, 2-D inputs, trainable ``per_sample_weights``) takes
torch's path unchanged. The gradient is the same sparse COO tensor (uncoalesced, one row per
token), so optimizers, gradient accumulation and DDP see what they saw before.

Fused update: where an optimizer takes the table's gradient in its compact form (the bag
gradients, :class:`BagGradient`; row-wise Adagrad does, see
:func:`embedlab.training.optim.fuse_table_update`), the backward hands it to
``BagEmbedding.fused_update``, which updates the table in place, and the table gets no
``.grad`` (as FBGEMM's embedding tables with a fused optimizer). The (tokens x dim) gradient
is then never built: it was read and written five times per update and was half of a MR
step. ``BagEmbedding.last_gradient`` keeps the latest one for callbacks (gradient histograms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BagGradient:
    """The gradient of a sum/mean bag's table, compactly: the bags' output gradients and
    which token of which bag looked up which row (what the backward's sparse tensor is made of).

    ``lengths``: tokens per bag; ``scale``: (B, 1) 1/size of mean bags, else None;
    ``weights``: per-token weights or None; ``keep``: False for padding tokens (no gradient),
    or None when there are none.
    """

    grad: torch.Tensor  # (B, D) gradient of the bags' outputs
    ids: torch.Tensor  # (T,) the rows looked up, bag after bag
    lengths: torch.Tensor  # (B,)
    weights: torch.Tensor | None
    scale: torch.Tensor | None
    keep: torch.Tensor | None

    def to_sparse(self, shape: torch.Size) -> torch.Tensor:
        """The table's gradient as torch's sparse backward makes it: uncoalesced COO, a row a token."""
        grad = self.grad if self.scale is None else self.grad * self.scale
        bag_of = torch.repeat_interleave(
            torch.arange(grad.shape[0], device=self.ids.device), self.lengths
        )
        values = grad.index_select(0, bag_of)  # (T, D): each token gets its bag's gradient
        if self.weights is not None:
            values.mul_(self.weights.unsqueeze(1))
        rows = self.ids
        if self.keep is not None:  # padding tokens get no gradient
            where = self.keep.nonzero().squeeze(1)
            rows, values = rows.index_select(0, where), values.index_select(0, where)
        return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape, check_invariants=False)


class _SparseBag(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        weight: torch.Tensor,
        ids: torch.Tensor,
        offsets: torch.Tensor,
        per_sample_weights: torch.Tensor | None,
        mode: str,
        padding_idx: int | None,
        owner: BagEmbedding,
    ) -> torch.Tensor:
        lengths = torch.diff(offsets, append=offsets.new_tensor([ids.numel()]))  # tokens per bag
        sizes, keep = lengths, None
        if padding_idx is not None:
            keep = ids != padding_idx
            if bool(keep.all()):
                keep = None  # bags rarely hold <pad>: skip torch's slower padding_idx kernel
            elif mode == "mean":  # padding tokens do not count
                bag_of = torch.repeat_interleave(
                    torch.arange(lengths.numel(), device=ids.device), lengths
                )
                sizes = torch.zeros_like(lengths).index_add_(0, bag_of, keep.to(sizes.dtype))
        # a sum bag divided by its size: torch's mean kernel took 147 us where sum takes 92
        out = F.embedding_bag(
            ids,
            weight,
            offsets,
            mode="sum",
            per_sample_weights=per_sample_weights,
            padding_idx=None if keep is None else padding_idx,
        )
        scale = None
        if mode == "mean":
            scale = sizes.clamp(min=1).to(out.dtype).reciprocal_().unsqueeze(1)
            out = out.mul_(scale)
        ctx.save_for_backward(ids, lengths, per_sample_weights, scale, keep)
        ctx.shape, ctx.owner, ctx.update = weight.shape, owner, owner.fused_update
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        ids, lengths, weights, scale, keep = ctx.saved_tensors
        bag = BagGradient(grad, ids, lengths, weights, scale, keep)
        if ctx.update is None:
            table_grad = bag.to_sparse(ctx.shape)
        else:  # the optimizer updates the table now; no .grad
            ctx.owner.last_gradient = bag
            ctx.update(ctx.owner.weight, bag)
            table_grad = None
        return table_grad, None, None, None, None, None, None


class BagEmbedding(nn.EmbeddingBag):
    """``nn.EmbeddingBag`` (same parameters, state dict and forward) with a faster sparse
    backward for sum/mean bags of flat ids + offsets (module docstring)."""

    # set by fuse_table_update for a training run: updates the table from a BagGradient
    fused_update: Callable[[torch.Tensor, BagGradient], None] | None = None
    last_gradient: BagGradient | None = None  # the latest fused backward's gradient

    def __getstate__(self) -> dict[str, Any]:
        # a copy (deepcopy, pickle) is not updated by this run's optimizer: that would update
        # the original's table (or a copy of it) from the copy's backward
        state = self.__dict__.copy()
        state.pop("fused_update", None)
        state.pop("last_gradient", None)
        return state

    def forward(  # type: ignore[override]
        self,
        input: torch.Tensor,
        offsets: torch.Tensor | None = None,
        per_sample_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        fast = (
            self.sparse
            and self.weight.requires_grad
            and torch.is_grad_enabled()
            and self.mode in ("sum", "mean")
            and input.dim() == 1
            and offsets is not None
            and not self.include_last_offset
            and self.max_norm is None
            and not self.scale_grad_by_freq
            and (per_sample_weights is None or not per_sample_weights.requires_grad)
        )
        if not fast:
            return super().forward(input, offsets, per_sample_weights)
        return _SparseBag.apply(
            self.weight, input, offsets, per_sample_weights, self.mode, self.padding_idx, self
        )
