"""Small building blocks shared by the models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedlab.data.types import IGNORE
from embedlab.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def valid_choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    """``str(value)`` when it is one of ``choices``, else a ConfigError naming ``key``.

    For models built directly (not from a validated config, whose enums check the same)."""
    value = str(value)
    if value not in choices:
        raise ConfigError(
            [f"{key}: {value!r} is not a valid choice; choose one of {list(choices)}"]
        )
    return value


def activation(name: str) -> nn.Module:
    """A new activation module by name (``model.activation``)."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"model.activation: {name!r} is not a valid choice; choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with ``rand_like(x) >= p`` instead of ``bernoulli_``.

    Same distribution, scaling and module state; on CPU torch's ``bernoulli_`` dominated the
    cost: forward + backward 296 us for 256 x 100 and 12.1 ms for 32 x 128 x 256, against
    96 us and 4.0 ms with a uniform draw (2 threads, ``scripts/bench_bag_step.py`` has the
    first). Other devices keep torch's kernel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        if self.p == 1.0:
            return x * 0.0
        mask = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        if self.inplace:
            return x.mul_(mask)
        return x * mask


class LockedDropout(nn.Module):
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, shared over time.

    ``x`` is (B, T, C); the (B, 1, C) mask drops the same units at every step, as AWD-LSTM
    does between its layers. Identity in eval mode or with ``p`` 0.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = torch.rand_like(x[:, :1]).ge_(self.p).mul_(1.0 / (1.0 - self.p))  # (B, 1, C)
        return x * mask


def dropout(p: float, variational: bool) -> nn.Module:
    """Dropout on (B, T, C) activations: per element, or one mask per sequence (variational)."""
    return LockedDropout(p) if variational else Dropout(p)


def summed_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy (nats) of (..., V) ``logits``; IGNORE targets skipped."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
