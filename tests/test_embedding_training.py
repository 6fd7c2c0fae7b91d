"""Training policy of the table: frozen, fine-tuned with its own lr, unfrozen at epoch N, sparse."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from embedlab.callbacks import UnfreezeEmbedding
from embedlab.config import validate
from embedlab.errors import ConfigError
from embedlab.tasks import TASKS
from embedlab.training.optim import CompositeOptimizer

SMALL = [
    "data.num_train=300",
    "data.num_val=100",
    "data.num_test=100",
    "data.batch_size=32",
    "embedding.dim=16",
]


class Probe(L.Callback):
    """Snapshots of the table after every epoch, and whether gradients were sparse."""

    def __init__(self) -> None:
        self.snapshots: list[torch.Tensor] = []
        self.sparse_grads: list[bool] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.snapshots.append(pl_module.embedding.weight.detach().clone())

    def on_after_backward(self, trainer, pl_module):
        grad = pl_module.embedding.weight.grad
        if grad is not None:
            self.sparse_grads.append(grad.is_sparse)


def fit(cfg, epochs: int, *callbacks):
    validate(cfg)
    L.seed_everything(cfg.seed, verbose=False)
    dm, module = TASKS.get("classification").setup(cfg)
    before = module.embedding.weight.detach().clone()
    head_before = [p.detach().clone() for p in module.model.head.parameters()]
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=dm)
    head_changed = any(
        not torch.equal(a, b)
        for a, b in zip(head_before, module.model.head.parameters(), strict=True)
    )
    return module, trainer, before, head_changed


def emb_group(trainer):
    return [g for g in trainer.optimizers[0].param_groups if g.get("name") == "embedding"]


def test_frozen_table_is_bit_identical_and_not_in_the_optimizer(make_cfg):
    module, trainer, before, head_changed = fit(make_cfg(*SMALL, "embedding.freeze=true"), 1)
    assert torch.equal(module.embedding.weight, before)
    assert head_changed
    assert emb_group(trainer) == []
    opt_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert id(module.embedding.weight) not in opt_params


def test_fine_tuned_table_changes_with_its_own_lr_and_pad_row_stays_zero(make_cfg):
    module, trainer, before, _ = fit(
        make_cfg(*SMALL, "embedding.sparse=false", "embedding.lr=0.02", "optimizer.lr=0.001"), 1
    )
    (group,) = emb_group(trainer)
    assert group["lr"] == 0.02 and group["weight_decay"] == 0.0
    changed_rows = (module.embedding.weight != before).any(dim=1)
    assert changed_rows.sum() > 10
    pad = module.embedding.padding_idx
    assert (
        pad is not None
        and not changed_rows[pad]
        and torch.equal(module.embedding.weight[pad], torch.zeros(16))
    )


def test_unfreeze_happens_at_the_configured_epoch(make_cfg):
    cfg = make_cfg(*SMALL, "embedding.unfreeze_at_epoch=2")
    probe = Probe()
    unfreeze = UnfreezeEmbedding(cfg.embedding.unfreeze_at_epoch)
    module, _, before, _ = fit(cfg, 3, unfreeze, probe)
    assert unfreeze.unfrozen_at == 2
    assert torch.equal(probe.snapshots[0], before) and torch.equal(probe.snapshots[1], before)
    assert not torch.equal(probe.snapshots[2], before)
    assert module.embedding.weight.requires_grad


def test_unfreeze_callback_is_wired_by_train_and_validated(make_cfg, tmp_path):
    from embedlab.callbacks import CALLBACKS

    cfg = validate(make_cfg("embedding.unfreeze_at_epoch=1"))
    cb = CALLBACKS.build(cfg, tmp_path)
    assert (
        isinstance(cb["unfreeze_embedding"], UnfreezeEmbedding)
        and cb["unfreeze_embedding"].epoch == 1
    )
    assert "unfreeze_embedding" not in CALLBACKS.build(validate(make_cfg()), tmp_path)
    with pytest.raises(ConfigError, match="unfreeze_at_epoch: contradicts"):
        validate(make_cfg("embedding.unfreeze_at_epoch=1", "embedding.freeze=true"))


@pytest.mark.parametrize(
    ("optimizer", "members"),
    [
        ("boe_default", ["Adagrad", "RowWiseAdagrad"]),  # the default of model=boe
        ("adamw", ["AdamW", "SparseAdam"]),
        ("sgd", ["SGD", "SGD"]),
    ],
)
def test_sparse_table_gets_sparse_grads_and_the_sparse_counterpart(make_cfg, optimizer, members):
    probe = Probe()
    module, trainer, before, head_changed = fit(
        make_cfg(
            *SMALL,
            f"optimizer={optimizer}",
            "embedding.sparse=true",
            "embedding.lr=0.01",
            "optimizer.fuse_table_update=false",  # the fused update: test_fused_table_update.py
        ),
        1,
        probe,
    )
    opt = trainer.optimizers[0]
    assert isinstance(opt, CompositeOptimizer)
    assert [type(o).__name__ for o in opt.optimizers] == members
    assert probe.sparse_grads and all(probe.sparse_grads)
    assert (module.embedding.weight != before).any(dim=1).sum() > 10  # applied
    assert head_changed
    assert torch.equal(module.embedding.weight[module.embedding.padding_idx], torch.zeros(16))
    state = opt.state_dict()
    assert len(state["optimizers"]) == 2
    assert bool(state["optimizers"][1]["state"]) == (optimizer != "sgd")  # plain SGD keeps none


def test_sparse_run_end_to_end_with_scheduler_and_checkpoint(make_cfg, tmp_path):
    from embedlab.train import train

    cosine = ["scheduler=cosine", "scheduler.warmup_steps=5"]
    cfg = make_cfg(*SMALL, "embedding.sparse=true", *cosine, "trainer.max_epochs=2")
    metrics = train(cfg)
    # 6 classes on 300 texts, 2 epochs: it learns (measured 0.33 on 100 test texts; chance 1/6)
    assert metrics["best_checkpoint"] and metrics["test/acc"] > 1 / 6 + 0.1
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=False)
    dense, sparse = ckpt["optimizer_states"][0]["optimizers"]
    assert sparse["state"]  # the row-wise Adagrad sums were saved
    # the schedule reached both members: 5 warmup steps, then cosine over the other 15 of 20
    # 300 texts / 32 a batch: 10 updates an epoch, all in one Lightning step (batches_per_step)
    assert metrics["global_steps"] == 2
    t = ckpt["lr_schedulers"][0]["last_epoch"]  # scheduler steps (updates) at the checkpoint
    assert t in (10, 20)
    assert t >= 5
    factor = 0.5 * (1 + math.cos(math.pi * (t - 5) / 15))
    for group in dense["param_groups"] + sparse["param_groups"]:
        assert group["lr"] == pytest.approx(group["initial_lr"] * factor)
    # resuming restores both members' states and carries on
    resumed = make_cfg(
        *SMALL, "embedding.sparse=true", *cosine, "trainer.max_epochs=3", "test=false"
    )
    resumed.ckpt_path = metrics["best_checkpoint"]
    resumed.paths.output_dir = str(tmp_path / "resumed")
    again = train(resumed)
    assert again["epochs"] == 3 and again["global_steps"] > metrics["global_steps"]


def test_sparse_with_gradient_clipping_is_rejected(make_cfg):
    with pytest.raises(ConfigError, match="gradient_clip_val"):
        validate(make_cfg("embedding.sparse=true", "trainer.gradient_clip_val=1.0"))
