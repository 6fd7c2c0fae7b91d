"""Models: plain ``nn.Module``s that know nothing of Lightning, Hydra or files.

``MODELS`` maps ``model.name`` to a :class:`ModelSpec`: how to build the model from its
config, a built embedding layer and the number of outputs, and which batch layout it eats:
"bag" (flat ids + offsets), "padded" ((B, T) ids + mask) or "causal" ((B, T) ids + next-token
targets, for ``task=lm``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from embedlab.models.bag_of_embeddings import BagOfEmbeddings
from embedlab.models.transformer import TransformerClassifier, TransformerEncoder, TransformerLM
from embedlab.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[[Any, nn.Module, int], nn.Module]  # (model_cfg, embedding, num_outputs)
    layout: str  # "bag" (flat ids + offsets), "padded" ((B, T) ids + mask) or "causal" (LM)
    bag_embedding: bool  # whether the factory builds nn.EmbeddingBag (else nn.Embedding)
    # what a null (``~``) in these keys means for this model, e.g. {"tokenizer.ngrams": 2}
    defaults: dict[str, Any] = field(default_factory=dict)


MODELS: Registry[ModelSpec] = Registry("model", "model.name")


def _build_boe(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return BagOfEmbeddings(
        embedding,
        num_outputs,
        hidden_dims=list(cfg.hidden_dims),
        activation=cfg.activation,
        dropout=cfg.dropout,
    )


# fastText's recipe: word bigrams and sparse updates of the rows a batch touches; batches of
# 256 texts keep the per-step overhead small (as accurate as 64 on the shared sets' val splits)
MODELS.register("boe")(
    ModelSpec(
        _build_boe,
        layout="bag",
        bag_embedding=True,
        defaults={"tokenizer.ngrams": 2, "embedding.sparse": True, "data.batch_size": 256},
    )
)
_SEQUENCE_DEFAULTS = {"tokenizer.ngrams": 1, "embedding.sparse": False, "data.batch_size": 64}


def _encoder(cfg: Any, embedding: nn.Module) -> TransformerEncoder:
    return TransformerEncoder(
        embedding,
        d_model=cfg.d_model,
        nhead=cfg.nhead,
        num_layers=cfg.num_layers,
        dim_feedforward=cfg.dim_feedforward,
        dropout=cfg.dropout,
        activation=cfg.activation,
        norm_first=cfg.norm_first,
        positional=cfg.positional,
        max_positions=cfg.max_positions,
        scale_embedding=cfg.scale_embedding,
    )


def _build_transformer(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    return TransformerClassifier(
        _encoder(cfg, embedding), num_outputs, pooling=cfg.pooling, dropout=cfg.dropout
    )


def _build_transformer_lm(cfg: Any, embedding: nn.Module, num_outputs: int) -> nn.Module:
    # num_outputs is the vocabulary size; the LM head reads it from the embedding
    return TransformerLM(_encoder(cfg, embedding), tie_weights=cfg.tie_weights)


MODELS.register("transformer")(
    ModelSpec(_build_transformer, "padded", bag_embedding=False, defaults=_SEQUENCE_DEFAULTS)
)
MODELS.register("transformer_lm")(
    ModelSpec(_build_transformer_lm, "causal", bag_embedding=False, defaults=_SEQUENCE_DEFAULTS)
)


__all__ = [
    "MODELS",
    "BagOfEmbeddings",
    "ModelSpec",
    "TransformerClassifier",
    "TransformerEncoder",
    "TransformerLM",
]
