"""Initializers for the embedding table: one registered function each.

An initializer fills a ``(num_embeddings, dim)`` weight in place. Its arguments are a small
dataclass, so ``embedding.init_args`` is validated (unknown keys, types) before any work.
Adding one: a function + args dataclass registered here, and ``configs/embedding/<name>.yaml``.
The registry also carries the checks of the ``embedding`` group as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from embedlab.registry import Registry


def nccl_ddp(trainer: Any) -> bool:
    """Whether a trainer config runs DDP over NCCL (GPUs), which has no sparse all-reduce."""
    if "ddp" not in str(trainer.strategy) or trainer.get("process_group_backend") == "gloo":
        return False
    accelerator = str(trainer.accelerator)
    if accelerator == "auto":
        return torch.cuda.is_available()
    return accelerator in ("gpu", "cuda")


def _embedding_problems(cfg: Any) -> list[str]:
    """Checks of ``embedding`` whatever its initializer (run by ``config.validate``)."""
    emb = cfg.embedding
    problems = []
    if emb.dim is None and cfg.pretrained.source == "none":
        problems.append(
            "embedding.dim: null takes the pretrained vectors' dim; without pretrained vectors set a dim"
        )
    if emb.dim is not None and emb.dim < 1:
        problems.append(f"embedding.dim: must be >= 1, got {emb.dim}")
    if emb.max_norm is not None and emb.max_norm <= 0:
        problems.append(f"embedding.max_norm: must be > 0, got {emb.max_norm}")
    if emb.per_sample_weights and emb.mode != "sum":
        problems.append("embedding.per_sample_weights: needs embedding.mode=sum (PyTorch's rule)")
    if emb.lr is not None and emb.lr <= 0:
        problems.append(f"embedding.lr: must be > 0, got {emb.lr}")
    if emb.unfreeze_at_epoch is not None:
        if emb.freeze:
            problems.append(
                "embedding.unfreeze_at_epoch: contradicts embedding.freeze=true (frozen for good); set one"
            )
        if emb.unfreeze_at_epoch < 1:
            problems.append(
                f"embedding.unfreeze_at_epoch: must be >= 1 (0 = never frozen), got {emb.unfreeze_at_epoch}"
            )
    problems += _channel_problems(cfg)
    if emb.sparse and nccl_ddp(cfg.trainer):
        problems.append(
            "embedding.sparse: DDP on GPUs (NCCL) cannot all-reduce sparse gradients; set "
            "embedding.sparse=false, or keep them with trainer.process_group_backend=gloo (slower)"
        )
    if emb.sparse and cfg.trainer.gradient_clip_val:
        problems.append(
            "trainer.gradient_clip_val: gradient clipping does not support the sparse gradients of embedding.sparse=true"
        )
    return problems


def _channel_problems(cfg: Any) -> list[str]:
    """``embedding.channels``: 1, or 2 (static + fine-tuned) on a model that reads sequences."""
    from embedlab.models import MODELS

    emb = cfg.embedding
    if emb.channels not in (1, 2):
        return [
            f"embedding.channels: 1 (one table) or 2 (a static and a fine-tuned copy), got {emb.channels}"
        ]
    if emb.channels == 1:
        return []
    problems = []
    name = cfg.model.get("name")
    if name in MODELS and not MODELS.get(name).sequence:
        takers = ", ".join(n for n in MODELS.names() if MODELS.get(n).sequence)
        problems.append(
            f"embedding.channels: 2 needs a model that reads token sequences ({takers}); "
            f"model={name} does not (set embedding.channels=1)"
        )
    if emb.freeze:
        problems.append(
            "embedding.freeze: true would freeze both channels of embedding.channels=2 (one static, "
            "one fine-tuned); set embedding.freeze=false, or embedding.channels=1 for a static table"
        )
    return problems


# embedding.init -> fills a weight in place; the schema describes embedding.init_args
INITIALIZERS: Registry = Registry(
    "initializer", "embedding.init", node="embedding.init_args", check=_embedding_problems
)


@dataclass
class NoArgs:
    pass


@dataclass
class NormalArgs:
    mean: float = 0.0
    std: float = 1.0  # PyTorch's own nn.Embedding default is N(0, 1)


@dataclass
class UniformArgs:
    a: float = -0.1  # lower bound
    b: float = 0.1  # upper bound
    scale_by_dim: bool = False  # use [a/dim, b/dim] (fastText's U(-1/dim, 1/dim) with a=-1, b=1)


@dataclass
class ConstantArgs:
    value: float = 0.0


@dataclass
class XavierArgs:
    gain: float = 1.0


@dataclass
class KaimingArgs:
    a: float = 0.0  # negative slope of the rectifier after this layer (leaky_relu)
    mode: str = "fan_in"  # fan_in | fan_out
    nonlinearity: str = "leaky_relu"  # relu | leaky_relu | linear | tanh | ...


@dataclass
class OrthogonalArgs:
    gain: float = 1.0


@dataclass
class TruncNormalArgs:
    mean: float = 0.0
    std: float = 0.02
    a: float = -2.0  # lower cut, absolute value (not in stds), as torch.nn.init.trunc_normal_
    b: float = 2.0  # upper cut


@INITIALIZERS.register("normal", NormalArgs)
def normal(weight: torch.Tensor, mean: float, std: float) -> None:
    nn.init.normal_(weight, mean=mean, std=std)


@INITIALIZERS.register("uniform", UniformArgs)
def uniform(weight: torch.Tensor, a: float, b: float, scale_by_dim: bool) -> None:
    if scale_by_dim:
        a, b = a / weight.shape[1], b / weight.shape[1]
    nn.init.uniform_(weight, a=a, b=b)


@INITIALIZERS.register("constant", ConstantArgs)
def constant(weight: torch.Tensor, value: float) -> None:
    nn.init.constant_(weight, value)


@INITIALIZERS.register("zeros", NoArgs)
def zeros(weight: torch.Tensor) -> None:
    nn.init.zeros_(weight)


@INITIALIZERS.register("xavier_uniform", XavierArgs)
def xavier_uniform(weight: torch.Tensor, gain: float) -> None:
    nn.init.xavier_uniform_(weight, gain=gain)


@INITIALIZERS.register("xavier_normal", XavierArgs)
def xavier_normal(weight: torch.Tensor, gain: float) -> None:
    nn.init.xavier_normal_(weight, gain=gain)


@INITIALIZERS.register("kaiming_uniform", KaimingArgs)
def kaiming_uniform(weight: torch.Tensor, a: float, mode: str, nonlinearity: str) -> None:
    nn.init.kaiming_uniform_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("kaiming_normal", KaimingArgs)
def kaiming_normal(weight: torch.Tensor, a: float, mode: str, nonlinearity: str) -> None:
    nn.init.kaiming_normal_(weight, a=a, mode=mode, nonlinearity=nonlinearity)


@INITIALIZERS.register("orthogonal", OrthogonalArgs)
def orthogonal(weight: torch.Tensor, gain: float) -> None:
    nn.init.orthogonal_(weight, gain=gain)


@INITIALIZERS.register("trunc_normal", TruncNormalArgs)
def trunc_normal(weight: torch.Tensor, mean: float, std: float, a: float, b: float) -> None:
    nn.init.trunc_normal_(weight, mean=mean, std=std, a=a, b=b)


def initialize(weight: torch.Tensor, name: str, args: dict | None = None) -> torch.Tensor:
    """Fill ``weight`` in place with the registered initializer ``name`` and return it."""
    fn = INITIALIZERS.get(name)
    with torch.no_grad():
        fn(weight, **INITIALIZERS.build_args(name, args))
    return weight


def xavier_bound(num_embeddings: int, dim: int, gain: float = 1.0) -> float:
    """gain * sqrt(6 / (fan_in + fan_out)) for a (num_embeddings, dim) table (fan_in = dim)."""
    return gain * math.sqrt(6.0 / (num_embeddings + dim))
