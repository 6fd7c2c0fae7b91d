"""The sweep/ and launcher/ config groups compose to the right plugins; job-name helpers."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from embedlab import sweep
from embedlab.config import compose_config
from embedlab.paths import config_dir
from embedlab.tensorboard.embeddings import (
    SpilledTable,
    embedding_drift,
    grad_row_norms,
    top_words,
)
from tests.conftest import QUIET, TINY_DATA, compose_cfg


def compose_with_hydra(*overrides: str):
    return compose_config(list(overrides), return_hydra_config=True)


def test_slurm_launcher_config(tmp_path):
    cfg = compose_with_hydra(
        "launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        f"hydra.sweep.dir={tmp_path}",
    )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert launcher.partition == "gpu" and launcher.timeout_min == 30
    assert launcher.gpus_per_node == 1 and launcher.array_parallelism == 16
    # the plugin accepts every key (its constructor resolves them)
    plugin = instantiate(launcher)
    assert plugin.params["submitit_folder"] == f"{tmp_path}/.submitit/%j"
    assert plugin.params["partition"] == "gpu" and plugin.params["array_parallelism"] == 16


def test_joblib_launcher_config_splits_threads():
    cfg = compose_with_hydra("launcher=joblib", "hydra.launcher.n_jobs=2")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    threads = OmegaConf.select(cfg, "hydra.job.env_set.EMBEDLAB_NUM_THREADS")
    assert int(threads) == max(1, (os.cpu_count() or 1) // 2)


def test_init_study_grid():
    cfg = compose_with_hydra("sweep=init_study")
    params = cfg.hydra.sweeper.params
    assert set(params) == {"embedding", "model", "seed"}
    assert params.model == "boe,transformer" and len(params.seed.split(",")) == 3
    for init in params.embedding.split(","):  # every initializer named is a real choice
        assert (config_dir() / "embedding" / f"{init}.yaml").is_file()
    assert cfg.task_name == "init_study"


@pytest.mark.parametrize(
    ("metric", "direction"),
    [("val/acc_best", "maximize"), ("val/loss", "minimize"), ("val/perplexity", "minimize")],
)
def test_optuna_direction_follows_the_metric(metric, direction):
    cfg = compose_with_hydra("sweep=optuna", f"optimized_metric={metric}")
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == direction
    assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.TPESampler"


def test_optuna_study_storage_pruner_and_parallel_trials(tmp_path):
    cfg = compose_with_hydra("sweep=optuna", f"hydra.sweep.dir={tmp_path}")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.startswith("hydra_plugins.embedlab_optuna_sweeper.")
    assert sweeper.storage == f"sqlite:///{tmp_path}/optuna.db"  # in the sweep folder
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper.n_jobs == 1  # the basic launcher runs one job at a time
    parallel = compose_with_hydra("sweep=optuna", "launcher=joblib", "hydra.launcher.n_jobs=3")
    assert parallel.hydra.sweeper.n_jobs == 3  # a batch of trials fills the joblib workers
    plain = compose_with_hydra("sweep=optuna", "hydra/sweeper/pruner=none")
    assert plain.hydra.sweeper.pruner._target_ == "optuna.pruners.NopPruner"


def test_job_dir_name(monkeypatch):
    monkeypatch.delenv(sweep.SWEPT_KEYS_ENV, raising=False)
    overrides = [
        "model=boe",
        "embedding=xavier_uniform",
        "print_config=false",
        "data.path=/a b/c.txt",
    ]
    name = sweep.job_dir_name(3, overrides, ["print_config"])
    assert (
        name == "3_data.path=_a__b_c.txt,embedding=xavier_uniform,model=boe"
    )  # Hydra escapes the space
    monkeypatch.setenv(sweep.SWEPT_KEYS_ENV, "embedding,model")  # a sweep: only what varies
    assert (
        sweep.job_dir_name(3, overrides, ["print_config"]) == "3_embedding=xavier_uniform,model=boe"
    )
    assert sweep.job_dir_name(0, [], []) == "0"
    assert len(sweep.job_dir_name(1, ["embedding=" + "x" * 500], [])) <= sweep.MAX_NAME + 2


def test_swept_keys_and_threads():
    keys = sweep.swept_keys(
        ["embedding=normal,zeros", "model=boe", "optimizer.lr=interval(1e-4,1e-1)"], {"seed": "1,2"}
    )
    assert keys == ["embedding", "optimizer.lr", "seed"]


def test_threads_per_job_splits_the_cores(monkeypatch):
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    assert [sweep.threads_per_job(n) for n in (1, 2, 3, 4, 8, 16)] == [8, 4, 2, 2, 1, 1]
    assert sweep.threads_per_job(-1) == 1  # joblib's -1: a job per core
    assert sweep.threads_per_job(0) == 1
    assert sweep.threads_per_job("2") == 4  # as the resolver passes it
    assert sweep.threads_per_job(None) == 1
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: None)  # unknown: one core
    assert sweep.threads_per_job(2) == 1


def test_summarize_lists_failed_and_unfinished(tmp_path):
    (tmp_path / "0_a=1").mkdir()
    (tmp_path / "0_a=1" / "metrics.json").write_text("{}")
    try:
        raise ValueError("boom")
    except ValueError as exc:
        sweep.record_failure(tmp_path / "1_a=2", exc, ["a=2"])
    (tmp_path / "2_a=3" / ".hydra").mkdir(parents=True)
    (tmp_path / "2_a=3" / ".hydra" / "overrides.yaml").write_text("- a=3\n")
    summary = sweep.summarize(tmp_path)
    assert summary["succeeded"] == ["0_a=1"] and summary["unfinished"] == ["2_a=3"]
    assert summary["failed"] == [{"job": "1_a=2", "error": "ValueError: boom"}]
    assert json.loads((tmp_path / sweep.SUMMARY_FILE).read_text())["jobs"] == 3
    assert (
        "Traceback" in json.loads((tmp_path / "1_a=2" / sweep.FAILED_FILE).read_text())["traceback"]
    )


def test_top_words_and_drift():
    vocab = ["<pad>", "<unk>", "a", "b", "c", "d"]
    counts = torch.tensor([0, 9, 5, 7, 0, 5])
    ids = top_words(counts, vocab, 3, skip={"<pad>", "<unk>"})
    assert ids.tolist() == [3, 2, 5]  # by frequency, ties by id, unseen and specials out
    initial = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    final = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    spilled = SpilledTable(initial)  # the copy a large table keeps on disk: the same rows
    assert torch.equal(spilled[torch.tensor([2, 3, 5])], initial[[2, 3, 5]])
    for chunk, snapshot in ((65536, initial), (2, initial), (2, spilled), (65536, spilled)):
        drift = embedding_drift(snapshot, final, torch.arange(6), chunk=chunk)
        assert drift.ids.tolist() == [1, 2, 3, 4, 5]  # the zero row has no direction
        assert drift.cosine.tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0, 2.0], abs=1e-6)
        assert drift.l2[1].item() == pytest.approx(math.sqrt(10))
    dense = torch.zeros(4, 2)
    dense[1] = torch.tensor([3.0, 4.0])
    assert grad_row_norms(dense).tolist() == [5.0]
    assert grad_row_norms(dense.to_sparse(1)).tolist() == [5.0]  # nn.Embedding(sparse=True)
    assert grad_row_norms(dense.to_sparse()).tolist() == [5.0]


def test_drift_of_a_run_is_the_same_with_the_snapshot_on_disk(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import embedlab.callbacks.embeddings as callbacks_module
    from embedlab.train import train

    overrides = QUIET + TINY_DATA + ["trainer.max_epochs=1", "test=false"]
    drifts = []
    for spill_bytes in (2**40, 0):  # in memory, then on disk (every table is "large")
        monkeypatch.setattr(callbacks_module, "SPILL_BYTES", spill_bytes)
        cfg = compose_cfg(overrides, tmp_path / f"spill{spill_bytes}")
        train(cfg)
        acc = EventAccumulator(cfg.paths.output_dir, size_guidance={"scalars": 0})
        acc.Reload()
        drifts.append(acc.Scalars("embedding/drift_cosine_mean")[0].value)
    assert 0.0 < drifts[0] < 2.0
    assert drifts[1] == pytest.approx(drifts[0], abs=1e-6)  # seeded runs: the same drift
