"""Small helpers for the entry points."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from omegaconf import DictConfig, OmegaConf

_ORDER = (
    "data",
    "tokenizer",
    "embedding",
    "pretrained",
    "model",
    "task",
    "optimizer",
    "scheduler",
    "trainer",
    "logger",
    "callbacks",
    "paths",
)


def print_config_tree(cfg: DictConfig, resolve: bool = True) -> None:
    """Print the composed config as a Rich tree, groups first, then top-level keys."""
    import rich
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for group in [g for g in _ORDER if g in cfg] + [k for k in cfg if k not in _ORDER]:
        node = cfg[group]
        text = (
            OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, DictConfig) else str(node)
        )
        tree.add(f"[bold]{group}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rich.print(tree)


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``, 10 ms resolution); None elsewhere.

    The start-up figure in ``metrics.json`` (process start to the first training step), which
    counts the interpreter and every import, not only the code after ``main()``.
    """
    import os

    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return round(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)  # field 22
    except (OSError, ValueError, IndexError):
        return None


def _glibc() -> object | None:
    """glibc as a ctypes library, or None (another platform or C library, e.g. musl)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc has both)
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op elsewhere).

    glibc keeps freed memory mapped for reuse: after tokenizing 1M texts and building the n-gram
    table, 313 MB of freed heap stayed resident through training (RSS 1539 -> 1226 MB when
    trimmed, ``python scripts/bench_fasttext.py --datasets synthetic``).
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def reuse_freed_memory(mmap_below: int = 32 << 20, trim_above: int = 128 << 20) -> None:
    """Serve training's temporaries from freed heap instead of fresh pages (glibc's ``mallopt``).

    A bag update allocates and frees several (tokens x dim) temporaries, 3.7 MB each on MR;
    glibc gave each a fresh mapping or trimmed the heap top after it, so every update paid the
    page faults again. Allocations under ``mmap_below`` now come from the heap, which keeps up
    to ``trim_above`` free at its top: a 256-text MR update took 2.20-2.87 ms instead of
    2.64-3.31 ms (best of 12 epochs, three process pairs, 2 threads). Allocations above 32 MB
    (tables, checkpoints' buffers) are still mapped and unmapped on their own.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, mmap_below)
        libc.mallopt(M_TRIM_THRESHOLD, trim_above)


@contextmanager
def replaced_whole(target: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file to write ``target``'s new content into: a temporary file in its folder (``.name``
    is its path, for writers that take one), renamed onto it when the block ends (a reader sees
    the old file or the new one, never a part) and deleted when the block raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".tmp")
    os.close(fd)
    try:
        with open(tmp, mode) as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Lines Lightning prints into every run's console that say nothing about the run, matched by
# their text (every other warning and log line still prints):
NOISE_WARNINGS = (
    # Lightning 2.6's own pytree helper calling an API that torch deprecated: not the user's code
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # the tasks override transfer_batch_to_device on purpose (nothing to move on the CPU)
    r"You have overridden `transfer_batch_to_device` in `LightningModule`",
)
NOISE_LOGS = ("\N{ELECTRIC LIGHT BULB} Tip:",)  # Lightning's advertisement for its cloud logger


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE_LOGS)


def quiet_lightning_noise() -> None:
    """Keep :data:`NOISE_WARNINGS` and :data:`NOISE_LOGS` off the console (idempotent)."""
    for message in NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=message)  # replaces an equal filter
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
        logger.addFilter(_DropNoise())
