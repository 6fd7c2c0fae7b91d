"""Shared fixtures: compose the real config tree with Hydra's compose API into ``tmp_path``.

``make_cfg(*overrides)`` returns a composed, *unvalidated* DictConfig whose paths point into
the test's ``tmp_path`` and whose trainer is forced tiny and quiet; ``tiny=False`` keeps the
shipped sizes. ``SHARED_DATA`` is ``../shared/data`` when present (tests skip without it).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from omegaconf import DictConfig

from embedlab.config import compose_config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

# quiet, fast trainer settings every test run gets
QUIET = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.rich_progress=false",
]
# a small synthetic dataset: ~1 s per epoch on one core
TINY_DATA = ["data.num_train=1200", "data.num_val=300", "data.num_test=300", "trainer.max_epochs=2"]


def compose_cfg(overrides: list[str], out: Path) -> DictConfig:
    """Compose ``train.yaml`` with ``overrides``; point every path at ``out``."""
    paths = {"root_dir": out, "output_dir": out / "run", "log_dir": out / "logs"}
    paths |= {"cache_dir": out / "cache", "vector_cache": out / "vector_cache"}
    return compose_config(overrides, paths)


def compose_eval(overrides: list[str], out: Path) -> DictConfig:
    """Compose ``eval.yaml`` (embedlab-eval) with ``overrides``; outputs and cache in ``out``."""
    return compose_config(overrides, {"output_dir": out, "cache_dir": out / "cache"}, "eval")


def train_into(cfg: DictConfig, out: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``train(cfg)`` with its run folder at ``out``: its metrics and the state dict of its
    ``last.ckpt``."""
    from embedlab.train import train

    cfg.paths.output_dir = str(out)
    metrics = train(cfg)
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    return metrics, state["state_dict"]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# a two-job multirun of the console script on tiny data (sweep folder and root from the test)
TINY_SWEEP = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "data.num_train=600",
    "data.num_val=100",
    "data.num_test=100",
    "trainer.max_epochs=1",
    "callbacks=none",
]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(*overrides: str, tiny: bool = True) -> DictConfig:
        base = QUIET + (TINY_DATA if tiny else [])
        return compose_cfg(base + list(overrides), tmp_path)

    return _make


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with one torch intra-op thread (tiny models run faster that way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
