"""Optimizers and learning-rate schedules from config, with embedding parameter groups.

The embedding table gets its own parameter group (own ``embedding.lr`` when fine-tuning,
no weight decay); frozen parameters are left out of the optimizer entirely (a table that will
be unfrozen later is registered up front). A table with sparse gradients
(``embedding.sparse``) is trained by the sparse counterpart of the configured optimizer
(:data:`SPARSE_OPTIMIZERS`: ``SparseAdam`` for adam/adamw, :class:`RowWiseAdagrad` for adagrad,
plain SGD for sgd) beside the dense optimizer, through :class:`CompositeOptimizer`, so every
task that uses these builders gets it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from embedlab.registry import Registry, check_kwargs

if TYPE_CHECKING:
    from embedlab.embeddings.bag import BagGradient


def _optimizer_problems(cfg: Any) -> list[str]:
    """``optimizer.lr``, ``optimizer.kwargs`` against the class, a sparse table's counterpart."""
    opt = cfg.optimizer
    problems = [] if opt.lr > 0 else [f"optimizer.lr: must be > 0, got {opt.lr}"]
    if opt.name in OPTIMIZERS:
        problems += check_kwargs("optimizer.kwargs", OPTIMIZERS.get(opt.name), dict(opt.kwargs))
    if cfg.embedding.sparse and opt.name not in SPARSE_OPTIMIZERS:
        problems.append(
            f"embedding.sparse: optimizer {opt.name!r} cannot train sparse gradients; "
            f"use optimizer={'|'.join(SPARSE_OPTIMIZERS)} or embedding.sparse=false"
        )
    return problems


class Adadelta(torch.optim.Adadelta):
    """torch's Adadelta, each parameter's update one compiled pass (``optim_kernels``).

    Kim's CNN trains every parameter, its whole 300-d table included, with Adadelta, and
    torch's CPU step was most of a CNN-rand step (8.3x slower than the kernel; the figures are
    in ``optim_kernels``). State and checkpoints are torch's (``step``, ``square_avg``,
    ``acc_delta``) and load into either; values agree with torch's to float rounding.
    Parameters off the CPU, complex ones, non-contiguous state and the ``foreach``,
    ``capturable`` and ``differentiable`` modes go to torch's step.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        modes = ("foreach", "capturable", "differentiable")
        if any(g[m] for g in self.param_groups for m in modes) or not all(
            self._kernel_ready(p) for g in self.param_groups for p in g["params"]
        ):
            return super().step(closure)
        from embedlab.training.optim_kernels import adadelta_step

        loss = _closure_loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Adadelta does not support sparse gradients")
                state = self.state[p]
                if not state:  # as torch's: a scalar step count, two moments like p
                    wide = torch.get_default_dtype() == torch.float64
                    state["step"] = torch.zeros((), dtype=torch.float64 if wide else torch.float32)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                flat = p.detach().view(-1).numpy()
                scalar = flat.dtype.type
                rho = group["rho"]
                adadelta_step(
                    flat,
                    p.grad.detach().contiguous().view(-1).numpy(),
                    state["square_avg"].view(-1).numpy(),
                    state["acc_delta"].view(-1).numpy(),
                    scalar(group["lr"]),
                    scalar(rho),
                    scalar(1 - rho),
                    scalar(group["eps"]),
                    scalar(group["weight_decay"]),
                    scalar(-1.0 if group["maximize"] else 1.0),
                )
        return loss

    def _kernel_ready(self, p: torch.Tensor) -> bool:
        """Whether the kernel can update ``p`` and its state in place (one float dtype, CPU)."""
        state = self.state.get(p, {})
        tensors = [p, *(state[k] for k in ("square_avg", "acc_delta") if k in state)]
        return p.dtype in (torch.float32, torch.float64) and all(
            t.device.type == "cpu" and t.dtype == p.dtype and t.is_contiguous() for t in tensors
        )


# optimizer.name -> a torch.optim class (its sparse counterpart: SPARSE_OPTIMIZERS)
OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry(
    "optimizer", "optimizer.name", check=_optimizer_problems
)
for _name, _cls in {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "adadelta": Adadelta,
    "rmsprop": torch.optim.RMSprop,
}.items():
    OPTIMIZERS.register(_name)(_cls)


def _scheduler_problems(cfg: Any) -> list[str]:
    """``scheduler.kwargs`` against the schedule's arguments (``t``, ``total`` are embedlab's)."""
    sched = cfg.scheduler
    kwargs = dict(sched.kwargs)
    if sched.name not in SCHEDULERS:
        return []
    problems = check_kwargs("scheduler.kwargs", SCHEDULERS.get(sched.name), kwargs)
    problems += [
        f"scheduler.kwargs.{k}: set by embedlab, not by config"
        for k in ("t", "total")
        if k in kwargs
    ]
    if sched.warmup_steps < 0:
        problems.append(f"scheduler.warmup_steps: must be >= 0, got {sched.warmup_steps}")
    if sched.get("over") == "time" and not cfg.trainer.get("max_time"):
        problems.append(
            "scheduler.over: time runs the schedule over trainer.max_time, which is not set; "
            'set trainer.max_time (e.g. "00:00:30:00") or scheduler.over=steps'
        )
    return problems


# scheduler.name -> factor(t, total, **kwargs): the multiplier of the base lr after warmup
SCHEDULERS: Registry = Registry("scheduler", "scheduler.name", check=_scheduler_problems)


def _closure_loss(closure: Any) -> Any:
    """Run an optimizer's closure (forward + backward) with gradients on; its loss, or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class RowWiseAdagrad(torch.optim.Optimizer):
    """Adagrad with one squared-gradient accumulator per row (FBGEMM's row-wise Adagrad).

    For embedding tables with sparse gradients: a step touches only the rows in the batch, and
    the state is one float per row instead of one per weight (a 1M x 100 table keeps 4 MB of
    state, not 400 MB). Row ``i`` with gradient ``g`` is updated as ``sum_i += mean(g**2)``,
    ``w_i -= lr * g / (sqrt(sum_i) + eps)``. A sparse gradient is not coalesced: each
    occurrence of a row in the batch adds its own ``mean(g**2)``, as per-example updates
    would, which skips a sort (coalescing took 0.7 ms of a 2.1 ms step). Dense gradients are
    treated row by row. Kept here because torch has no row-wise Adagrad: torch's ``Adagrad``
    on a sparse table keeps a per-weight state and was 1.8x slower a step (256 texts x 36
    tokens x dim 100, 2 threads). A compiled loop over that (tokens x dim) gradient (numba)
    was measured and dropped: 2.08 vs 2.06 ms a MR step. What pays is not building it:
    :meth:`bag_step` updates a bag table from its bag gradients inside the backward
    (:func:`fuse_table_update`; the C kernel ``native/bag_update.c``).
    """

    def __init__(self, params: Any, lr: float = 0.1, eps: float = 1e-10) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:  # no gradient, or updated in its backward (bag_step)
                    continue
                acc = self.row_sums(p)
                grad = p.grad
                if grad.is_sparse:
                    self._sparse_update(p, grad, acc, lr, eps)
                else:
                    acc.add_(grad.pow(2).reshape(p.shape[0], -1).mean(1))
                    denom = acc.sqrt().add_(eps).view(-1, *([1] * (p.dim() - 1)))
                    p.addcdiv_(grad, denom, value=-lr)
        return loss

    @torch.no_grad()
    def bag_step(self, p: torch.Tensor, bag: BagGradient) -> None:
        """Update the table ``p`` now from its bag gradient (the fused update of
        :func:`fuse_table_update`), as :meth:`step` would from ``bag.to_sparse()``: one compiled
        pass (``native/bag_update.c``) where it can, torch's ops elsewhere."""
        group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
        acc = self.row_sums(p)
        kernel = _bag_kernel(p.dtype)
        grad, scale, weights = bag.grad, bag.scale, bag.weights
        if not (
            kernel is not None
            and p.is_cpu
            and p.is_contiguous()
            and p.dim() == 2
            and grad.dtype == p.dtype
            and (scale is None or scale.dtype == p.dtype)
            and (weights is None or weights.dtype == p.dtype)
            and bag.ids.dtype == bag.lengths.dtype == torch.int64
        ):
            self._sparse_update(p, bag.to_sparse(p.shape), acc, group["lr"], group["eps"])
            return
        grad, ids, lengths = grad.contiguous(), bag.ids.contiguous(), bag.lengths.contiguous()
        scale = None if scale is None else scale.contiguous()
        weights = None if weights is None else weights.contiguous()
        keep = None if bag.keep is None else bag.keep.contiguous()
        kernel(
            grad.shape[0],
            grad.shape[1],
            grad.data_ptr(),
            None if scale is None else scale.data_ptr(),
            ids.data_ptr(),
            lengths.data_ptr(),
            None if weights is None else weights.data_ptr(),
            None if keep is None else keep.data_ptr(),
            p.data_ptr(),
            acc.data_ptr(),
            group["lr"],
            group["eps"],
        )

    def row_sums(self, p: torch.Tensor) -> torch.Tensor:
        """The per-row squared-gradient sums of ``p`` (created at its first update)."""
        state = self.state[p]
        if not state:
            state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        return state["sum"]

    @staticmethod
    def _sparse_update(
        p: torch.Tensor, grad: torch.Tensor, acc: torch.Tensor, lr: float, eps: float
    ) -> None:
        rows, values = grad._indices()[0], grad._values().flatten(1)
        norms = torch.linalg.vector_norm(values, dim=1)
        acc.index_add_(0, rows, norms.square_().div_(values.shape[1]))
        scale = acc[rows].sqrt_().add_(eps).reciprocal_().mul_(-lr)
        p.view(p.shape[0], -1).index_add_(0, rows, values * scale.unsqueeze(1))


@functools.cache
def _bag_kernel(dtype: torch.dtype) -> Any:
    """The C kernel of :meth:`RowWiseAdagrad.bag_step` for ``dtype`` (float32/64), or None."""
    from embedlab.training import native

    suffix = {torch.float32: "f32", torch.float64: "f64"}.get(dtype)
    lib = native.bag_update() if suffix else None
    return None if lib is None else getattr(lib, f"bag_update_{suffix}")


def fuse_table_update(optimizer: torch.optim.Optimizer, embedding: Any, trainer: Any) -> bool:
    """Let the row-wise Adagrad that trains ``embedding``'s sparse bag table update it inside
    the backward, from the compact bag gradient (``BagEmbedding.fused_update``, the table then
    gets no ``.grad``). The same update as :meth:`RowWiseAdagrad.step`'s, but not where
    something must see the table's gradient before the step: gradient clipping (its norm),
    gradient accumulation, fp16's loss scaling and DDP's reduction (several processes).
    Whether it fused; :func:`unfuse_table_update` undoes it.
    """
    from embedlab.embeddings.bag import BagEmbedding

    if not isinstance(embedding, BagEmbedding) or not embedding.sparse:
        return False
    if (
        getattr(trainer, "gradient_clip_val", None)
        or (getattr(trainer, "accumulate_grad_batches", 1) or 1) > 1
        or str(getattr(trainer, "precision", "")) in ("16-mixed", "16")
        or (getattr(trainer, "world_size", 1) or 1) > 1
    ):
        return False
    members = getattr(optimizer, "optimizers", [optimizer])
    weight = embedding.weight
    for member in members:
        if isinstance(member, RowWiseAdagrad) and any(
            p is weight for g in member.param_groups for p in g["params"]
        ):
            if not weight.is_cpu or _bag_kernel(weight.dtype) is None:
                return False  # the update it would make is torch's: no faster than .grad's
            embedding.fused_update = member.bag_step
            return True
    return False


def unfuse_table_update(embedding: Any) -> None:
    """The table gets its gradient in ``.grad`` again (after a run's training)."""
    if hasattr(embedding, "fused_update"):
        embedding.fused_update = None
        embedding.last_gradient = None


def _sparse_adam(groups: list[dict], cfg: Any) -> torch.optim.Optimizer:
    betas = tuple(cfg.kwargs.get("betas", (0.9, 0.999)))
    eps = float(cfg.kwargs.get("eps", 1e-8))
    return torch.optim.SparseAdam(groups, lr=cfg.lr, betas=betas, eps=eps)


def _rowwise_adagrad(groups: list[dict], cfg: Any) -> torch.optim.Optimizer:
    return RowWiseAdagrad(groups, lr=cfg.lr, eps=float(cfg.kwargs.get("eps", 1e-10)))


def _sparse_sgd(groups: list[dict], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr)  # no momentum: torch's sparse SGD path


# The optimizer a table with sparse gradients gets, by ``optimizer.name``.
SPARSE_OPTIMIZERS: dict[str, Any] = {
    "adam": _sparse_adam,
    "adamw": _sparse_adam,
    "adagrad": _rowwise_adagrad,
    "sgd": _sparse_sgd,
}


def param_groups(
    model: nn.Module,
    cfg: Any,
    embedding: nn.Module | None,
    embedding_lr: float | None,
    unfreeze_later: bool = False,
    other_tables: Sequence[nn.Module] = (),
) -> list[dict]:
    """Trainable parameters split into the embedding group and the rest.

    A frozen embedding (``requires_grad`` false) is left out of the optimizer entirely,
    unless ``unfreeze_later``: then it is registered in its group from the start, so the
    optimizer updates it as soon as it gets gradients (optimizers skip params whose grad
    is None). The embedding group is marked ``sparse`` when the table makes sparse
    gradients; :func:`build_optimizer` gives that group a sparse-capable optimizer.
    ``other_tables`` (e.g. word2vec's output table) get a group of their own ("tables",
    ``optimizer.lr``, no weight decay), sparse like the embedding when they make sparse gradients.
    """
    emb_params = list(embedding.parameters()) if embedding is not None else []
    table_params = [p for t in other_tables for p in t.parameters() if p.requires_grad]
    emb_ids = {id(p) for p in emb_params + table_params}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if id(p) in emb_ids or not p.requires_grad:
            continue
        (
            no_decay if p.ndim < 2 or name.endswith(".bias") or "norm" in name.lower() else decay
        ).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    emb_params = [p for p in emb_params if p.requires_grad or unfreeze_later]
    if emb_params:
        sparse = bool(getattr(embedding, "sparse", False))
        groups.append(
            {
                "params": emb_params,
                "weight_decay": 0.0,
                "lr": embedding_lr or cfg.lr,
                "name": "embedding",
                "sparse": sparse,
            }
        )
    if table_params:
        groups.append(
            {
                "params": table_params,
                "weight_decay": 0.0,
                "name": "tables",
                "sparse": any(bool(getattr(t, "sparse", False)) for t in other_tables),
            }
        )
    return [g for g in groups if g["params"]]


class CompositeOptimizer(torch.optim.Optimizer):
    """Several optimizers stepped as one (e.g. Adam for dense params + SparseAdam for a sparse table).

    ``param_groups`` is the concatenation of the members' groups (the very same dicts), so an
    LR scheduler, Lightning's LearningRateMonitor and gradient zeroing see every group; the
    closure (forward + backward) runs once per step. Checkpoints hold each member's state.
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        # no super().__init__: the members own the parameters and their state
        self.optimizers = list(optimizers)
        self.defaults = dict(self.optimizers[0].defaults)
        self._optimizer_step_pre_hooks: dict = {}
        self._optimizer_step_post_hooks: dict = {}
        self._optimizer_state_dict_pre_hooks: dict = {}
        self._optimizer_state_dict_post_hooks: dict = {}
        self._optimizer_load_state_dict_pre_hooks: dict = {}
        self._optimizer_load_state_dict_post_hooks: dict = {}

    @property
    def param_groups(self) -> list[dict]:  # type: ignore[override]
        return [g for opt in self.optimizers for g in opt.param_groups]

    @param_groups.setter
    def param_groups(self, value: list[dict]) -> None:  # torch's base class never calls this here
        raise AttributeError(
            "CompositeOptimizer.param_groups is the members' groups; set them there"
        )

    @property
    def state(self) -> dict:  # type: ignore[override]
        merged: dict = {}
        for opt in self.optimizers:
            merged.update(opt.state)
        return merged

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = _closure_loss(closure)
        for opt in self.optimizers:
            # a member with no gradient (its update made in a fused call) would skip every
            # parameter: its step's dispatch alone was ~0.1 ms a member inside a bag run
            if any(p.grad is not None for g in opt.param_groups for p in g["params"]):
                opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        states = state_dict["optimizers"]
        if len(states) != len(self.optimizers):
            raise ValueError(
                f"checkpoint holds {len(states)} optimizers, this run builds {len(self.optimizers)}"
            )
        for opt, st in zip(self.optimizers, states, strict=True):
            opt.load_state_dict(st)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        raise NotImplementedError("add the group to one of CompositeOptimizer.optimizers")

    def __repr__(self) -> str:
        inner = ", ".join(type(o).__name__ for o in self.optimizers)
        return f"CompositeOptimizer({inner})"


def _fused(cls: type, groups: list[dict], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"fused": True}`` when ``cls`` has torch's fused kernel for every parameter in ``groups``.

    torch's default on CPU is its per-tensor loop, which allocates temporaries for every
    parameter at every step: AdamW over a transformer classifier's 2.5M parameters took 40 ms a
    step that way and 5 ms fused (1 thread; the same values to float rounding). A ``fused`` or
    ``foreach`` in ``optimizer.kwargs`` is the user's choice and is left alone.
    """
    if "fused" in kwargs or "foreach" in kwargs:
        return {}
    if "fused" not in inspect.signature(cls).parameters:
        return {}
    params = [p for g in groups for p in g["params"]]
    if not params or not all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    ):
        return {}
    return {"fused": True}


def build_optimizer(groups: list[dict], cfg: Any, fused: bool = True) -> torch.optim.Optimizer:
    """The configured optimizer over ``groups``; groups marked ``sparse`` get its sparse counterpart.

    With both kinds, the result is a :class:`CompositeOptimizer` (dense optimizer first). The
    dense one uses torch's fused kernel where it has one (see :func:`_fused`), unless ``fused``
    is false.
    """
    cls = OPTIMIZERS.get(cfg.name)
    dense = [g for g in groups if not g.get("sparse")]
    sparse = [g for g in groups if g.get("sparse")]
    optimizers: list[torch.optim.Optimizer] = []
    if dense:
        kwargs = dict(cfg.kwargs)
        kwargs.update(_fused(cls, dense, kwargs) if fused else {})
        optimizers.append(cls(dense, lr=cfg.lr, **kwargs))
    if sparse:
        if cfg.name not in SPARSE_OPTIMIZERS:
            raise ValueError(
                f"optimizer {cfg.name!r} cannot train a sparse table; use {sorted(SPARSE_OPTIMIZERS)}"
            )
        sparse = [{k: v for k, v in g.items() if k != "weight_decay"} for g in sparse]
        optimizers.append(SPARSE_OPTIMIZERS[cfg.name](sparse, cfg))
    if not optimizers:
        raise ValueError("no trainable parameters: everything is frozen")
    return optimizers[0] if len(optimizers) == 1 else CompositeOptimizer(optimizers)


# --------------------------------------------------------------------------- schedules
# Each returns a multiplier of the base lr for step t of total steps T (after warmup).


@SCHEDULERS.register("none")
def _constant(t: int, total: int, **_: Any) -> float:
    return 1.0


@SCHEDULERS.register("cosine")
def _cosine(t: int, total: int, min_factor: float = 0.0) -> float:
    progress = min(t / max(total, 1), 1.0)
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))


@SCHEDULERS.register("linear")
def _linear(t: int, total: int, min_factor: float = 0.0) -> float:
    progress = min(t / max(total, 1), 1.0)
    return 1.0 - (1.0 - min_factor) * progress


@SCHEDULERS.register("step")
def _step(t: int, total: int, step_size: int = 1000, gamma: float = 0.1) -> float:
    return gamma ** (t // max(step_size, 1))


def schedules(cfg: Any) -> bool:
    """Whether the ``scheduler`` config ``cfg`` changes the learning rate at all."""
    return not (cfg.name == "none" and cfg.warmup_steps == 0)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: Any,
    total_steps: int,
    time_spent: Callable[[], float] | None = None,
) -> dict | None:
    """A LambdaLR with linear warmup then the named schedule, as a Lightning scheduler dict.

    ``total_steps`` counts scheduler steps: optimizer steps with ``interval: step``, epochs
    with ``interval: epoch``. With ``time_spent`` (the fraction of the time budget used,
    ``scheduler.over=time``) the schedule is at whichever point is further along: step t of
    the decay, or that fraction of it.
    """
    if not schedules(cfg):
        return None
    fn = SCHEDULERS.get(cfg.name)
    kwargs = dict(cfg.kwargs)
    warmup = cfg.warmup_steps
    decay_steps = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = step - warmup
        if time_spent is not None:
            t = max(t, min(time_spent(), 1.0) * decay_steps)
        return fn(t, decay_steps, **kwargs)

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": sched, "interval": cfg.interval, "frequency": 1, "name": "lr"}


def _time_spent(trainer: Any) -> Callable[[], float]:
    """The fraction of ``trainer.max_time`` spent in training, by Lightning's own Timer (the
    clock that stops the run)."""
    from lightning.pytorch.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is None:
        raise ValueError("scheduler.over=time needs trainer.max_time (Lightning's Timer)")

    def spent() -> float:
        used = timer.time_elapsed("train")
        left = timer.time_remaining("train")
        return used / (used + left) if left is not None and used + left > 0 else 0.0

    return spent


def build_optimization(
    model: nn.Module,
    embedding: nn.Module | None,
    optimizer_cfg: Any,
    scheduler_cfg: Any,
    trainer: Any,
    embedding_lr: float | None = None,
    unfreeze_later: bool = False,
    other_tables: Sequence[nn.Module] = (),
) -> Any:
    """What a task's ``configure_optimizers`` returns: parameter groups, optimizer, schedule.

    A frozen table that a callback unfreezes later joins the optimizer up front; the
    schedule's length comes from ``trainer`` (optimizer updates: Lightning's steps times the
    batches a step trains, ``data.batches_per_step``; or epochs with ``interval: epoch``).
    """
    groups = param_groups(
        model, optimizer_cfg, embedding, embedding_lr, unfreeze_later, other_tables
    )
    # Lightning cannot clip the gradients of a fused optimizer under a gradient scaler (fp16)
    scaled = str(getattr(trainer, "precision", "")) in ("16-mixed", "16")
    clipped = bool(getattr(trainer, "gradient_clip_val", None))
    optimizer = build_optimizer(groups, optimizer_cfg, fused=not (scaled and clipped))
    if not schedules(scheduler_cfg):  # no length to count (and no train loader to load for it)
        return optimizer
    if scheduler_cfg.interval == "step":
        from embedlab.data.batching import batches_per_step

        steps = trainer.estimated_stepping_batches  # (sets up the train loader)
        total = round(steps * batches_per_step(getattr(trainer, "train_dataloader", None)))
    else:
        total = trainer.max_epochs
    time_spent = _time_spent(trainer) if scheduler_cfg.get("over") == "time" else None
    scheduler = build_scheduler(optimizer, scheduler_cfg, int(total), time_spent)
    return {"optimizer": optimizer, "lr_scheduler": scheduler}
