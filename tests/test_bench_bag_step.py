"""scripts/bench_bag_step.py compares like with like: both paths make the same update."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

import pytest
import torch

from embedlab.training.optim import RowWiseAdagrad, fuse_table_update
from tests.conftest import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_bag_step")


@pytest.mark.parametrize("fuse", [False, True])
def test_stock_and_embedlab_paths_make_the_same_update(bench, tmp_path, one_thread, fuse):
    module, batches = bench.load_batches("synthetic", tmp_path, ("data.num_train=300",))
    model = module.model
    for layer in model.head:  # no dropout: both sides then see the same activations
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0
    stock = bench.stock_model(model)
    assert type(stock.embedding) is torch.nn.EmbeddingBag
    assert stock.embedding.weight is not model.embedding.weight
    before = model.embedding.weight.detach().clone()
    state = torch.zeros(model.embedding.num_embeddings)
    fast_opt = RowWiseAdagrad([model.embedding.weight], lr=0.1)
    if fuse and not fuse_table_update(fast_opt, model.embedding, SimpleNamespace()):
        pytest.skip("no C compiler: the table's update is not fused")
    for net, update in (
        (stock, lambda: bench.baseline_rowwise_adagrad(stock.embedding.weight, state, 0.1)),
        (model, fast_opt.step),
    ):
        batch = batches[0]
        loss = torch.nn.functional.cross_entropy(
            net(batch["ids"], batch["offsets"]), batch["labels"]
        )
        loss.backward()
        with torch.no_grad():
            update()
    moved = (model.embedding.weight - before).abs().sum(1) > 0
    assert moved.sum() > 10  # the rows of the batch moved ...
    assert torch.allclose(stock.embedding.weight, model.embedding.weight, atol=1e-6)  # alike
