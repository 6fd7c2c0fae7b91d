"""LSTM language model (Zaremba et al. 2014; Merity et al. 2017's dropouts), a plain nn.Module.

The token embedding comes from the embedding factory (every initializer and pretrained source
applies). Then ``num_layers`` single-layer ``nn.LSTM`` s, so that dropout can sit between them:
``dropout_embedding`` on the looked-up vectors, ``dropout_hidden`` between layers and
``dropout_output`` before the softmax, each per element (standard) or with one mask per
sequence shared over time (``variational``, Gal & Ghahramani 2016). The output is a full
softmax (``nn.Linear``, optionally tied to the input embedding: Press & Wolf 2017, needs
``embedding.dim == hidden_size``) or ``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017: a
head over the ``cutoffs[0]`` likeliest tokens plus one entry per tail cluster, each tail
projected down by ``div_value``).

Truncated BPTT: :meth:`nll` takes the (h, c) state the previous block of the same rows left
and returns this block's, detached. The task carries it across batches when the data comes
as contiguous rows (``data.chunking=rows``) and resets it at every epoch start and for each
evaluation pass.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import torch
from torch import nn

from embedlab.data.types import IGNORE
from embedlab.errors import ConfigError
from embedlab.models.layers import dropout, summed_nll, valid_choice
from embedlab.models.sampling import sample_tokens

State = list[tuple[torch.Tensor, torch.Tensor]]  # (h, c) per layer, each (1, B, H)
SOFTMAX = ("full", "adaptive")


def cutoff_problems(cutoffs: list[int], vocab: int | None = None) -> list[str]:
    """Why ``model.cutoffs`` is not a valid split of the vocabulary (empty when it is)."""
    ok = bool(cutoffs) and all(c > 0 for c in cutoffs)
    ok = ok and all(a < b for a, b in pairwise(cutoffs))
    if not ok:
        return [f"model.cutoffs: must be positive and increasing, got {list(cutoffs)}"]
    if vocab is not None and cutoffs[-1] >= vocab:
        return [
            f"model.cutoffs: every cutoff must be < the vocabulary size {vocab}, got {list(cutoffs)}"
        ]
    return []


class LSTMLM(nn.Module):
    """Next-token model over (B, T) ids; state carried between calls by the caller."""

    recurrent = True  # the task passes state through nll() and carries it on contiguous rows

    def __init__(
        self,
        embedding: nn.Module,
        vocab_size: int,
        hidden_size: int = 200,
        num_layers: int = 2,
        dropout_embedding: float = 0.0,
        dropout_hidden: float = 0.0,
        dropout_output: float = 0.0,
        variational: bool = False,
        tie_weights: bool = False,
        softmax: str = "full",
        cutoffs: list[int] | None = None,
        div_value: float = 4.0,
    ) -> None:
        super().__init__()
        softmax = valid_choice("model.softmax", softmax, SOFTMAX)
        self.embedding = embedding
        dim = embedding.embedding_dim
        sizes = [dim] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(
            nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(num_layers)
        )
        self.drop_embedding = dropout(dropout_embedding, variational)
        self.drop_hidden = dropout(dropout_hidden, variational)
        self.drop_output = dropout(dropout_output, variational)
        self.hidden_size = hidden_size
        self.softmax = softmax
        if softmax == "adaptive":
            if tie_weights:
                raise ConfigError(
                    ["model.tie_weights: the adaptive softmax has no full output matrix to tie; "
                     "set model.tie_weights=false or model.softmax=full"]
                )  # fmt: skip
            problems = cutoff_problems(list(cutoffs or []), vocab_size)
            if problems:
                raise ConfigError(problems)
            self.head: nn.Module = nn.AdaptiveLogSoftmaxWithLoss(
                hidden_size, vocab_size, list(cutoffs or []), div_value=div_value, head_bias=True
            )  # a head bias, like the full softmax's: the unigram frequencies come for free
        else:
            self.head = nn.Linear(hidden_size, vocab_size)
            if tie_weights:
                if dim != hidden_size:
                    raise ConfigError(
                        [f"model.tie_weights: the embedding has dim {dim} but model.hidden_size "
                         f"is {hidden_size}; tying needs them equal (or model.tie_weights=false)"]
                    )  # fmt: skip
                self.head.weight = embedding.weight  # one storage, (V, H)
        self.tie_weights = tie_weights

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """(B, T) ids -> (B, T, H) top-layer outputs (after output dropout), new state."""
        if state is not None and state[0][0].size(1) != ids.size(0):
            state = None  # a batch of other rows: start afresh
        x = self.drop_embedding(self.embedding(ids))  # (B, T, E)
        new: State = []
        for i, lstm in enumerate(self.layers):
            if i > 0:
                x = self.drop_hidden(x)
            x, hc = lstm(x, None if state is None else state[i])  # (B, T, H)
            new.append(hc)
        return self.drop_output(x), new

    def nll(
        self, ids: torch.Tensor, targets: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Summed NLL (nats) of ``targets`` (B, T; -100 ignored) and the detached end state."""
        h, state = self(ids, state)
        h, targets = h.reshape(-1, self.hidden_size), targets.reshape(-1)  # (N, H), (N,)
        if self.softmax == "adaptive":
            keep = targets != IGNORE
            total = -self.head(h[keep], targets[keep]).output.sum()  # output: log p(target)
        else:
            total = summed_nll(self.head(h), targets)
        return total, [(hh.detach(), cc.detach()) for hh, cc in state]

    def logits(self, ids: torch.Tensor, state: State | None = None) -> torch.Tensor:
        """(B, T, V) next-token scores (log-probabilities under the adaptive softmax)."""
        h, _ = self(ids, state)
        if self.softmax == "adaptive":
            return self.head.log_prob(h.reshape(-1, self.hidden_size)).view(*h.shape[:2], -1)
        return self.head(h)

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, **sampling: Any) -> torch.Tensor:
        """Sample continuations of ``prompt`` (B, T0); see :func:`sample_tokens` for the options."""
        was_training = self.training
        self.eval()
        out = sample_tokens(
            lambda ids: self.logits(ids)[:, -1, :], prompt, max_new_tokens, **sampling
        )
        self.train(was_training)
        return out
