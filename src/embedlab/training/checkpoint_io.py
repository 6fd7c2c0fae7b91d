"""Checkpoints written straight to a temporary file beside the target, then renamed.

Lightning's ``TorchCheckpointIO`` makes a save atomic by serialising the whole checkpoint into
an in-memory buffer and copying it out (``getvalue()``): for the 830k x 100 table of the 1M-text
benchmark that held two extra copies of a 340 MB checkpoint, +220 MB of peak RSS
(``scripts/bench_fasttext.py --datasets synthetic``). Here ``torch.save`` streams into
``<name>.tmp<random>`` in the target's folder and ``os.replace`` renames it into place, which
is as atomic on a local filesystem. Loads memory-map local checkpoints (``torch.load(mmap=True)``),
so a tensor is read from the file when it is used: testing the best checkpoint of the 1M-text
benchmark read a second 332 MB table beside the live one, the run's peak RSS (the module takes
the mapped tensors when testing: ``EmbeddingTask.load_state_dict``). Remote paths
(``s3://``...) keep Lightning's way.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from embedlab.utils import replaced_whole


def local_path(path: Any) -> Path | None:
    """``path`` on the local filesystem (``file://`` or a plain path), or None (``s3://``...)."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        return None
    return Path(text.removeprefix("file://"))


class LocalCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that saves local checkpoints without an in-memory copy and loads
    them memory-mapped."""

    def load_checkpoint(
        self,
        path: Any,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        local = local_path(path)
        if local is None or not local.is_file() or not zipfile.is_zipfile(local):
            return super().load_checkpoint(path, map_location, weights_only)  # its errors
        return torch.load(local, map_location=map_location, weights_only=weights_only, mmap=True)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        target = local_path(path)
        if target is None:
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError("storage_options are not supported for local checkpoints")
        with replaced_whole(target) as f:
            torch.save(checkpoint, f)
