"""The wheel ships the configs: build it, install it elsewhere, compose from the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

COMPOSE = """
from embedlab.config import compose_config  # registers the schema, composes the shipped configs
from embedlab.paths import config_dir
cfg = compose_config(["embedding=orthogonal"])
print(config_dir())
print(cfg.embedding.init, cfg.model.name)
"""


def test_wheel_contains_configs_and_composes_when_installed(tmp_path: Path):
    pytest.importorskip("hatchling")
    dist = tmp_path / "dist"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("embedlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "embedlab/configs/train.yaml" in names
    assert "embedlab/configs/embedding/xavier_uniform.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    # the Optuna sweeper, in Hydra's plugin namespace package (which has no __init__.py)
    assert "hydra_plugins/embedlab_optuna_sweeper/optuna_sweeper.py" in names
    assert "hydra_plugins/__init__.py" not in names

    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    # run from an empty folder, the installed copy first on the path
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", COMPOSE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    where, choice = out.stdout.strip().splitlines()[-2:]
    assert Path(where) == site / "embedlab" / "configs"
    assert choice == "orthogonal boe"
