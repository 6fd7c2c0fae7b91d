"""Sweeps through the real ``embedlab-train -m`` CLI: job names, hparams, Optuna, failures,
the report and TensorBoard serving the sweep. One 2x2 grid sweep is shared by the module."""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import embedlab
from tests.conftest import QUIET, TINY_DATA

SRC = Path(embedlab.__file__).resolve().parents[1]
GRID = ["embedding=normal,xavier_uniform", "optimizer.lr=1e-3,1e-2"]


def run_cli(args: list[str], tmp: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``embedlab-train`` in a subprocess with this checkout's sources, outputs under ``tmp``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "EMBEDLAB_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "1",
    }
    env.pop("EMBEDLAB_SWEPT_KEYS", None)
    cmd = [sys.executable, "-m", "embedlab.train", *args, *QUIET, f"paths.root_dir={tmp}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp)


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("grid")
    sweep = tmp / "sweep"
    proc = run_cli(
        [
            "-m",
            *GRID,
            *TINY_DATA,
            f"hydra.sweep.dir={sweep}",
            # 2 Lightning steps (an epoch's 5 batches of 256 texts each): the lr monitor logs too
            "trainer.log_every_n_steps=1",
        ],
        tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def _job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())


def _hparams(run: Path) -> dict[str, object]:
    """The hparams a run's event file holds for TensorBoard's HPARAMS dashboard."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(run))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out: dict[str, object] = {}
    for key, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        out[key] = getattr(value, kind)
    return out


def test_grid_sweep_runs_are_named_by_what_differs(grid_sweep: Path):
    runs = _job_dirs(grid_sweep)
    names = [r.name for r in runs]
    assert names == [
        "0_embedding=normal,optimizer.lr=0.001",
        "1_embedding=normal,optimizer.lr=0.01",
        "2_embedding=xavier_uniform,optimizer.lr=0.001",
        "3_embedding=xavier_uniform,optimizer.lr=0.01",
    ]
    summary = json.loads((grid_sweep / "sweep_summary.json").read_text())
    assert summary["jobs"] == 4 and not summary["failed"]
    best: dict[tuple[str, float], float] = {}
    for run in runs:
        hp = _hparams(run)
        init = run.name.split("embedding=")[1].split(",")[0]
        lr = float(run.name.split("optimizer.lr=")[1])
        assert hp["embedding.init"] == init
        assert hp["optimizer.lr"] == pytest.approx(lr)
        metrics = json.loads((run / "metrics.json").read_text())
        # val/acc_best is the best of the val/acc points the run logged
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        logged = [e.value for e in acc.Scalars("val/acc")]
        assert metrics["val/acc_best"] == pytest.approx(max(logged), abs=1e-6)
        best[(init, lr)] = metrics["val/acc_best"]
    # 2 epochs of Adagrad: lr=1e-2 learns (6 classes: chance 1/6), 1e-3 barely moves
    for init in ("normal", "xavier_uniform"):
        assert best[(init, 1e-2)] > 1 / 6 + 0.1
        assert best[(init, 1e-2)] > best[(init, 1e-3)] + 0.05


def test_grid_sweep_logs_projector_drift_and_histograms(grid_sweep: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _job_dirs(grid_sweep)[0]
    pbtxt = (run / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding_start:00000"' in pbtxt
    assert "embedding_end" in pbtxt
    meta = next(run.glob("00000/embedding_start/metadata.tsv")).read_text().splitlines()
    assert meta[0] == "word\tfrequency"
    freqs = [int(line.split("\t")[1]) for line in meta[1:]]
    assert len(freqs) == 500 and freqs == sorted(freqs, reverse=True) and freqs[-1] > 0
    acc = EventAccumulator(str(run), size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"embedding/row_norm", "embedding/grad_row_norm", "embedding/drift_cosine"} <= set(
        tags["histograms"]
    )
    # every epoch's end (1 after the first epoch, 2 after the second); no step's besides, as an
    # epoch is one step (test_train: the steps' histograms where an epoch is longer)
    assert [h.step for h in acc.Histograms("embedding/row_norm")] == [1, 2]
    assert "embedding/most_moved/text_summary" in tags["tensors"]
    assert any(t.startswith("lr-") for t in tags["scalars"])
    drift = acc.Scalars("embedding/drift_cosine_mean")[0].value
    assert 0.0 < drift < 2.0


def test_report_of_grid_sweep(grid_sweep: Path, tmp_path: Path, capsys):
    from matplotlib.image import imread

    from embedlab.report import build_report, main

    report = build_report(grid_sweep, out_dir=tmp_path)
    values = [r.metrics["val/acc_best"] for r in report.runs]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert {r.label for r in report.runs} == {
        "embedding=normal,optimizer.lr=0.001",
        "embedding=normal,optimizer.lr=0.01",
        "embedding=xavier_uniform,optimizer.lr=0.001",
        "embedding=xavier_uniform,optimizer.lr=0.01",
    }
    assert all(len(r.curve) == 2 for r in report.runs)  # val/acc once per epoch
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [float(r["val/acc_best"]) for r in rows] == pytest.approx(values, abs=1e-6)
    assert all(
        int(r["num_parameters"]) > 0 and int(r["epochs"]) == 2 and float(r["wall_seconds"]) > 0
        for r in rows
    )
    for png in ("val_curves.png", "final_metric.png"):
        img = imread(tmp_path / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 0  # not a blank canvas
    md = (tmp_path / "report.md").read_text()
    assert md.count("| embedding=") == 4 and "val_curves.png" in md

    main([str(grid_sweep), "--out", str(tmp_path / "cli"), "--no-plots"])
    out = capsys.readouterr().out
    assert "val/acc_best" in out and "xavier_uniform" in out
    assert not (tmp_path / "cli" / "val_curves.png").exists()


def test_report_mean_std_over_seeds(grid_sweep: Path, tmp_path: Path):
    """Copies of the grid's runs that differ only by seed are averaged per configuration."""
    import shutil

    from embedlab.report import build_report

    sweep = tmp_path / "seeds"
    for i, seed in enumerate((1, 2)):
        for run in _job_dirs(grid_sweep)[:2]:  # embedding=normal, lr 1e-3 and 1e-2
            dst = sweep / f"{i}_{run.name}"
            shutil.copytree(run, dst, ignore=shutil.ignore_patterns("*.ckpt", "0*"))
            ov = [*yaml.safe_load((dst / ".hydra" / "overrides.yaml").read_text()), f"seed={seed}"]
            (dst / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov))
            m = json.loads((dst / "metrics.json").read_text())
            m["val/acc_best"] += 0.01 * seed
            (dst / "metrics.json").write_text(json.dumps(m))
    report = build_report(sweep, plots=False)
    assert len(report.runs) == 4 and len(report.groups) == 2
    for g in report.groups:
        vals = [r.metrics["val/acc_best"] for r in g.runs]
        assert g.mean == pytest.approx(sum(vals) / 2)
        assert g.std == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
        assert "seed" not in g.group and "optimizer.lr=" in g.group
    assert "± " in (sweep / "report.md").read_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, data: dict | None = None) -> object:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_tensorboard_serves_the_sweep(grid_sweep: Path):
    exe = Path(sys.executable).with_name("tensorboard")
    if not exe.is_file():
        pytest.skip("tensorboard executable not next to the Python interpreter")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(exe),
            "--logdir",
            str(grid_sweep),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        expected = sorted(p.name for p in _job_dirs(grid_sweep))
        runs: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                runs = sorted(_get(f"{base}/data/runs"))
                if runs == expected:
                    break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"tensorboard exited: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
        assert runs == expected
        experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        hparam_names = [h["name"] for h in experiment["hparamInfos"]]
        # the columns as TensorBoard orders them, (not differs, name): swept and study keys first
        lead = ["data.source", "embedding.dim", "embedding.freeze", "embedding.init"]
        lead += ["model.name", "optimizer.lr", "optimizer.name", "pretrained.name"]
        lead += ["pretrained.source", "seed", "tokenizer.ngrams"]
        assert hparam_names[: len(lead)] == lead
        assert "model.dropout" in hparam_names[len(lead) :]
        assert not [n for n in hparam_names if n.startswith(("callbacks.", "logger.", "paths."))]
        metric_tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "hparams/val_acc_best" in metric_tags
        groups = _get(
            f"{base}/data/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )
        sessions = sorted(s["name"] for g in groups["sessionGroups"] for s in g["sessions"])
        assert sessions == expected
        projector_runs = _get(f"{base}/data/plugin/projector/runs")
        assert sorted(projector_runs) == expected
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("launcher", ["basic", pytest.param("joblib", marks=pytest.mark.slow)])
def test_failing_job_is_reported_and_others_kept(tmp_path: Path, launcher: str):
    """One job fails validation: the other's results stay, the sweep ends listing the failure
    and exits 1. Under joblib the jobs run in other processes (names and folder still agree)."""
    sweep = tmp_path / "sweep"
    extra = ["launcher=joblib"] if launcher == "joblib" else []
    proc = run_cli(
        [
            "-m",
            *extra,
            "optimizer.lr=1e-2,-1",
            "trainer.fast_dev_run=true",
            "data.num_train=300",
            "data.num_val=100",
            "data.num_test=100",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert proc.returncode == 1
    assert "1 of 2 jobs failed" in proc.stderr
    ok, bad = sweep / "0_optimizer.lr=0.01", sweep / "1_optimizer.lr=-1"
    assert (ok / "metrics.json").is_file()
    failed = json.loads((bad / "failed.json").read_text())
    assert failed["error"] == "ConfigError" and "optimizer.lr" in failed["message"]
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["succeeded"] == [ok.name] and summary["failed"][0]["job"] == bad.name

    from embedlab.report import build_report

    report = build_report(sweep, plots=False)
    assert [r.name for r in report.failed_runs] == [bad.name]
    assert "optimizer.lr: must be > 0" in (sweep / "report.md").read_text()


def test_optuna_sweep_returns_and_saves_best_value(tmp_path: Path):
    sweep = tmp_path / "optuna"
    tiny = ["data.num_train=600", "data.num_val=200", "data.num_test=200", "trainer.max_epochs=1"]
    proc = run_cli(
        ["-m", "sweep=optuna", "hydra.sweeper.n_trials=3", *tiny, f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = [json.loads(p.read_text())["val/acc_best"] for p in sweep.glob("*/metrics.json")]
    assert len(trials) == 3
    assert results["best_value"] == pytest.approx(max(trials))  # direction: maximize val/acc_best
    assert set(results["best_params"]) == {
        "optimizer.lr",
        "optimizer.weight_decay",
        "embedding.dim",
        "embedding",
    }
    assert "Best value" in proc.stderr + proc.stdout


def test_report_of_a_single_run(grid_sweep: Path, tmp_path: Path):
    from embedlab.report import build_report

    run = _job_dirs(grid_sweep)[1]
    report = build_report(run, out_dir=tmp_path, plots=False)
    assert [r.name for r in report.runs] == [run.name]
    metrics = json.loads((run / "metrics.json").read_text())
    row = next(csv.DictReader((tmp_path / "report.csv").open()))
    assert float(row["val/acc_best"]) == pytest.approx(metrics["val/acc_best"], abs=1e-6)
    assert float(row["test/acc"]) == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert not report.groups
