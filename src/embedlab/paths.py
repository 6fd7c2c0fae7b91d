"""Where the shipped Hydra configs live (an installed wheel or a source checkout)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The ``configs/`` folder: inside the installed package, else the checkout's top level."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parents[1] / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"embedlab's configs/ not found next to {here} or in the source tree")
