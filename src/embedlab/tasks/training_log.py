"""What the tasks share to log training values cheaply: sums per logging window and epoch."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class WindowSums(nn.Module):
    """Running sums of a training quantity and its count, since the last log and over the epoch.

    A training step only adds to one small buffer (no host sync, no ``self.log``); the task
    takes the mean every ``trainer.log_every_n_steps`` steps and at the end of the epoch.
    Calling ``self.log`` and a metric collection's ``forward`` every step cost 3.6 ms of a
    4.3 ms bag-of-embeddings step (64 texts).
    """

    def __init__(self) -> None:
        super().__init__()
        # [window total, window count, epoch total before the window, its count]; follows the
        # module's device. A step adds to the window only (one op, or a kernel's two adds in
        # place: :attr:`window`); taking folds the window into the epoch.
        self.register_buffer("sums", torch.zeros(4, dtype=torch.float64), persistent=False)

    @property
    def window(self) -> torch.Tensor:
        """``[total, count]`` of the window, a view to add to in place."""
        return self.sums[:2]

    def add(self, total: torch.Tensor, count: int) -> None:
        self.sums[0] += total.detach()
        self.sums[1] += count

    def take(self, when: str) -> torch.Tensor | None:
        """The mean over the window (``"step"``) or the epoch (``"epoch"``), None when empty.

        Taking resets the window; taking the epoch resets both.
        """
        self.sums[2:] += self.sums[:2]
        i = 0 if when == "step" else 2
        total, count = self.sums[i], self.sums[i + 1]
        mean = (total / count).float() if count > 0 else None
        self.sums[:2] = 0
        if when == "epoch":
            self.sums.zero_()
        return mean


def logs_this_step(module: L.LightningModule) -> bool:
    """Whether Lightning's loggers write at this training step (every ``log_every_n_steps``)."""
    every = module.trainer.log_every_n_steps if module._trainer is not None else 1
    return (module.global_step + 1) % max(every, 1) == 0
