"""C kernels, compiled on first use with the system's C compiler, cached per user, verified.

Why C and not numba (which the word2vec and Adadelta kernels use): the fused bag-table update
(``bag_update.c``) runs in every bag-model run, and numba's import plus the load of its cached
kernel took 0.75 s and ~110 MB per process, more than MR trains for (0.6 s); this library
loads in about a millisecond.

The cache: ``$EMBEDLAB_KERNEL_DIR``, else ``$XDG_CACHE_HOME/embedlab/kernels``, else
``~/.cache/embedlab/kernels``. A library is ``<name>-<key>.so``, the key a hash of its source,
the compiler command and the platform, with its SHA-256 in ``<name>-<key>.so.sha256``. A
library whose bytes do not match that digest is rebuilt, and a cache directory that others can
write to is not used (a private temporary one is). Without a working C compiler (``$CC``, else
``cc``), :func:`load` returns None once warned, and callers take torch's path.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from embedlab.utils import replaced_whole

log = logging.getLogger(__name__)

SOURCES = Path(__file__).parent
FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")  # no -march=native: caches shared by nodes


def cache_dir() -> Path:
    """Where compiled kernels are kept (module docstring)."""
    if os.environ.get("EMBEDLAB_KERNEL_DIR"):
        return Path(os.environ["EMBEDLAB_KERNEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "embedlab" / "kernels"


def compiler() -> list[str] | None:
    """The C compiler command (``$CC``, else ``cc``), or None where there is none."""
    command = shlex.split(os.environ.get("CC", "cc"))
    return command if command and shutil.which(command[0]) else None


@cache
def load(name: str) -> ctypes.CDLL | None:
    """The compiled library of ``<name>.c`` (built into the cache on first use), or None
    where it cannot be built (logged once; callers fall back to torch's ops)."""
    cc = compiler()
    if cc is None:
        log.warning(
            "no C compiler (%s): embedlab's compiled kernels are off and %s takes torch's "
            "slower path; install one (e.g. gcc) or set CC",
            os.environ.get("CC", "cc"),
            name,
        )
        return None
    source = (SOURCES / f"{name}.c").read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, " ".join(cc + list(FLAGS)).encode(), platform.platform().encode()])
    ).hexdigest()[:16]
    directory = _private(cache_dir())
    path = directory / f"{name}-{key}.so"
    if not _verified(path):
        try:
            _build(cc, SOURCES / f"{name}.c", path)
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            log.warning("compiling %s.c failed (%s): torch's slower path", name, detail.strip())
            return None
    return ctypes.CDLL(str(path))


def _private(directory: Path) -> Path:
    """``directory`` (created 0700) if only this user can write to it, else a private temporary
    one: a library anyone can replace must not be loaded."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = directory.stat()
        if info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return directory
        log.warning(
            "%s can be written by others: kernels are built in a temporary directory", directory
        )
    except OSError as err:
        log.warning("kernel cache %s unusable (%s): a temporary directory instead", directory, err)
    return Path(tempfile.mkdtemp(prefix="embedlab-kernels-"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verified(path: Path) -> bool:
    """Whether ``path`` exists and its bytes match the digest written when it was built."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.exists():
        return False
    try:
        if sidecar.read_text().strip() == _digest(path):
            return True
    except OSError:
        pass
    log.warning("%s does not match its recorded digest: rebuilding it", path)
    return False


def _build(cc: list[str], source: Path, path: Path) -> None:
    """Compile ``source`` to ``path`` and record its digest; both written whole (renamed into
    place), so a concurrent run sees the old files or the new ones."""
    with replaced_whole(path) as f:  # the compiler writes the temporary file by its name
        subprocess.run(
            [*cc, *FLAGS, "-o", f.name, str(source), "-lm"],
            check=True,
            capture_output=True,
            text=True,
        )
        digest = _digest(Path(f.name))
    with replaced_whole(path.with_name(path.name + ".sha256"), "w") as f:
        f.write(digest + "\n")
    log.info("compiled %s", path)


def bag_update() -> ctypes.CDLL | None:
    """``bag_update.c`` with its functions' C signatures declared (here only), or None where it
    cannot be built: ``bag_update_f32/f64`` (the table's update from its bag gradients,
    ``RowWiseAdagrad.bag_step``), ``bag_train_steps_f32`` and ``check_batches`` (the bag
    model's whole step, one batch or several, ``training/bag_step.py``) and ``gather_segments_i64`` (a batch's texts,
    ``data.batching.gather_bags``)."""
    lib = load("bag_update")
    if lib is None:
        return None
    i64, f32, f64, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_double, ctypes.c_void_p
    for suffix, real in (("f32", f32), ("f64", f64)):
        update = getattr(lib, f"bag_update_{suffix}")
        update.argtypes = [i64] * 2 + [ptr] * 8 + [real] * 2
        update.restype = None
    steps = lib.bag_train_steps_f32
    steps.argtypes = [i64, ptr] + [i64] * 4 + [ctypes.c_int] + [ptr] * 2
    steps.argtypes += [f32] * 2 + [ptr, f32, f32] + [ptr] * 7 + [f32] + [ptr] * 12
    steps.restype = ctypes.c_int
    lib.check_batches.argtypes = [i64, ptr, i64, i64]
    lib.check_batches.restype = ctypes.c_int
    lib.gather_segments_i64.argtypes = [i64, ptr, ptr, i64, ptr, ptr]
    lib.gather_segments_i64.restype = ctypes.c_int
    return lib
