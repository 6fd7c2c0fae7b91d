"""Initializers against their formulas, the pad row, and every layer option from config."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from embedlab.config import EmbeddingConfig
from embedlab.embeddings import INITIALIZERS, build_embedding, initialize
from embedlab.embeddings.init import xavier_bound

V, D = 4000, 64  # big enough for tight statistics, small enough to be instant


def emb_cfg(**kw):
    return OmegaConf.merge(OmegaConf.structured(EmbeddingConfig), kw)


def table(name, **args):
    torch.manual_seed(0)
    return initialize(torch.empty(V, D), name, args)


def test_every_initializer_has_a_config_file():
    from embedlab.paths import config_dir

    files = {p.stem for p in (config_dir() / "embedding").glob("*.yaml")}
    assert set(INITIALIZERS.names()) <= files


def test_normal_mean_and_std():
    w = table("normal", mean=0.5, std=0.2)
    assert w.mean().item() == pytest.approx(0.5, abs=0.005)
    assert w.std().item() == pytest.approx(0.2, rel=0.02)


def test_uniform_bounds_and_scale_by_dim():
    w = table("uniform", a=-0.3, b=0.1)
    assert w.min() >= -0.3 and w.max() <= 0.1
    assert w.mean().item() == pytest.approx(-0.1, abs=0.005)
    w = table("uniform", a=-1.0, b=1.0, scale_by_dim=True)
    assert w.abs().max() <= 1.0 / D
    assert w.abs().max() > 0.99 / D


def test_constant_exact_and_zeros():
    assert torch.equal(table("constant", value=0.125), torch.full((V, D), 0.125))
    assert torch.equal(table("zeros"), torch.zeros(V, D))


def test_xavier_uniform_bound_is_gain_sqrt_6_over_fans():
    bound = 2.0 * math.sqrt(6.0 / (V + D))
    assert xavier_bound(V, D, 2.0) == pytest.approx(bound)
    w = table("xavier_uniform", gain=2.0)
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)  # std of U(-b, b)


def test_xavier_normal_std():
    w = table("xavier_normal", gain=1.5)
    assert w.std().item() == pytest.approx(1.5 * math.sqrt(2.0 / (V + D)), rel=0.02)


@pytest.mark.parametrize("mode,fan", [("fan_in", D), ("fan_out", V)])
def test_kaiming_normal_and_uniform(mode, fan):
    # torch's fan_in of a (V, D) weight is D (its columns), fan_out is V
    gain = math.sqrt(2.0)  # relu
    w = table("kaiming_normal", a=0.0, mode=mode, nonlinearity="relu")
    assert w.std().item() == pytest.approx(gain / math.sqrt(fan), rel=0.02)
    w = table("kaiming_uniform", a=0.0, mode=mode, nonlinearity="relu")
    bound = gain * math.sqrt(3.0 / fan)
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound


def test_orthogonal_columns_are_orthonormal_times_gain():
    w = table("orthogonal", gain=3.0)
    gram = w.T @ w  # (D, D): V > D, so the columns are orthogonal
    assert torch.allclose(gram, 9.0 * torch.eye(D), atol=1e-3)


def test_trunc_normal_bounds():
    w = table("trunc_normal", mean=0.0, std=1.0, a=-0.5, b=0.25)
    assert w.min() >= -0.5 and w.max() <= 0.25
    assert w.min() < -0.49 and w.max() > 0.24


@pytest.mark.parametrize("name", sorted(set(INITIALIZERS.names()) - {"zeros"}))
def test_pad_row_zero_after_init_and_after_a_training_step(name):
    args = {"value": 0.5} if name == "constant" else {}
    cfg = emb_cfg(init=name, init_args=args, dim=8, mode="sum")
    torch.manual_seed(0)
    layer = build_embedding(cfg, 50, pad_idx=0, bag=True)
    assert torch.equal(layer.weight[0], torch.zeros(8))
    assert layer.weight[1:].abs().sum() > 0
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, weight_decay=0.1)
    ids = torch.tensor([0, 1, 2, 0, 0, 3])
    loss = layer(ids, torch.tensor([0, 3])).pow(2).sum()
    loss.backward()
    before = layer.weight.detach().clone()
    opt.step()
    assert torch.equal(layer.weight[0], torch.zeros(8))
    assert not torch.equal(layer.weight[1], before[1])


def test_layer_options_reach_the_module():
    cfg = emb_cfg(
        dim=16,
        max_norm=1.5,
        norm_type=1.0,
        scale_grad_by_freq=True,
        sparse=True,
        mode="max",
        padding_idx=False,
    )
    layer = build_embedding(cfg, 30, pad_idx=0, bag=True)
    assert isinstance(layer, nn.EmbeddingBag)
    assert (
        layer.max_norm,
        layer.norm_type,
        layer.scale_grad_by_freq,
        layer.sparse,
        layer.mode,
    ) == (
        1.5,
        1.0,
        True,
        True,
        "max",
    )
    assert layer.padding_idx is None
    seq = build_embedding(cfg, 30, pad_idx=0, bag=False)
    assert isinstance(seq, nn.Embedding) and seq.sparse and seq.max_norm == 1.5


def test_max_norm_renormalises_looked_up_rows():
    layer = build_embedding(
        emb_cfg(init="constant", init_args={"value": 1.0}, dim=4, max_norm=1.0, mode="mean"),
        10,
        0,
        True,
    )
    out = layer(torch.tensor([3, 4]), torch.tensor([0]))
    assert out.norm().item() == pytest.approx(1.0, rel=1e-4)
    assert layer.weight[3].norm().item() == pytest.approx(
        1.0, rel=1e-4
    )  # rows renormalised in place
    assert layer.weight[5].norm().item() == pytest.approx(2.0)  # rows not looked up untouched


def test_scale_grad_by_freq_divides_by_in_batch_count():
    def grad(scale):  # nn.Embedding (sequence models); the bag variant is torch's own business
        layer = build_embedding(emb_cfg(dim=3, scale_grad_by_freq=scale), 10, 0, bag=False)
        layer(torch.tensor([2, 2, 2, 5])).sum().backward()
        return layer.weight.grad

    plain, scaled = grad(False), grad(True)
    assert torch.allclose(plain[2], torch.full((3,), 3.0))
    assert torch.allclose(scaled[2], torch.full((3,), 1.0))
    assert torch.allclose(scaled[5], plain[5])


def test_sparse_option_makes_sparse_gradients():
    layer = build_embedding(emb_cfg(dim=3, sparse=True, mode="sum"), 10, 0, True)
    layer(torch.tensor([1, 2]), torch.tensor([0])).sum().backward()
    assert layer.weight.grad.is_sparse


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_bag_modes(mode):
    layer = build_embedding(emb_cfg(dim=2, mode=mode, padding_idx=False), 5, None, True)
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[0.0, 0.0], [1.0, 4.0], [3.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
        )
    out = layer(torch.tensor([1, 2]), torch.tensor([0]))[0]
    expected = {"sum": [4.0, 6.0], "mean": [2.0, 3.0], "max": [3.0, 4.0]}[mode]
    assert out.tolist() == expected


def test_per_sample_weights_from_config(make_cfg):
    from embedlab.config import validate
    from embedlab.errors import ConfigError

    cfg = make_cfg("embedding.per_sample_weights=true", "embedding.mode=sum")
    validate(cfg)
    layer = build_embedding(cfg.embedding, 6, 0, True)
    w = torch.tensor([0.5, 2.0])
    out = layer(torch.tensor([1, 2]), torch.tensor([0]), per_sample_weights=w)
    assert torch.allclose(out[0], 0.5 * layer.weight[1] + 2.0 * layer.weight[2])
    with pytest.raises(ConfigError, match="per_sample_weights"):
        validate(make_cfg("embedding.per_sample_weights=true", "embedding.mode=mean"))


def test_every_layer_option_from_the_composed_config(make_cfg):
    cfg = make_cfg(
        "embedding=xavier_uniform",
        "embedding.max_norm=2.0",
        "embedding.norm_type=1.0",
        "embedding.scale_grad_by_freq=true",
        "embedding.sparse=true",
        "embedding.mode=max",
    )
    layer = build_embedding(cfg.embedding, 20, 0, True)
    got = (
        layer.max_norm,
        layer.norm_type,
        layer.scale_grad_by_freq,
        layer.sparse,
        layer.mode,
        layer.padding_idx,
    )
    assert got == (2.0, 1.0, True, True, "max", 0)
