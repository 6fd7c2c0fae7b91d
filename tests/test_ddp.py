"""DDP on CPU (gloo): two real processes, sharded data, synced metrics, rank 0 writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embedlab.data.batching import LengthBucketSampler, ShardSampler
from embedlab.evaluate import evaluate
from tests.conftest import compose_eval

QUIET = ["print_config=false", "trainer.enable_progress_bar=false", "callbacks.rich_progress=false"]


def test_shard_sampler_scores_every_example_once():
    for size in (7, 8, 1):
        shards = [list(ShardSampler(size, 2, rank)) for rank in (0, 1)]
        assert sorted(shards[0] + shards[1]) == list(range(size))
        assert [len(ShardSampler(size, 2, r)) for r in (0, 1)] == [len(s) for s in shards]


def test_length_bucket_sampler_gives_each_rank_disjoint_halves():
    lengths = torch.randint(1, 50, (1000,))
    ranks = [list(LengthBucketSampler(lengths, 32, seed=3, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(LengthBucketSampler(lengths, 32, 50, 3, 2, 0))
    assert not set(ranks[0]) & set(ranks[1])
    assert len(ranks[0]) + len(ranks[1]) == (1000 // 32) // 2 * 2 * 32  # full batches only


def _run(tmp: Path, name: str, overrides: list[str]) -> tuple[dict, Path]:
    run = tmp / name
    cmd = [
        sys.executable,
        "-m",
        "embedlab.train",
        *QUIET,
        f"hydra.run.dir={run}",
        f"paths.root_dir={tmp}",
        *overrides,
    ]
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text()), run


DATA = ["data.num_train=2000", "data.num_val=501", "data.num_test=499"]
DDP = ["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]


def _eval(ckpt: str, split: str, out: Path) -> dict:
    return evaluate(compose_eval([f"ckpt={ckpt}", f"split={split}"], out))


def test_two_process_bag_run_shards_syncs_and_writes_once(tmp_path):
    """Sparse table + row-wise Adagrad under DDP; odd val/test sizes: no example twice."""
    metrics, run = _run(
        tmp_path, "ddp", [*DDP, *DATA, "trainer.max_epochs=1", "data.batch_size=128"]
    )
    assert metrics["world_size"] == 2
    assert metrics["train_examples"] == 1000  # rank 0 saw half of the 2000 training texts
    # every example of the odd-sized splits counted once: the single-process evaluation agrees
    assert metrics["val/acc"] == pytest.approx(
        _eval(metrics["best_checkpoint"], "val", tmp_path / "ev")["val/acc"], abs=1e-6
    )
    assert metrics["test/acc"] == pytest.approx(
        _eval(metrics["best_checkpoint"], "test", tmp_path / "et")["test/acc"], abs=1e-6
    )
    # rank 0 alone wrote the run folder: one process id in every event file's name
    pids = {re.search(r"\.(\d+)\.\d+$", p.name).group(1) for p in run.glob("events.out.tfevents.*")}
    assert len(pids) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "last.ckpt"

    single, _ = _run(tmp_path, "single", [*DATA, "trainer.max_epochs=1", "data.batch_size=256"])
    assert single["world_size"] == 1 and single["train_examples"] == 2000
    # the same global batch (2 x 128 vs 256): the same accuracy within 2 points
    assert abs(single["test/acc"] - metrics["test/acc"]) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["model=transformer", *DATA, "trainer.max_epochs=1"],
        [
            "experiment=lm_default",
            "data.num_train=400",
            "data.num_val=41",
            "data.num_test=43",
            "trainer.max_epochs=1",
        ],
    ],
    ids=["transformer", "lm"],
)
def test_two_process_transformer_and_lm_runs_match_a_single_process_evaluation(tmp_path, overrides):
    metrics, _ = _run(tmp_path, "ddp", [*DDP, *overrides])
    assert metrics["world_size"] == 2
    key = "test/ppl" if "experiment=lm_default" in overrides else "test/acc"
    evaluated = _eval(metrics["best_checkpoint"], "test", tmp_path / "ev")
    assert metrics[key] == pytest.approx(evaluated[key], rel=1e-5)


def test_sparse_tables_are_refused_only_where_nccl_would_all_reduce_them(make_cfg):
    from embedlab.config import validate
    from embedlab.errors import ConfigError

    gpu_ddp = ["trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=2"]
    assert validate(make_cfg(*gpu_ddp)).embedding.sparse is False  # the boe default backs off
    with pytest.raises(ConfigError, match="process_group_backend=gloo"):
        validate(make_cfg(*gpu_ddp, "embedding.sparse=true"))
    kept = validate(
        make_cfg(*gpu_ddp, "embedding.sparse=true", "trainer.process_group_backend=gloo")
    )
    assert kept.embedding.sparse is True
    assert validate(make_cfg(*DDP)).embedding.sparse is True  # CPU: gloo, sparse works

    from embedlab.train import _trainer_kwargs

    strategy = _trainer_kwargs(kept.trainer)["strategy"]
    assert type(strategy).__name__ == "DDPStrategy" and strategy._process_group_backend == "gloo"
