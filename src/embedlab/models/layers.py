"""Small building blocks shared by the models."""

from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    """A new activation module by name (``model.activation``)."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"model.activation: {name!r} is not a valid choice; choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()
