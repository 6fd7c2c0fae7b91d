"""A training run that SIGKILLs itself at a given step (``python -m tests.killed_run OUT ...``).

The ``kill`` callback is a registry entry like any other (``callbacks.kill.at_step``), so the
run's saved config names it and a resumed run validates; at_step -1 leaves it off.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from embedlab.callbacks import CALLBACKS, CallbackSpec

BASE = ["data.num_train=1200", "data.num_val=300", "data.num_test=300", "trainer.max_epochs=3"]


@dataclass
class KillArgs:
    at_step: int = -1  # SIGKILL this process when training reaches this optimizer step


class Kill(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.at_step:
            os.kill(os.getpid(), signal.SIGKILL)


def register() -> None:
    if "kill" not in CALLBACKS:
        CALLBACKS.register("kill", KillArgs)(
            CallbackSpec(lambda s, cfg, out: Kill(s.at_step) if s.at_step >= 0 else None)
        )


def main() -> None:
    from embedlab.config import validate
    from embedlab.train import train
    from tests.conftest import QUIET, compose_cfg

    register()
    torch.set_num_threads(1)
    cfg = compose_cfg(QUIET + BASE + sys.argv[2:], Path(sys.argv[1]))
    print(json.dumps(train(validate(cfg))))


if __name__ == "__main__":
    main()
