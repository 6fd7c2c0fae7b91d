"""Several training batches per Lightning step (data.batches_per_step): same updates, fewer steps."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from embedlab.config import validate
from embedlab.data.batching import (
    BackgroundIterator,
    GroupedBatches,
    PrefetchLoader,
    batches_per_step,
    make_loader,
)
from embedlab.errors import ConfigError
from embedlab.train import train


def _last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def test_grouped_steps_make_the_updates_of_one_batch_steps(make_cfg, tmp_path):
    # 1200 texts, batches of 256: 5 batches an epoch; in groups of 3: 2 Lightning steps an epoch
    # (autograd's updates: the fused whole step rounds differently, tests/test_fused_train_step)
    runs = {}
    for k in (1, 3):
        cfg = make_cfg(
            f"data.batches_per_step={k}", "scheduler=linear", "optimizer.fuse_train_step=false"
        )
        cfg.paths.output_dir = str(tmp_path / f"k{k}")
        runs[k] = (train(cfg), _last(tmp_path / f"k{k}"))
    (m1, c1), (m3, c3) = runs[1], runs[3]
    assert (c1["global_step"], c3["global_step"]) == (10, 4)
    # bit for bit: the same batches, dropout draws, updates and learning rates, in order
    assert c1["state_dict"].keys() == c3["state_dict"].keys()
    for key, value in c1["state_dict"].items():
        assert torch.equal(value, c3["state_dict"][key]), key
    states = [c["optimizer_states"][0]["optimizers"] for c in (c1, c3)]
    for one, grouped in zip(*states, strict=True):
        for i, state in one["state"].items():
            for name, value in state.items():
                assert torch.equal(value, grouped["state"][i][name]), (i, name)
        assert [g["lr"] for g in one["param_groups"]] == [g["lr"] for g in grouped["param_groups"]]
    assert m1["test/acc"] == m3["test/acc"]
    assert m1["train_examples"] == m3["train_examples"] == 2 * 1200
    logged = [json.loads((tmp_path / f"k{k}" / "metrics.json").read_text()) for k in (1, 3)]
    assert logged[0]["train/loss_epoch"] == pytest.approx(logged[1]["train/loss_epoch"], rel=1e-6)


def test_grouped_loader_holds_the_one_batch_loader_batches(make_cfg):
    from embedlab.tasks import TASKS

    cfg = validate(make_cfg("data.batches_per_step=3"))
    dm, _ = TASKS.get(cfg.task.name).setup(cfg)
    grouped = make_loader(dm._dataset("train"), cfg.data, True, cfg.seed)
    cfg.data.batches_per_step = 1
    single = list(make_loader(dm._dataset("train"), cfg.data, True, cfg.seed))
    items = list(grouped)
    assert isinstance(grouped.dataset, GroupedBatches)
    assert [len(item) for item in items] == [3, 2]
    flat = [batch for item in items for batch in item]
    assert len(flat) == len(single) == 5
    for a, b in zip(flat, single, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert batches_per_step(grouped) == 2.5  # 5 updates in 2 steps: the schedule's length
    assert batches_per_step(make_loader(dm._dataset("train"), cfg.data, True, cfg.seed)) == 1.0


def test_a_prefetched_run_is_the_run_without_it(make_cfg, tmp_path):
    """data.prefetch builds the next step's batches in a thread: the same batches, dropout
    draws and updates (the fused whole step, the default path), to the bit."""
    runs = {}
    for prefetch in (True, False):
        cfg = make_cfg("data.batches_per_step=2", f"data.prefetch={prefetch}")
        cfg.paths.output_dir = str(tmp_path / str(prefetch))
        runs[prefetch] = (train(cfg), _last(tmp_path / str(prefetch)))
    (m_on, c_on), (m_off, c_off) = runs[True], runs[False]
    assert c_on["global_step"] == c_off["global_step"] == 6  # 5 batches: 3 steps an epoch
    assert c_on["state_dict"].keys() == c_off["state_dict"].keys()
    for key, value in c_on["state_dict"].items():
        assert torch.equal(value, c_off["state_dict"][key]), key
    assert m_on["test/acc"] == m_off["test/acc"]


def test_the_grouped_training_loader_prefetches_where_it_can(make_cfg):
    import time

    from embedlab.tasks import TASKS

    cfg = validate(make_cfg("data.batches_per_step=3"))
    assert cfg.data.prefetch is True  # model=boe's default
    dm, _ = TASKS.get(cfg.task.name).setup(cfg)
    dataset = dm._dataset("train")
    loader = make_loader(dataset, cfg.data, True, cfg.seed)
    assert isinstance(loader, PrefetchLoader)
    assert isinstance(iter(loader), BackgroundIterator)  # 2 steps an epoch
    cfg.data.batches_per_step = 5  # one step an epoch: nothing to overlap, no thread
    one = make_loader(dataset, cfg.data, True, cfg.seed)
    assert isinstance(one, PrefetchLoader) and not isinstance(iter(one), BackgroundIterator)
    cfg.data.batches_per_step = 3
    plain = [make_loader(dataset, cfg.data, False, cfg.seed)]  # evaluation: one batch an item
    cfg.data.num_workers = 1  # the workers prefetch
    plain.append(make_loader(dataset, cfg.data, True, cfg.seed))
    cfg.data.num_workers, cfg.data.prefetch = 0, False
    plain.append(make_loader(dataset, cfg.data, True, cfg.seed))
    cfg.data.prefetch, cfg.data.batches_per_step = True, 1
    plain.append(make_loader(dataset, cfg.data, True, cfg.seed))
    assert not any(isinstance(other, PrefetchLoader) for other in plain)
    assert validate(make_cfg("model=cnn")).data.prefetch is False
    # the iterator reads the sampler at its first item, as the DataLoader's own does: Lightning
    # makes it before setting the epoch when it resumes a run
    early = iter(loader)
    time.sleep(0.2)  # time for a thread started here to read the sampler
    loader.sampler.set_epoch(2)
    plain[-2].sampler.set_epoch(2)
    for got, want in zip(list(early), list(plain[-2]), strict=True):
        for a, b in zip(got, want, strict=True):
            assert all(torch.equal(a[k], b[k]) for k in a)
    # an epoch's items, in the sampler's order for that epoch
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        plain[-2].sampler.set_epoch(epoch)
        items = list(loader)
        assert [len(item) for item in items] == [3, 2]
        expected = list(plain[-2])
        for got, want in zip(items, expected, strict=True):
            for a, b in zip(got, want, strict=True):
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_background_iterator_keeps_order_raises_where_it_failed_and_stops():
    import threading
    import time

    assert list(BackgroundIterator(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise ValueError("bad row in train.tsv line 3")

    it = BackgroundIterator(failing())
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(ValueError, match="line 3"):
        next(it)
    with pytest.raises(StopIteration):  # and nothing after the failure
        next(it)

    # a consumer that leaves early: the thread, blocked with the next item, ends
    def endless():
        n = 0
        while True:
            yield n
            n += 1

    it = BackgroundIterator(endless())
    assert next(it) == 0
    thread = it._thread
    it.close()
    thread.join(timeout=2)
    assert not thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)
    # dropped without close(): garbage collection stops it too
    it = BackgroundIterator(endless())
    assert next(it) == 0
    thread = it._thread
    del it
    deadline = time.monotonic() + 2
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "embedlab-prefetch"]


def test_defaults_and_where_one_batch_a_step_is_required(make_cfg):
    assert validate(make_cfg()).data.batches_per_step == 64  # model=boe
    assert validate(make_cfg("model=cnn")).data.batches_per_step == 1
    # defaults step back to one batch where a step must be one backward
    assert validate(make_cfg("trainer=ddp")).data.batches_per_step == 1
    assert validate(make_cfg("trainer.accumulate_grad_batches=2")).data.batches_per_step == 1
    rows = ["task=lm", "data=synthetic_lm", "model=lstm_lm", "data.chunking=rows"]
    assert validate(make_cfg(*rows)).data.batches_per_step == 1
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("trainer.accumulate_grad_batches=2", "data.batches_per_step=4"))
    problems = str(err.value).splitlines()[1:]
    assert problems == [
        "  - data.batches_per_step: 4 is not possible here: trainer.accumulate_grad_batches "
        "accumulates over steps; set 1"
    ]
    with pytest.raises(ConfigError, match=r"data\.batches_per_step: must be >= 1, got 0"):
        validate(make_cfg("data.batches_per_step=0"))


def test_grouped_lm_steps_clip_every_update_as_lightning_does(make_cfg, tmp_path):
    # the transformer LM with gradient clipping (experiment=lm_default's 1.0), which Lightning
    # applies itself with one batch a step and the task applies with several
    tiny = ["experiment=lm_default", "data.num_train=200", "data.num_val=20", "data.num_test=20",
            "data.block_size=16", "model.num_layers=1", "model.max_positions=16",
            "trainer.max_epochs=1", "trainer.val_check_interval=1.0", "trainer.gradient_clip_val=0.05"]  # fmt: skip
    weights = {}
    for k in (1, 4):
        cfg = make_cfg(*tiny, f"data.batches_per_step={k}")
        cfg.paths.output_dir = str(tmp_path / f"k{k}")
        metrics = train(cfg)
        weights[k] = (_last(tmp_path / f"k{k}")["state_dict"], metrics)
    (w1, m1), (w4, m4) = weights[1], weights[4]
    assert m4["global_steps"] < m1["global_steps"]
    for key, value in w1.items():
        assert torch.equal(value, w4[key]), key
    assert m1["test/ppl"] == m4["test/ppl"]


@pytest.mark.parametrize(
    ("devices", "accelerator", "count"),
    [(1, "cpu", 1), (2, "cpu", 2), ("2", "cpu", 2), ("0,1", "gpu", 2), ([0, 1], "gpu", 2),
     ("auto", "cpu", 1), (-1, "cpu", 1)],
)  # fmt: skip
def test_device_count_reads_every_form_of_trainer_devices(devices, accelerator, count):
    from omegaconf import OmegaConf

    from embedlab.config import _device_count

    trainer = OmegaConf.create({"devices": devices, "accelerator": accelerator})
    assert _device_count(trainer) == count


def test_several_devices_step_one_batch_at_a_time(make_cfg):
    cfg = validate(make_cfg("trainer.devices=2", "trainer.accelerator=cpu"))
    assert cfg.data.batches_per_step == 1
    with pytest.raises(ConfigError, match="DDP reduces the gradients of one backward per step"):
        validate(make_cfg("trainer.devices=2", "data.batches_per_step=2"))


def test_a_grouped_task_refuses_to_fit_under_several_processes(make_cfg):
    from types import SimpleNamespace

    from embedlab.tasks import TASKS

    cfg = validate(make_cfg("data.batches_per_step=2"))
    _, module = TASKS.get(cfg.task.name).setup(cfg)
    module._trainer = SimpleNamespace(world_size=2)  # what DDP over 2 GPUs chosen by "auto" gives
    with pytest.raises(ConfigError, match="not possible with 2 processes"):
        module.on_fit_start()
    module._trainer = SimpleNamespace(world_size=1)
    module.on_fit_start()


@pytest.mark.parametrize(("fuse", "threaded"), [(True, True), (False, False)])
def test_the_prefetch_thread_runs_beside_the_fused_step_only(make_cfg, fuse, threaded):
    """Beside autograd's many small ops the thread contends for the GIL (half the speed at
    160k texts): the task keeps the loader's items inline there."""
    import lightning as L

    from embedlab.tasks import TASKS
    from embedlab.training import native

    if fuse and native.compiler() is None:
        pytest.skip("no C compiler (cc): no fused step")
    cfg = validate(make_cfg("data.batches_per_step=2", f"optimizer.fuse_train_step={fuse}"))
    dm, module = TASKS.get(cfg.task.name).setup(cfg)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    started = []

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            started.append(any(t.name == "embedlab-prefetch" for t in threading.enumerate()))

    trainer.callbacks.append(Probe())
    trainer.fit(module, datamodule=dm)
    assert isinstance(trainer.train_dataloader, PrefetchLoader)
    assert trainer.train_dataloader.background is threaded
    assert started == [threaded]


def test_a_background_iterator_told_not_to_thread_makes_its_items_inline():
    it = BackgroundIterator(iter(range(5)), use_thread=lambda: False)
    assert list(it) == list(range(5))
    assert it._thread.ident is None  # never started


@pytest.mark.filterwarnings("ignore:.*could not find the monitored key")  # no validation ran
def test_a_run_stopped_mid_epoch_leaves_no_prefetch_thread(make_cfg):
    """trainer.max_steps ends the fit with the next group built or being built: its thread
    ends with the fit (sweeps run many fits in one process)."""
    import threading
    import time

    cfg = make_cfg("data.batches_per_step=2", "trainer.max_steps=1")  # 3 steps an epoch
    assert train(cfg)["train_examples"] == 2 * 256
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(
        t.name == "embedlab-prefetch" for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == "embedlab-prefetch"]
