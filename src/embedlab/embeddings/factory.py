"""Build the embedding layer from config: nn.Embedding or nn.EmbeddingBag, initialized.

With ``embedding.channels=2`` the built table becomes the fine-tuned channel of a
:class:`~embedlab.embeddings.multichannel.MultiChannelEmbedding` beside a static copy of it.

The factory is the one place that turns ``embedding`` + ``pretrained`` config into a module;
models receive the built layer in their constructor and never look at config.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from embedlab.embeddings.bag import BagEmbedding
from embedlab.embeddings.init import initialize
from embedlab.embeddings.multichannel import MultiChannelEmbedding
from embedlab.embeddings.pretrained import AlignedVectors
from embedlab.errors import ConfigError


def build_embedding(
    cfg: Any,
    num_embeddings: int,
    pad_idx: int | None,
    bag: bool,
    pretrained: AlignedVectors | None = None,
) -> nn.Embedding | nn.EmbeddingBag | MultiChannelEmbedding:
    """Create the table for ``num_embeddings`` rows with ``cfg`` (an EmbeddingConfig).

    ``pad_idx`` is the <pad> id; it becomes ``padding_idx`` when ``cfg.padding_idx`` is set.
    With ``pretrained``, found rows are copied in and the others use ``cfg.init`` (the OOV
    initializer). ``freeze`` (or a pending ``unfreeze_at_epoch``) turns the gradient off.
    ``channels=2``: that table is the non-static channel, a copy of its start the static one.
    """
    padding_idx = pad_idx if cfg.padding_idx else None
    if pretrained is not None and cfg.dim is not None and cfg.dim != pretrained.dim:
        raise ConfigError(
            [
                f"embedding.dim: {cfg.dim} but the pretrained vectors ({pretrained.stats.get('file', 'source')}) "
                f"have dim {pretrained.dim}; set embedding.dim={pretrained.dim} or null"
            ]
        )
    dim = cfg.dim if pretrained is None else pretrained.dim
    if dim is None:
        raise ConfigError(["embedding.dim: null needs pretrained vectors to take the dim from"])
    common: dict[str, Any] = dict(
        num_embeddings=num_embeddings,
        embedding_dim=dim,
        padding_idx=padding_idx,
        max_norm=cfg.max_norm,
        norm_type=cfg.norm_type,
        scale_grad_by_freq=cfg.scale_grad_by_freq,
        sparse=bool(cfg.sparse),
    )
    if bag:
        layer: nn.Embedding | nn.EmbeddingBag = BagEmbedding(mode=str(cfg.mode), **common)
    else:
        layer = nn.Embedding(**common)
    initialize(layer.weight.data, cfg.init, cfg.init_args)
    if pretrained is not None:
        if pretrained.vectors.shape != layer.weight.shape:
            raise ValueError(
                f"pretrained matrix has shape {tuple(pretrained.vectors.shape)}, "
                f"the embedding table {tuple(layer.weight.shape)}"
            )
        with torch.no_grad():
            found = pretrained.found.to(torch.bool)
            layer.weight[found] = pretrained.vectors[found].to(layer.weight.dtype)
    if padding_idx is not None:
        with torch.no_grad():
            layer.weight[padding_idx].zero_()
    if cfg.freeze or cfg.unfreeze_at_epoch is not None:
        layer.weight.requires_grad_(False)
    if cfg.get("channels", 1) == 2:
        return MultiChannelEmbedding(layer)
    return layer
