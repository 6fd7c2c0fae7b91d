"""One training step of the bag model: torch's stock parts against embedlab's, in one process.

Both sides train the same model (``model=boe``: word + bigram table, dim 100, dropout 0.5,
linear head) on the same batches (the datamodule's train loader; MR when ``--data mr`` finds
the shared data, else the embedded synthetic set) with row-wise Adagrad, same threads:

- baseline: ``nn.EmbeddingBag`` (torch's sparse backward), ``nn.Dropout`` (``bernoulli_``) and
  the row-wise Adagrad update written as before this change (``dense.add_(sparse)``);
- embedlab: ``BagEmbedding`` (sum kernel), ``layers.Dropout`` (uniform draw), the table's
  row-wise Adagrad update made inside its backward from the bag gradients (the C kernel of
  ``optimizer.fuse_table_update``; ``--no-fuse``: ``RowWiseAdagrad.step`` with ``index_add_``
  on the sparse gradient) and torch's fused Adagrad for the head, as a run makes them.

And, as a third row, the whole step in one compiled call (``optimizer.fuse_train_step``,
``embedlab.training.bag_step``; not with ``--no-fuse``), and as a fourth the updates of a
Lightning step (``--group`` batches, ``data.batches_per_step``) in one call of
``FusedBagStep.steps``, as a run makes a step's updates.

Printed: ms per step (forward + backward + update; the best of ``--repeats`` epochs) for
each, and the ratios baseline / embedlab.

    python scripts/bench_bag_step.py                   # MR if ../shared/data exists
    python scripts/bench_bag_step.py --data synthetic --threads 1
    python scripts/bench_bag_step.py --no-fuse          # embedlab's unfused update
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def load_batches(
    data: str, out: Path, extra: tuple[str, ...] = ()
) -> tuple[Any, list[dict[str, torch.Tensor]]]:
    """The task's module and one epoch of training batches for ``data`` (+ ``extra`` overrides)."""
    from embedlab.config import compose_config, validate
    from embedlab.tasks import TASKS

    overrides = [
        "print_config=false",
        "embedding.dim=100",
        f"data={data}",
        "data.batches_per_step=1",
    ]
    overrides += list(extra)
    cfg = compose_config(overrides, {"output_dir": out / "run", "cache_dir": out / "cache"})
    validate(cfg)
    torch.manual_seed(0)
    datamodule, module = TASKS.get(cfg.task.name).setup(cfg)
    return module, list(datamodule.train_dataloader())


def baseline_rowwise_adagrad(weight: torch.Tensor, state: torch.Tensor, lr: float) -> None:
    """The row-wise Adagrad update as embedlab wrote it before (``dense += sparse``)."""
    grad = weight.grad
    rows, values = grad._indices()[0], grad._values()
    state.index_add_(0, rows, values.pow(2).flatten(1).mean(1))
    scale = state[rows].sqrt_().add_(1e-10).reciprocal_().mul_(-lr)
    update = values * scale.view(-1, 1)
    weight.add_(torch.sparse_coo_tensor(rows[None], update, weight.shape, check_invariants=False))


def stock_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with torch's ``nn.EmbeddingBag`` and ``nn.Dropout``."""
    import copy

    from torch import nn

    stock = copy.deepcopy(model)
    fast = stock.embedding
    table = nn.EmbeddingBag(
        fast.num_embeddings, fast.embedding_dim, mode=fast.mode, sparse=True,
        padding_idx=fast.padding_idx,
    )  # fmt: skip
    table.weight = fast.weight
    stock.embedding = table
    for i, layer in enumerate(stock.head):
        if isinstance(layer, nn.Dropout):
            stock.head[i] = nn.Dropout(layer.p)
    return stock


def time_epochs(
    model: torch.nn.Module, batches: list[dict[str, torch.Tensor]], update: Any, repeats: int
) -> float:
    """Best ms per step over ``repeats`` epochs (after one warm-up epoch)."""
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    best = float("inf")
    for epoch in range(repeats + 1):
        start = time.perf_counter()
        for batch in batches:
            logits = model(batch["ids"], batch["offsets"])
            loss = loss_fn(logits, batch["labels"])
            for p in model.parameters():
                p.grad = None
            loss.backward()
            update()
        if epoch:
            best = min(best, (time.perf_counter() - start) / len(batches))
    return best * 1000


def time_steps(
    batches: list[dict[str, torch.Tensor]], step: Any, repeats: int, group: int = 0
) -> float:
    """Best ms per step of the fused whole step over ``repeats`` epochs (after a warm-up one):
    one call a batch, or with ``group`` one ``step.steps`` call for each ``group`` batches."""
    best = float("inf")
    for epoch in range(repeats + 1):
        start = time.perf_counter()
        if group:
            for first in range(0, len(batches), group):
                step.steps(batches[first : first + group])
        else:
            for batch in batches:
                step(batch)
        if epoch:
            best = min(best, (time.perf_counter() - start) / len(batches))
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mr", help="data config (mr needs ../shared/data)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-fuse", action="store_true", help="optimizer.fuse_table_update=false")
    parser.add_argument(
        "--group", type=int, default=64, help="batches in one call (4th row; model=boe trains 64)"
    )
    args = parser.parse_args(argv)
    if args.data != "synthetic" and "EMBEDLAB_DATA_DIR" not in os.environ:
        shared = Path(__file__).resolve().parents[2] / "shared" / "data"
        if not shared.is_dir():
            print(f"no {shared}: using --data synthetic", file=sys.stderr)
            args.data = "synthetic"
        else:
            os.environ["EMBEDLAB_DATA_DIR"] = str(shared)
    torch.set_num_threads(args.threads)
    from types import SimpleNamespace

    from embedlab.training.optim import RowWiseAdagrad, fuse_table_update

    with tempfile.TemporaryDirectory(prefix="embedlab-bench-") as tmp:
        module, batches = load_batches(args.data, Path(tmp))
    model = module.model
    stock = stock_model(model)
    lr = 0.1
    head = [p for n, p in model.named_parameters() if not n.startswith("embedding")]
    fast_opt = RowWiseAdagrad([model.embedding.weight], lr=lr)
    head_opt = torch.optim.Adagrad(head, lr=lr, fused=True)  # as build_optimizer's
    fused = not args.no_fuse and fuse_table_update(fast_opt, model.embedding, SimpleNamespace())

    def fast_update() -> None:
        fast_opt.step()
        head_opt.step()

    state = torch.zeros(model.embedding.num_embeddings)
    stock_head = [p for n, p in stock.named_parameters() if not n.startswith("embedding")]
    stock_head_opt = torch.optim.Adagrad(stock_head, lr=lr)

    def stock_update() -> None:
        with torch.no_grad():
            baseline_rowwise_adagrad(stock.embedding.weight, state, lr)
        stock_head_opt.step()

    ids = sum(int(b["ids"].numel()) for b in batches) / len(batches)
    base_ms = time_epochs(stock, batches, stock_update, args.repeats)
    fast_ms = time_epochs(model, batches, fast_update, args.repeats)
    step_ms = group_ms = None
    if fused:
        from embedlab.training.bag_step import fuse_bag_step

        trainer = SimpleNamespace(precision="32-true", callbacks=[])
        whole = fuse_bag_step(model, module.loss_fn, head_opt, trainer)
        if whole is not None:
            step_ms = time_steps(batches, whole, args.repeats)
            group_ms = time_steps(batches, whole, args.repeats, args.group)
    print(
        f"{' '.join(sys.argv)}\ndata={args.data}: {len(batches)} steps of "
        f"{len(batches[0]['labels'])} texts, {ids:.0f} ids a step, table "
        f"{tuple(model.embedding.weight.shape)}, threads {args.threads}, best of {args.repeats}"
    )
    print("| path | ms / step |\n|---|---|")
    print(f"| torch stock (EmbeddingBag, Dropout, dense += sparse) | {base_ms:.2f} |")
    update = "update in the backward" if fused else "index_add_"
    print(f"| embedlab (BagEmbedding, layers.Dropout, {update}, fused head) | {fast_ms:.2f} |")
    if step_ms is not None:
        print(f"| embedlab, the whole step in one compiled call | {step_ms:.2f} |")
    if group_ms is not None:
        print(f"| embedlab, the whole steps of {args.group} batches in one call | {group_ms:.2f} |")
    print(f"speed-up: {base_ms / fast_ms:.2f}x")
    if step_ms is not None:
        print(f"speed-up of the whole step in one call: {base_ms / step_ms:.2f}x")
    if group_ms is not None:
        print(f"speed-up of {args.group} whole steps in one call: {base_ms / group_ms:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
