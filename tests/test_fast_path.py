"""The fast bag-of-embeddings path: row-wise Adagrad, model defaults, cheap training metrics."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_f1_score

from embedlab.config import validate
from embedlab.embeddings.bag import BagEmbedding
from embedlab.models.layers import Dropout
from embedlab.tasks.classification import accuracy_and_macro_f1
from embedlab.train import train
from embedlab.training.optim import Adadelta, RowWiseAdagrad


def _sparse_rows(rows: list[int], values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape, check_invariants=True)


BAG_CASES = [  # (mode, per-sample weights, padding_idx)
    ("mean", False, None),
    ("sum", False, None),
    ("sum", True, None),
    ("mean", False, 0),  # <pad> in the bags: it neither counts nor gets a gradient
    ("sum", True, 3),
]


@pytest.mark.parametrize(("mode", "weighted", "pad"), BAG_CASES)
def test_bag_embedding_matches_torch_forward_and_sparse_gradient(mode, weighted, pad):
    torch.manual_seed(0)
    ref = torch.nn.EmbeddingBag(50, 8, mode=mode, sparse=True, padding_idx=pad)
    fast = BagEmbedding(50, 8, mode=mode, sparse=True, padding_idx=pad)
    fast.load_state_dict(ref.state_dict())
    ids = torch.randint(1, 50, (40,))
    ids[:5] = 0  # the first bag is all <pad> when pad=0
    ids[7] = 3
    offsets = torch.tensor([0, 5, 5, 12, 30])  # an empty bag too
    weights = torch.rand(40) if weighted else None
    upstream = torch.randn(5, 8)
    out_ref = ref(ids, offsets, per_sample_weights=weights)
    out_fast = fast(ids, offsets, per_sample_weights=weights)
    (out_ref * upstream).sum().backward()
    (out_fast * upstream).sum().backward()
    assert torch.allclose(out_fast, out_ref, atol=1e-6)
    assert fast.weight.grad.is_sparse
    assert torch.allclose(fast.weight.grad.to_dense(), ref.weight.grad.to_dense(), atol=1e-6)
    if pad is not None:
        assert pad not in fast.weight.grad.coalesce().indices()[0].tolist()


def test_bag_embedding_takes_torchs_path_where_the_fast_one_does_not_apply():
    torch.manual_seed(0)
    ids, offsets = torch.randint(0, 20, (12,)), torch.tensor([0, 4, 9])
    for kwargs in ({"mode": "max", "sparse": False}, {"mode": "mean", "sparse": False}):
        ref = torch.nn.EmbeddingBag(20, 4, **kwargs)
        fast = BagEmbedding(20, 4, **kwargs)
        fast.load_state_dict(ref.state_dict())
        ref(ids, offsets).sum().backward()
        fast(ids, offsets).sum().backward()
        assert torch.allclose(fast.weight.grad, ref.weight.grad)
    # a sparse table with max_norm (renormalises rows in the forward) keeps torch's path too
    ref = torch.nn.EmbeddingBag(20, 4, mode="sum", sparse=True, max_norm=0.5)
    fast = BagEmbedding(20, 4, mode="sum", sparse=True, max_norm=0.5)
    fast.load_state_dict(ref.state_dict())
    assert torch.allclose(fast(ids, offsets), ref(ids, offsets))
    assert torch.allclose(fast.weight, ref.weight)  # both renormalised the same rows


def test_dropout_zeroes_a_fraction_p_scales_the_rest_and_is_identity_in_eval():
    torch.manual_seed(0)
    x = torch.ones(200, 500, requires_grad=True)
    drop = Dropout(0.3)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()  # the gradient flows through the kept units only, scaled alike
    assert torch.equal(x.grad, y.detach())
    assert torch.equal(drop.eval()(x), x)


def test_rowwise_adagrad_first_step_by_hand():
    w = torch.nn.Parameter(torch.zeros(3, 2))
    opt = RowWiseAdagrad([w], lr=0.5, eps=0.0)
    w.grad = _sparse_rows([2], torch.tensor([[3.0, 4.0]]), (3, 2))
    opt.step()
    # sum_2 = mean(9, 16) = 12.5; w_2 = -0.5 * g / sqrt(12.5)
    expected = -0.5 * torch.tensor([3.0, 4.0]) / 12.5**0.5
    assert torch.allclose(w[2], expected)
    assert torch.equal(w[:2], torch.zeros(2, 2))  # untouched rows stay put
    assert opt.state[w]["sum"].tolist() == [0.0, 0.0, 12.5]  # one float per row


def test_rowwise_adagrad_sparse_and_dense_gradients_agree():
    torch.manual_seed(0)
    start = torch.randn(6, 4)
    sparse_w, dense_w = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opts = [RowWiseAdagrad([sparse_w], lr=0.1), RowWiseAdagrad([dense_w], lr=0.1)]
    for rows in ([0, 3, 5], [3, 1], [5]):
        g = torch.randn(len(rows), 4)
        sparse_w.grad = _sparse_rows(rows, g, (6, 4))
        dense_w.grad = torch.zeros(6, 4).index_add_(0, torch.tensor(rows), g)
        for opt in opts:
            opt.step()
    assert torch.allclose(sparse_w, dense_w, atol=1e-6)


def test_rowwise_adagrad_counts_each_occurrence_of_a_row():
    """Uncoalesced rows: each occurrence adds its own mean square, as per-example steps would."""
    w = torch.nn.Parameter(torch.zeros(2, 1))
    opt = RowWiseAdagrad([w], lr=1.0, eps=0.0)
    w.grad = _sparse_rows([1, 1], torch.tensor([[1.0], [1.0]]), (2, 1))
    opt.step()
    assert opt.state[w]["sum"][1].item() == pytest.approx(2.0)  # 1 + 1, not (1 + 1)**2
    assert w[1].item() == pytest.approx(-2 / 2**0.5)


def test_rowwise_adagrad_state_round_trips():
    w = torch.nn.Parameter(torch.ones(4, 2))
    opt = RowWiseAdagrad([w], lr=0.1)
    w.grad = _sparse_rows([0, 2], torch.ones(2, 2), (4, 2))
    opt.step()
    again = RowWiseAdagrad([w], lr=0.1)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[w]["sum"], opt.state[w]["sum"])


def test_accuracy_and_macro_f1_match_torchmetrics():
    torch.manual_seed(1)
    preds, target = torch.randint(0, 5, (300,)), torch.randint(0, 4, (300,))  # class 4 never true
    confusion = torch.zeros(5, 5, dtype=torch.long)
    confusion.index_put_((target, preds), torch.ones(300, dtype=torch.long), accumulate=True)
    acc, f1 = accuracy_and_macro_f1(confusion)
    assert acc.item() == pytest.approx(
        multiclass_accuracy(preds, target, 5, average="micro").item()
    )
    assert f1.item() == pytest.approx(multiclass_f1_score(preds, target, 5, average="macro").item())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], {"ngrams": 2, "sparse": True, "batch": 256, "optimizer": "adagrad"}),
        (["model=transformer"], {"ngrams": 1, "sparse": False, "batch": 64, "optimizer": "adamw"}),
        (["experiment=transformer_mr"], {"ngrams": 1, "sparse": False, "batch": 64}),
        (["tokenizer.ngrams=1", "data.batch_size=32"], {"ngrams": 1, "batch": 32}),  # kept
        (["optimizer=adadelta"], {"sparse": False}),  # no sparse counterpart: a dense table
        (["optimizer=adamw"], {"sparse": True, "optimizer": "adamw"}),  # SparseAdam
    ],
)
def test_model_defaults_fill_what_the_user_left_null(make_cfg, overrides, expected):
    cfg = validate(make_cfg(*overrides, tiny=False))
    got = {
        "ngrams": cfg.tokenizer.ngrams,
        "sparse": cfg.embedding.sparse,
        "batch": cfg.data.batch_size,
        "optimizer": cfg.optimizer.name,
    }
    assert {k: got[k] for k in expected} == expected


def test_sparse_table_with_an_optimizer_without_a_sparse_counterpart_is_refused(make_cfg):
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"embedding\.sparse: optimizer 'adadelta'"):
        validate(make_cfg("optimizer=adadelta", "embedding.sparse=true"))


def test_metrics_report_startup_tokens_per_second_and_checkpoint_size(make_cfg, tmp_path: Path):
    metrics = train(make_cfg())
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["checkpoint_bytes"] == Path(metrics["best_checkpoint"]).stat().st_size
    assert 0 < saved["startup_seconds"] < 600
    # word tokens: the synthetic texts have 8..24 words, so 8x to 24x the examples per second
    ratio = saved["train_tokens_per_second"] / saved["examples_per_second"]
    assert 8 <= ratio <= 24


@pytest.mark.parametrize(
    ("batches", "every", "logged"),
    [
        (1, 3, [2, 5, 8]),  # 1200 texts at 256 a batch: 5 steps an epoch, 10 in all
        (2, 2, [1, 3, 5]),  # 2 batches a step: 3 steps an epoch (2, 2, 1 batches), 6 in all
    ],
)
def test_training_metrics_are_logged_every_n_steps_and_per_epoch(
    make_cfg, tmp_path: Path, batches, every, logged
):
    train(
        make_cfg(
            "logger=csv",
            f"trainer.log_every_n_steps={every}",
            f"data.batches_per_step={batches}",
            "callbacks=none",
        )
    )
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    step_rows = [r for r in rows if r.get("train/loss_step")]
    epoch_rows = [r for r in rows if r.get("train/acc_epoch")]
    assert [int(r["step"]) for r in step_rows] == logged
    first, second = ({k: float(r[f"train/{k}_epoch"]) for k in ("loss", "acc")} for r in epoch_rows)
    assert second["acc"] > first["acc"] and second["loss"] < first["loss"]  # it learns


@pytest.mark.parametrize("kwargs", [{}, {"weight_decay": 0.1, "maximize": True}])
def test_adadelta_kernel_equals_torchs_to_float_rounding(kwargs):
    torch.manual_seed(0)
    start = [torch.randn(50, 8), torch.randn(8)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    params = {}
    for name, cls in (("torch", torch.optim.Adadelta), ("ours", Adadelta)):
        ps = [p.clone().requires_grad_() for p in start]
        opt = cls(ps, lr=1.0, rho=0.95, eps=1e-6, foreach=False, **kwargs)
        for step in grads:
            for p, g in zip(ps, step, strict=True):
                p.grad = g.clone()
            opt.step()
        params[name] = (ps, opt)
    for a, b, s in zip(params["torch"][0], params["ours"][0], start, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        assert (a - s).abs().max() > 1e-3  # they did move
    # the same checkpoint: either loads the other's
    torch_state, our_state = params["torch"][1].state_dict(), params["ours"][1].state_dict()
    assert our_state["state"][0].keys() == torch_state["state"][0].keys()
    assert torch.equal(our_state["state"][0]["step"], torch_state["state"][0]["step"])
    for key in ("square_avg", "acc_delta"):
        torch.testing.assert_close(our_state["state"][0][key], torch_state["state"][0][key])
    resumed = [p.detach().clone().requires_grad_() for p in params["torch"][0]]
    opt = Adadelta(resumed, lr=1.0, rho=0.95, eps=1e-6, **kwargs)
    opt.load_state_dict(copy.deepcopy(torch_state))  # as from a checkpoint file
    for p, g in zip(resumed, grads[0], strict=True):
        p.grad = g.clone()
    opt.step()
    ref = params["torch"][1]
    for p, g in zip(params["torch"][0], grads[0], strict=True):
        p.grad = g.clone()
    ref.step()
    for a, b in zip(resumed, params["torch"][0], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _optimizer_cfg(name, **kwargs):
    from omegaconf import OmegaConf

    return OmegaConf.create({"name": name, "lr": 0.01, "weight_decay": 0.0, "kwargs": kwargs})


def test_dense_optimizers_use_torchs_fused_kernel_unless_told_otherwise():
    from types import SimpleNamespace

    from embedlab.training.optim import build_optimization, build_optimizer

    model = torch.nn.Linear(4, 3)
    groups = [{"params": list(model.parameters())}]
    assert build_optimizer(groups, _optimizer_cfg("adamw")).defaults["fused"] is True
    assert build_optimizer(groups, _optimizer_cfg("sgd")).defaults["fused"] is True
    chosen = build_optimizer(groups, _optimizer_cfg("adamw", foreach=False)).defaults
    assert chosen["fused"] is None and chosen["foreach"] is False  # the user's kwargs win
    assert "fused" not in build_optimizer(groups, _optimizer_cfg("adadelta")).defaults
    assert build_optimizer(groups, _optimizer_cfg("adam"), fused=False).defaults["fused"] is None
    # fused and unfused AdamW agree to float rounding
    steps = {}
    for fused in (True, False):
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        opt = build_optimizer([{"params": list(net.parameters())}], _optimizer_cfg("adamw"), fused)
        for _ in range(5):
            opt.zero_grad()
            net(torch.ones(2, 4)).pow(2).sum().backward()
            opt.step()
        steps[fused] = net.weight.detach()
    torch.testing.assert_close(steps[True], steps[False])
    # Lightning refuses to clip a fused optimizer's gradients under fp16's scaler: not fused then
    from omegaconf import OmegaConf

    sched = OmegaConf.create({"name": "none", "interval": "step", "warmup_steps": 0, "kwargs": {}})
    trainer = SimpleNamespace(
        precision="16-mixed", gradient_clip_val=1.0, estimated_stepping_batches=10
    )
    opt = build_optimization(model, None, _optimizer_cfg("adamw"), sched, trainer)
    assert opt.defaults["fused"] is None
    trainer.gradient_clip_val = None
    assert build_optimization(model, None, _optimizer_cfg("adamw"), sched, trainer).defaults[
        "fused"
    ]
