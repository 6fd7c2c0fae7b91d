"""Lightning's cost: ``embedlab.train.train`` against a plain PyTorch loop, in one process.

Both sides get the same model (built by the task's own setup), the same batches (the
datamodule's train loader, which builds the next step's batches in a thread where
``data.prefetch`` is on: the bag model's default), the same optimizer and schedule
(``configure_task_optimizers``'s builders), the same fused updates (the bag table's in its
backward, the bag model's whole step in one compiled call, the updates of a step's batches in
one call where no schedule steps between them: ``optimizer.fuse_table_update``,
``fuse_train_step``), the same number of epochs, the same torch threads and train()'s heap
handling before the fit (the setup's freed memory returned, training's kept for reuse). The
Lightning side is a whole ``train(cfg)`` run with the shipped callbacks; its training time is
the Throughput callback's (validation excluded). The plain side times only its training
epochs. Printed: samples/s for both (texts for the bag model, predicted tokens for the LM) and
the ratio Lightning / plain (target >= 0.95), median over ``--repeats``.

    python scripts/bench_lightning_overhead.py                        # bag model and LM
    python scripts/bench_lightning_overhead.py --cases boe_1,lm_1     # one batch a step
    python scripts/bench_lightning_overhead.py --cases boe --repeats 5 --threads 1
    python scripts/bench_lightning_overhead.py --cases boe,boe_160k --repeats 5   # epoch size
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig

from embedlab.config import compose_config

# name: (overrides, epochs)
CASES: dict[str, tuple[list[str], int]] = {
    # the default bag model on the embedded data (64 batches of 256 texts a Lightning step;
    # 8 epochs: one is ~50 ms here, and 3 of them measured 0.89-0.97x run to run)
    "boe": (["data.num_train=40000"], 8),
    # the same at 4x the texts (10 Lightning steps an epoch of ~0.2 s): what is left of
    # Lightning's cost once an epoch is longer than the embedded data's
    "boe_160k": (["data.num_train=160000"], 4),
    # the same with one batch a Lightning step: Lightning's fixed cost on every update
    "boe_1": (["data.num_train=40000", "data.batches_per_step=1"], 3),
    # the transformer LM (its 20k sentences; 8 batches a Lightning step)
    "lm": (["experiment=lm_default"], 2),
    "lm_1": (["experiment=lm_default", "data.batches_per_step=1"], 2),
}
# the plain loop trains every epoch: so does train() (model=boe stops early by default)
QUIET = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "callbacks.early_stopping.enabled=false",
]


def compose_cfg(overrides: list[str], out: Path) -> DictConfig:
    paths = {"output_dir": out / "run", "cache_dir": out / "cache", "log_dir": out / "logs"}
    return compose_config(QUIET + overrides, paths)


def lightning_side(cfg: DictConfig) -> tuple[float, int]:
    """(training seconds, samples) of a whole ``train(cfg)`` run."""
    from embedlab.train import train

    metrics = train(cfg)
    return float(metrics["train_seconds"]), int(metrics["train_examples"])


def groups_of(loader: Any) -> Any:
    """The loader's items as lists of batches (one batch each unless data.batches_per_step > 1)."""
    for item in loader:
        yield item if isinstance(item, list) else [item]


def plain_side(cfg: DictConfig) -> tuple[float, int]:
    """(training seconds, samples) of a plain loop over the same model, batches and optimizer."""
    from embedlab.config import validate
    from embedlab.data.batching import PrefetchLoader, batches_per_step
    from embedlab.tasks import TASKS
    from embedlab.training.bag_step import fuse_bag_step
    from embedlab.training.optim import (
        build_optimizer,
        build_scheduler,
        fuse_table_update,
        param_groups,
    )
    from embedlab.utils import release_free_memory, reuse_freed_memory

    validate(cfg)
    torch.manual_seed(cfg.seed)
    datamodule, module = TASKS.get(cfg.task.name).setup(cfg)
    # as train() does between the setup and the fit: what the setup freed goes back to the OS
    # (the first epoch faults its pages in again), then freed memory is kept for reuse
    release_free_memory()
    reuse_freed_memory()
    lm = cfg.task.name == "lm"
    groups = param_groups(module.model, cfg.optimizer, module.embedding, module.embedding_lr)
    loader = datamodule.train_dataloader()
    epochs = cfg.trainer.max_epochs
    optimizer = build_optimizer(groups, cfg.optimizer)
    clip = cfg.trainer.gradient_clip_val
    fused_step = None
    trainer = SimpleNamespace(gradient_clip_val=clip, precision="32-true", callbacks=[])
    # the table's update in its backward and the bag model's whole step, as train() makes them
    table = cfg.optimizer.fuse_table_update and fuse_table_update(
        optimizer, module.embedding, trainer
    )
    if table and cfg.optimizer.fuse_train_step and cfg.data.batches_per_step > 1 and not lm:
        fused_step = fuse_bag_step(module.model, module.loss_fn, optimizer, trainer)
    if isinstance(loader, PrefetchLoader):  # its thread beside the fused step only, as train()
        loader.background = fused_step is not None
    updates = round(epochs * len(loader) * batches_per_step(loader))
    schedule = build_scheduler(optimizer, cfg.scheduler, updates)
    scheduler = schedule["scheduler"] if schedule else None
    module.train()
    samples, seconds = 0, 0.0
    for _ in range(epochs):
        if lm:
            module.on_train_epoch_start()  # a recurrent state starts afresh, as under Lightning
        start = time.perf_counter()
        for group in groups_of(loader):
            # a step's updates in one call, as train() makes all of them but the last
            if scheduler is None and fused_step is not None and fused_step.steps(group):
                samples += sum(batch["labels"].numel() for batch in group)
                continue
            for batch in group:
                samples += plain_update(module, batch, optimizer, scheduler, fused_step, clip, lm)
        seconds += time.perf_counter() - start
    return seconds, samples


def plain_update(
    module: Any, batch: Any, optimizer: Any, scheduler: Any, fused_step: Any, clip: Any, lm: bool
) -> int:
    """One update from ``batch`` (the fused whole step where it takes it); its samples."""
    if fused_step is not None and fused_step(batch) is not None:  # the whole update
        if scheduler is not None:
            scheduler.step()
        return batch["labels"].numel()
    if lm:
        total, n = module._nll(batch, "train")  # carries a recurrent state on rows
        loss = total / max(n, 1)
    else:
        loss, _, labels = module._step(batch)
        n = labels.numel()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:  # as Lightning clips (trainer.gradient_clip_val, e.g. experiment=lm_default)
        torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return n


def run_case(name: str, repeats: int, threads: int, root: Path) -> dict[str, Any]:
    overrides, epochs = CASES[name]
    overrides = overrides + [f"trainer.max_epochs={epochs}"]
    rates: dict[str, list[float]] = {"lightning": [], "plain": []}
    for r in range(repeats):
        for side, fn in (("plain", plain_side), ("lightning", lightning_side)):
            torch.set_num_threads(threads)
            cfg = compose_cfg(overrides, root / f"{name}_{side}_{r}")
            seconds, samples = fn(cfg)
            rates[side].append(samples / seconds)
    plain = statistics.median(rates["plain"])
    light = statistics.median(rates["lightning"])
    return {
        "case": name,
        "plain": plain,
        "lightning": light,
        "ratio": light / plain,
        "runs": rates,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {sorted(CASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    names = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {sorted(CASES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="embedlab-bench-") as tmp:
        for name in names:
            rows.append(run_case(name, args.repeats, args.threads, Path(tmp)))
    print(f"\n{' '.join(sys.argv)}  (threads {args.threads}, median of {args.repeats})")
    print("| case | unit | plain PyTorch samples/s | Lightning samples/s | Lightning / plain |")
    print("|---|---|---|---|---|")
    for row in rows:
        unit = "tokens" if row["case"].startswith("lm") else "texts"
        print(
            f"| {row['case']} | {unit} | {row['plain']:,.0f} | {row['lightning']:,.0f} "
            f"| {row['ratio']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
