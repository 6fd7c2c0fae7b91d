"""Learning-rate schedules: the lr at every step against the formula (torch's own schedulers
where one computes the same curve, hand-computed values for the warmup), and in a real run."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from omegaconf import OmegaConf

from embedlab.train import train
from embedlab.training.optim import build_scheduler


def _lrs(name: str, total: int, warmup: int = 0, base: float = 1.0, **kwargs) -> list[float]:
    """The lr before each of ``total + 2`` steps of embedlab's schedule ``name``."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    cfg = OmegaConf.create(
        {"name": name, "warmup_steps": warmup, "interval": "step", "kwargs": kwargs}
    )
    sched = build_scheduler(opt, cfg, total)["scheduler"]
    out = []
    for _ in range(total + 2):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _torch_lrs(make, steps: int, base: float = 1.0) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_is_torch_cosine_annealing_then_stays_at_the_floor():
    ours = _lrs("cosine", 20, base=0.3, min_factor=0.1)
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20, eta_min=0.03), 21, 0.3
    )
    assert ours[:21] == pytest.approx(ref, abs=1e-9)
    assert ours[10] == pytest.approx(0.3 * (0.1 + 0.9 * 0.5))  # halfway: the mid value
    assert ours[20] == ours[21] == pytest.approx(0.03)  # past the end: the floor, not back up


def test_linear_is_torch_linear_lr():
    ours = _lrs("linear", 8, base=0.5, min_factor=0.0)
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.0, total_iters=8), 10, 0.5
    )
    assert ours == pytest.approx(ref, abs=1e-9)
    assert ours[:5] == pytest.approx([0.5, 0.4375, 0.375, 0.3125, 0.25])


def test_step_is_torch_step_lr():
    ours = _lrs("step", 10, step_size=3, gamma=0.5)
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 12)
    assert ours == pytest.approx(ref)
    assert ours[:7] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_warmup_rises_linearly_then_the_schedule_spans_the_remaining_steps():
    # 4 warmup steps of 12: lr (s+1)/4, then cosine over the other 8 steps
    ours = _lrs("cosine", 12, warmup=4, base=2.0)
    assert ours[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    after = [2.0 * 0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(9)]
    assert ours[4:13] == pytest.approx(after, abs=1e-9)
    assert ours[8] == pytest.approx(1.0)  # halfway through the decay
    # warmup alone (name none): a ramp, then the base lr
    assert _lrs("none", 6, warmup=3) == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1])


def test_a_run_logs_the_scheduled_lr_at_every_step(make_cfg, tmp_path, one_thread):
    """Through the trainer: total steps from Lightning, one scheduler step per optimizer step."""
    cfg = make_cfg(
        "logger=csv",
        "callbacks=none",
        "callbacks.lr_monitor=true",
        "scheduler=cosine",
        "scheduler.warmup_steps=3",
        "optimizer.lr=0.2",
        "data.batch_size=100",  # 1200 texts: 12 steps an epoch, 24 in all
        "data.batches_per_step=1",  # the lr monitor logs once a Lightning step
        "trainer.log_every_n_steps=1",
        "test=false",
    )
    metrics = train(cfg)
    total = metrics["global_steps"]
    assert total == 24
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    lr_rows = [r for r in rows if r.get("lr/embedding")]
    assert [int(r["step"]) for r in lr_rows] == list(range(total))
    for row in lr_rows:
        step = int(row["step"])
        if step < 3:
            expected = 0.2 * (step + 1) / 3
        else:
            expected = 0.2 * 0.5 * (1 + math.cos(math.pi * (step - 3) / (total - 3)))
        for group in ("embedding", "decay", "no_decay"):  # every parameter group follows it
            assert float(row[f"lr/{group}"]) == pytest.approx(expected, abs=1e-7), (step, group)


def test_over_time_follows_the_clock_when_it_is_ahead_of_the_steps():
    """scheduler.over=time: the cosine is at max(steps done, time spent) of its span."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    cfg = OmegaConf.create({"name": "cosine", "warmup_steps": 0, "interval": "step", "kwargs": {}})
    spent = [0.0]
    sched = build_scheduler(opt, cfg, 100, time_spent=lambda: spent[0])["scheduler"]
    lrs = []
    for fraction in (0.0, 0.5, 0.5, 1.0, 2.0):
        spent[0] = fraction
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    # step 1 at 0% of the time: the steps lead; then half the budget = half the cosine; the
    # end of the budget = the end of the schedule, and it stays there
    assert lrs[0] == pytest.approx(0.5 * (1 + math.cos(math.pi * 1 / 100)))
    assert lrs[1] == pytest.approx(0.5) and lrs[2] == pytest.approx(0.5)
    assert lrs[3] == pytest.approx(0.0, abs=1e-12) and lrs[4] == pytest.approx(0.0, abs=1e-12)


def test_over_time_needs_a_time_budget(make_cfg):
    from embedlab.config import validate
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(make_cfg("scheduler=cosine", "scheduler.over=time"))
    assert [p.split(":")[0] for p in err.value.problems] == ["scheduler.over"]
    cfg = validate(
        make_cfg("scheduler=cosine", "scheduler.over=time", "trainer.max_time=00:00:01:00")
    )
    assert cfg.scheduler.over == "time"
