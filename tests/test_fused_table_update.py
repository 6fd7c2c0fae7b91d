"""The bag table's row-wise Adagrad update inside the backward (optimizer.fuse_table_update),
from the bag gradients, by the C kernel compiled on first use (embedlab.training.native)."""

from __future__ import annotations

import os
from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from embedlab.embeddings.bag import BagEmbedding
from embedlab.training import native
from embedlab.training.optim import (
    RowWiseAdagrad,
    _bag_kernel,
    fuse_table_update,
    unfuse_table_update,
)
from tests.conftest import train_into

needs_cc = pytest.mark.skipif(native.compiler() is None, reason="no C compiler (cc)")


def _batches(n: int, vocab: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(1, 9, (12,), generator=gen)
        ids = torch.randint(0, vocab, (int(lengths.sum()),), generator=gen)  # 0 is <pad>
        offsets = torch.cumsum(lengths, 0) - lengths
        weights = torch.rand(ids.numel(), generator=gen)
        target = torch.randn(12, 8, generator=gen)
        out.append((ids, offsets, weights, target))
    return out


@needs_cc
@pytest.mark.parametrize(
    ("mode", "weighted", "dtype"),
    [("mean", False, torch.float32), ("sum", True, torch.float32), ("mean", False, torch.float64)],
)
def test_fused_update_is_the_step_from_the_sparse_gradient(mode, weighted, dtype):
    torch.manual_seed(0)
    tables = []
    for _ in range(2):
        table = BagEmbedding(30, 8, mode=mode, sparse=True, padding_idx=0).to(dtype)
        tables.append(table)
    tables[1].load_state_dict(tables[0].state_dict())
    start = tables[0].weight.detach().clone()
    optimizers = [RowWiseAdagrad([t.weight], lr=0.3) for t in tables]
    assert fuse_table_update(optimizers[1], tables[1], SimpleNamespace())
    for ids, offsets, weights, target in _batches(6, 30):  # rows repeat, <pad> among them
        for table, opt in zip(tables, optimizers, strict=True):
            opt.zero_grad()
            w = weights.to(dtype) if weighted else None
            out = table(ids, offsets, per_sample_weights=w)
            ((out - target.to(dtype)) ** 2).sum().backward()
            opt.step()
    plain, fused = tables
    assert plain.weight.grad is not None and plain.weight.grad.is_sparse
    assert fused.weight.grad is None  # updated in its backward
    assert fused.last_gradient is not None
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fused.weight, plain.weight, rtol=rtol, atol=rtol)
    sums = [opt.state[t.weight]["sum"] for t, opt in zip(tables, optimizers, strict=True)]
    torch.testing.assert_close(sums[1], sums[0], rtol=rtol, atol=rtol)
    moved = (plain.weight - start).abs().sum(1) > 0
    assert not moved[0] and moved[1:].sum() >= 20  # <pad> untouched, most rows trained
    copy = deepcopy(fused)  # e.g. a callback's averaged model: trained by nothing of ours
    assert copy.fused_update is None and copy.last_gradient is None
    assert fused.fused_update is not None
    unfuse_table_update(fused)
    assert fused.fused_update is None and fused.last_gradient is None


def test_no_fusion_where_the_gradient_must_be_seen():
    table = BagEmbedding(10, 4, mode="mean", sparse=True)
    opt = RowWiseAdagrad([table.weight], lr=0.1)
    plain = SimpleNamespace(gradient_clip_val=None, accumulate_grad_batches=1, world_size=1)
    for change in (
        {"gradient_clip_val": 1.0},
        {"accumulate_grad_batches": 2},
        {"precision": "16-mixed"},
        {"world_size": 2},
    ):
        assert not fuse_table_update(opt, table, SimpleNamespace(**{**vars(plain), **change}))
        assert table.fused_update is None
    sgd = torch.optim.SGD([table.weight], lr=0.1)
    assert not fuse_table_update(sgd, table, plain)  # only row-wise Adagrad takes bag gradients
    dense = BagEmbedding(10, 4, mode="mean", sparse=False)
    assert not fuse_table_update(RowWiseAdagrad([dense.weight]), dense, plain)
    if native.compiler() is not None:
        assert fuse_table_update(opt, table, plain)


@needs_cc
def test_a_run_fuses_while_training_only_and_matches_the_unfused_run(
    make_cfg, tmp_path, monkeypatch
):
    import lightning as L

    from embedlab.callbacks import CALLBACKS

    seen: list[tuple[bool, bool]] = []
    tables: list[BagEmbedding] = []

    class Probe(L.Callback):  # is the table updated in its backward (no .grad) while training?
        def on_train_batch_end(self, trainer, module, *args):
            emb = module.embedding
            tables.append(emb)
            seen.append((emb.fused_update is not None, emb.weight.grad is None))

    build = CALLBACKS.build
    monkeypatch.setattr(CALLBACKS, "build", lambda *a, **k: {**build(*a, **k), "probe": Probe()})
    runs = {}
    for fuse in (True, False):
        cfg = make_cfg(f"optimizer.fuse_table_update={str(fuse).lower()}", "scheduler=linear")
        metrics, state = train_into(cfg, tmp_path / str(fuse))
        runs[fuse] = metrics, state["model.embedding.weight"]
        assert len(seen) == 2 and set(seen) == {(fuse, fuse)}  # 2 steps of K batches
        assert tables[-1].fused_update is None  # the module outlives the run's optimizer
        seen.clear()
    (fused, fused_table), (plain, plain_table) = runs[True], runs[False]
    assert not torch.equal(fused_table, plain_table)  # not the same path: rounding differs
    torch.testing.assert_close(fused_table, plain_table, rtol=1e-4, atol=1e-5)
    assert fused["val/acc"] == pytest.approx(plain["val/acc"], abs=0.01)


@needs_cc
def test_kernel_cache_rebuilds_a_tampered_library(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_KERNEL_DIR", str(tmp_path / "kernels"))
    native.load.cache_clear()
    try:
        assert native.load("bag_update") is not None
        (lib,) = (tmp_path / "kernels").glob("bag_update-*.so")
        digest = (lib.parent / (lib.name + ".sha256")).read_text().strip()
        assert oct(os.stat(tmp_path / "kernels").st_mode & 0o777) == "0o700"
        swapped = lib.with_suffix(".new")  # replaced, not rewritten: this process maps it
        swapped.write_bytes(lib.read_bytes() + b"tampered")
        os.replace(swapped, lib)
        assert native._digest(lib) != digest
        native.load.cache_clear()
        assert native.load("bag_update") is not None
        assert (
            native._digest(lib)
            == digest
            == (lib.parent / (lib.name + ".sha256")).read_text().strip()
        )
    finally:
        native.load.cache_clear()


@needs_cc
def test_kernel_cache_others_can_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("EMBEDLAB_KERNEL_DIR", str(shared))
    native.load.cache_clear()
    try:
        lib = native.load("bag_update")
        assert lib is not None and not Path(lib._name).is_relative_to(shared)
        assert list(shared.iterdir()) == []
    finally:
        native.load.cache_clear()


def test_without_a_compiler_the_table_keeps_its_gradient(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    native.load.cache_clear()
    _bag_kernel.cache_clear()
    try:
        table = BagEmbedding(10, 4, mode="mean", sparse=True)
        opt = RowWiseAdagrad([table.weight], lr=0.1)
        plain = SimpleNamespace(gradient_clip_val=None, accumulate_grad_batches=1, world_size=1)
        assert not fuse_table_update(opt, table, plain)
        assert "no C compiler" in caplog.text
        table(torch.tensor([1, 2, 3]), torch.tensor([0, 2])).sum().backward()
        assert table.weight.grad is not None and table.weight.grad.is_sparse
    finally:
        native.load.cache_clear()
        _bag_kernel.cache_clear()
