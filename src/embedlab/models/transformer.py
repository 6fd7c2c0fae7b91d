"""Transformer encoder classifier and causal language model (nanoGPT-style, plain nn.Modules).

The token embedding is built by the embedding factory (so every initializer and pretrained
source applies) and handed in; when its width differs from ``d_model`` a bias-free Linear
projects it. Attention is ``F.scaled_dot_product_attention`` (PyTorch's fused / flash path):
the classifier passes a key-padding mask, the language model ``is_causal=True`` only (its
batches are right-padded, so a real position never sees a pad, and pad targets are ignored).

Classifier pooling:
- ``cls``: a learned vector (not a vocabulary token, so the tokenizer and the embedding table
  under study stay untouched) is prepended to every sequence after the embedding/projection;
  its final hidden state is pooled. It takes position 0, the tokens positions 1..T.
- ``mean`` / ``max``: over real tokens only (the padding mask excludes pads).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embedlab.errors import ConfigError
from embedlab.models.layers import Dropout, valid_choice
from embedlab.models.layers import activation as make_activation
from embedlab.models.sampling import sample_tokens

POSITIONAL = ("sinusoidal", "learned", "none")
POOLING = ("cls", "mean", "max")


# --------------------------------------------------------------------------- positions


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos positions (Vaswani et al. 2017), added to the token vectors."""

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        pos = torch.arange(max_positions, dtype=torch.float32)[:, None]  # (P, 1)
        freq = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        pe = torch.zeros(max_positions, d_model)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: d_model // 2])
        self.register_buffer("pe", pe, persistent=False)  # (P, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.size(1)].to(x.dtype)  # (B, T, C)


class LearnedPositions(nn.Module):
    """One trained vector per position (GPT-2 style)."""

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        self.wpe = nn.Embedding(max_positions, d_model)
        nn.init.normal_(self.wpe.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.size(1), device=x.device)  # (T,)
        return x + self.wpe(pos)  # (B, T, C)


def build_positions(kind: str, d_model: int, max_positions: int) -> nn.Module:
    kind = valid_choice("model.positional", kind, POSITIONAL)
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model, max_positions)
    if kind == "learned":
        return LearnedPositions(d_model, max_positions)
    return nn.Identity()


# --------------------------------------------------------------------------- blocks


class SelfAttention(nn.Module):
    """Multi-head self-attention on ``F.scaled_dot_product_attention``."""

    def __init__(self, d_model: int, nhead: int, dropout: float) -> None:
        super().__init__()
        if d_model % nhead:
            raise ConfigError([f"model.d_model: {d_model} is not divisible by model.nhead={nhead}"])
        self.nhead = nhead
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.resid_drop = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        attn_mask: torch.Tensor | None = None,  # (B, 1, 1, T) bool, true = may attend
        is_causal: bool = False,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.nhead, C // self.nhead).transpose(1, 2)  # (B, H, T, Ch)
        k = k.view(B, T, self.nhead, C // self.nhead).transpose(1, 2)  # (B, H, T, Ch)
        v = v.view(B, T, self.nhead, C // self.nhead).transpose(1, 2)  # (B, H, T, Ch)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )  # (B, H, T, Ch)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_drop(self.proj(y))  # (B, T, C)


class Block(nn.Module):
    """Attention + feed-forward with residuals; pre-norm (``norm_first``) or post-norm."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        activation: str,
        norm_first: bool,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, nhead, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            make_activation(str(activation)),
            nn.Linear(dim_feedforward, d_model),
            Dropout(dropout),
        )

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, is_causal: bool
    ) -> torch.Tensor:
        if self.norm_first:
            x = x + self.attn(self.norm1(x), attn_mask, is_causal)  # (B, T, C)
            return x + self.mlp(self.norm2(x))  # (B, T, C)
        x = self.norm1(x + self.attn(x, attn_mask, is_causal))  # (B, T, C)
        return self.norm2(x + self.mlp(x))  # (B, T, C)


class TransformerEncoder(nn.Module):
    """Token embedding (+ projection) + positions -> ``num_layers`` blocks -> final norm.

    ``prefix`` (optional, (C,)) is a learned vector prepended before the positions are added
    (the classifier's CLS vector).
    """

    def __init__(
        self,
        embedding: nn.Module,  # nn.Embedding or MultiChannelEmbedding: (B, T) -> (B, T, D)
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 256,
        dropout: float = 0.1,
        activation: str = "gelu",
        norm_first: bool = True,
        positional: str = "sinusoidal",
        max_positions: int = 512,
        scale_embedding: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(embedding, nn.EmbeddingBag) or not hasattr(embedding, "embedding_dim"):
            raise TypeError(
                "the transformer needs a sequence lookup (nn.Embedding, or the multichannel pair), "
                f"got {type(embedding).__name__}"
            )
        self.embedding = embedding
        self.d_model = d_model
        self.max_positions = max_positions
        # Vaswani et al. multiply token vectors by sqrt(d_model): without it a small-std init
        # (e.g. 0.02) is drowned by the unit-amplitude sinusoidal positions for many steps
        self.scale = math.sqrt(d_model) if scale_embedding else 1.0
        dim = embedding.embedding_dim
        self.proj = nn.Linear(dim, d_model, bias=False) if dim != d_model else nn.Identity()
        self.positions = build_positions(positional, d_model, max_positions)
        self.drop = Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, nhead, dim_feedforward, dropout, activation, norm_first)
            for _ in range(num_layers)
        )
        # pre-norm stacks end un-normalised; post-norm blocks already end in a LayerNorm
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(
        self,
        ids: torch.Tensor,  # (B, T) token ids
        mask: torch.Tensor | None = None,  # (B, T) bool, true at real tokens
        is_causal: bool = False,
        prefix: torch.Tensor | None = None,  # (C,) vector prepended at position 0
    ) -> torch.Tensor:
        x = self.proj(self.embedding(ids)) * self.scale  # (B, T, C)
        if prefix is not None:
            x = torch.cat([prefix.expand(x.size(0), 1, -1), x], dim=1)  # (B, 1+T, C)
            if mask is not None:
                mask = F.pad(mask, (1, 0), value=True)  # (B, 1+T)
        if x.size(1) > self.max_positions:
            raise ValueError(
                f"sequence of {x.size(1)} positions exceeds model.max_positions={self.max_positions}; "
                "raise it or truncate with data.max_len / data.block_size"
            )
        x = self.drop(self.positions(x))  # (B, T, C)
        attn_mask = None
        if mask is not None and not is_causal and not bool(mask.all()):
            attn_mask = mask[:, None, None, :]  # (B, 1, 1, T) keys a query may attend to
        for block in self.blocks:
            x = block(x, attn_mask, is_causal)  # (B, T, C)
        return self.norm(x)  # (B, T, C)


# --------------------------------------------------------------------------- heads


class TransformerClassifier(nn.Module):
    """Logits from a bidirectional encoder with ``cls``, ``mean`` or ``max`` pooling."""

    def __init__(
        self,
        encoder: TransformerEncoder,
        num_classes: int,
        pooling: str = "mean",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        pooling = valid_choice("model.pooling", pooling, POOLING)
        self.encoder = encoder
        self.pooling = pooling
        self.cls = nn.Parameter(torch.randn(encoder.d_model) * 0.02) if pooling == "cls" else None
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(encoder.d_model, num_classes))

    def forward(
        self,
        ids: torch.Tensor,  # (B, T)
        mask: torch.Tensor | None = None,  # (B, T) bool, true at real tokens
    ) -> torch.Tensor:
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)  # (B, T)
        else:
            # an empty text would leave a query row with nothing to attend to (NaN): keep slot 0
            mask = mask.clone()
            mask[:, 0] |= ~mask.any(dim=1)
        h = self.encoder(ids, mask, prefix=self.cls)  # (B, T, C) or (B, 1+T, C)
        if self.pooling == "cls":
            pooled = h[:, 0]  # (B, C)
        elif self.pooling == "mean":
            m = mask[:, :, None].to(h.dtype)  # (B, T, 1)
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, C)
        else:
            pooled = h.masked_fill(~mask[:, :, None], float("-inf")).amax(1)  # (B, C)
        return self.head(pooled)  # (B, K)


class TransformerLM(nn.Module):
    """Causal language model: next-token logits at every position, optional weight tying.

    Tying shares the input embedding matrix with the output layer (Press & Wolf 2017); it
    needs ``embedding.dim == d_model`` (no projection between them).
    """

    def __init__(self, encoder: TransformerEncoder, tie_weights: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        vocab = encoder.embedding.num_embeddings
        self.lm_head = nn.Linear(encoder.d_model, vocab, bias=False)
        if tie_weights:
            dim = encoder.embedding.embedding_dim
            if dim != encoder.d_model:
                raise ConfigError(
                    [
                        f"model.tie_weights: the embedding has dim {dim} but model.d_model is "
                        f"{encoder.d_model}; tying needs them equal (set embedding.dim/d_model alike "
                        "or model.tie_weights=false)"
                    ]
                )
            self.lm_head.weight = encoder.embedding.weight  # one storage, (V, C)
        self.tie_weights = tie_weights

    @property
    def block_size(self) -> int:
        return self.encoder.max_positions

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # ids (B, T); mask is accepted for a uniform batch interface but not needed: batches
        # are right-padded, causal attention never lets a real token see a later pad
        h = self.encoder(ids, is_causal=True)  # (B, T, C)
        return self.lm_head(h)  # (B, T, V)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, **sampling: Any) -> torch.Tensor:
        """Sample continuations of ``prompt`` (B, T0); see :func:`sample_tokens` for the options."""
        was_training = self.training
        self.eval()
        out = sample_tokens(
            lambda ids: self(ids[:, -self.block_size :])[:, -1, :],  # (B, V)
            prompt,
            max_new_tokens,
            **sampling,
        )
        self.train(was_training)
        return out
