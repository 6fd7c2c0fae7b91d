"""Sampling continuations from a language model, shared by every ``task=lm`` model."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


@torch.no_grad()
def sample_tokens(
    next_logits: Callable[[torch.Tensor], torch.Tensor],  # (B, T) ids -> (B, V) next-token logits
    prompt: torch.Tensor,  # (B, T0) token ids
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
    banned_ids: list[int] | None = None,
) -> torch.Tensor:
    """Sample ``max_new_tokens`` continuations; returns (B, T0 + new) ids.

    ``temperature`` 0 is greedy; ``top_k`` keeps the k likeliest tokens; ``generator``
    makes sampling repeatable; rows that produced ``stop_id`` keep emitting it;
    ``banned_ids`` (e.g. <pad>) are never sampled.
    """
    ids = prompt
    done = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = next_logits(ids)  # (B, V)
        if banned_ids:
            logits[:, banned_ids] = float("-inf")
        if temperature <= 0:
            nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature
            if top_k is not None and top_k > 0:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)  # (B, V)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        if stop_id is not None:
            nxt = torch.where(done[:, None], torch.full_like(nxt, stop_id), nxt)
            done |= nxt[:, 0] == stop_id
        ids = torch.cat([ids, nxt], dim=1)  # (B, T+1)
        if stop_id is not None and bool(done.all()):
            break
    return ids
