"""Models: plain ``nn.Module``s that know nothing of Lightning, Hydra or files.

``MODELS`` maps ``model.name`` to a :class:`ModelSpec`: how to build the model from its
config, a built embedding layer and the number of outputs, and which batch layout it eats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from embedlab.models.bag_of_embeddings import BagOfEmbeddings
from embedlab.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[Any, nn.Module, int], nn.Module]  # (model_cfg, embedding, num_outputs)
    layout: str  # "bag" (flat ids + offsets) or "padded" ((B, T) ids + mask)
    bag_embedding: bool  # whether the factory builds nn.EmbeddingBag (else nn.Embedding)


MODELS: Registry[ModelSpec] = Registry("model", "model.name")


def _build_boe(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return BagOfEmbeddings(
        embedding,
        num_outputs,
        hidden_dims=list(cfg.hidden_dims),
        activation=cfg.activation,
        dropout=cfg.dropout,
    )


MODELS.register("boe")(ModelSpec(_build_boe, layout="bag", bag_embedding=True))

__all__ = ["MODELS", "BagOfEmbeddings", "ModelSpec"]
