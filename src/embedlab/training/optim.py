"""Optimizers and learning-rate schedules from config, with embedding parameter groups.

The embedding table gets its own parameter group (own ``embedding.lr`` when fine-tuning,
no weight decay); frozen parameters are left out of the optimizer entirely.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from embedlab.registry import Registry, check_kwargs

OPTIMIZERS: Registry[type[torch.optim.Optimizer]] = Registry("optimizer", "optimizer.name")
for _name, _cls in {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "rmsprop": torch.optim.RMSprop,
}.items():
    OPTIMIZERS.register(_name)(_cls)

SCHEDULERS: Registry = Registry("scheduler", "scheduler.name")


def optimizer_problems(cfg: Any) -> list[str]:
    return check_kwargs("optimizer.kwargs", OPTIMIZERS.get(cfg.name), dict(cfg.kwargs))


def param_groups(
    model: nn.Module, cfg: Any, embedding: nn.Module | None, embedding_lr: float | None
) -> list[dict]:
    """Trainable parameters split into the embedding group and the rest.

    Frozen parameters (``requires_grad`` false) are still registered in a group when the
    embedding may be unfrozen later, so the optimizer picks them up once they get gradients.
    """
    emb_params = list(embedding.parameters()) if embedding is not None else []
    emb_ids = {id(p) for p in emb_params}
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
    if emb_params:
        groups.append(
            {
                "params": emb_params,
                "weight_decay": 0.0,
                "lr": embedding_lr or cfg.lr,
                "name": "embedding",
            }
        )
    return [g for g in groups if g["params"]]


def build_optimizer(groups: list[dict], cfg: Any) -> torch.optim.Optimizer:
    cls = OPTIMIZERS.get(cfg.name)
    return cls(groups, lr=cfg.lr, **dict(cfg.kwargs))


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


def scheduler_problems(cfg: Any) -> list[str]:
    fn = SCHEDULERS.get(cfg.name)
    problems = check_kwargs("scheduler.kwargs", fn, dict(cfg.kwargs))
    return [p for p in problems if ".t:" not in p and ".total:" not in p]


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_steps: int) -> dict | None:
    """A LambdaLR with linear warmup then the named schedule, as a Lightning scheduler dict.

    ``total_steps`` counts scheduler steps: optimizer steps with ``interval: step``, epochs
    with ``interval: epoch``.
    """
    if cfg.name == "none" and cfg.warmup_steps == 0:
        return None
    fn = SCHEDULERS.get(cfg.name)
    kwargs = dict(cfg.kwargs)
    warmup = cfg.warmup_steps
    decay_steps = max(total_steps - warmup, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return fn(step - warmup, decay_steps, **kwargs)

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": sched, "interval": cfg.interval, "frequency": 1, "name": "lr"}
