"""Transformer models: shapes, masks, causality, weight tying, generation, bucketing, end-to-end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embedlab.config import validate
from embedlab.data.batching import LengthBucketSampler
from embedlab.errors import ConfigError
from embedlab.models.transformer import TransformerClassifier, TransformerEncoder, TransformerLM
from embedlab.train import train

# tiny models: one intra-op thread is faster than two on a shared 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


V, D = 50, 32


def encoder(
    emb_dim: int = D, positional: str = "sinusoidal", norm_first: bool = True, **kw
) -> TransformerEncoder:
    torch.manual_seed(0)
    emb = nn.Embedding(V, emb_dim, padding_idx=0)
    return TransformerEncoder(
        emb, d_model=D, nhead=4, num_layers=2, dim_feedforward=64, dropout=0.0,
        positional=positional, norm_first=norm_first, max_positions=64, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_classifier_shapes_and_padding_invariance(pooling):
    model = TransformerClassifier(encoder(), num_classes=3, pooling=pooling, dropout=0.0).eval()
    short = torch.randint(1, V, (1, 5))
    long = torch.randint(1, V, (1, 9))
    batch = torch.zeros(2, 9, dtype=torch.int64)
    batch[0, :5], batch[1] = short[0], long[0]
    mask = batch != 0
    out = model(batch, mask)
    assert out.shape == (2, 3)
    # the padded short text gets the same logits as alone (unpadded), the long one too
    torch.testing.assert_close(
        out[0], model(short, torch.ones_like(short, dtype=torch.bool))[0], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(out[1], model(long)[0], atol=1e-5, rtol=1e-4)
    # without the mask the pads do change the result: the mask is what makes it invariant
    assert not torch.allclose(model(batch)[0], out[0], atol=1e-4)


def test_classifier_survives_empty_text():
    model = TransformerClassifier(encoder(), num_classes=2, pooling="mean").eval()
    ids = torch.tensor([[3, 4, 0], [0, 0, 0]])
    out = model(ids, ids != 0)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("norm_first", [True, False])
def test_lm_shapes_and_causality(norm_first):
    lm = TransformerLM(encoder(norm_first=norm_first), tie_weights=True).eval()
    ids = torch.randint(1, V, (2, 12))
    logits = lm(ids)
    assert logits.shape == (2, 12, V)
    t = 6
    changed = ids.clone()
    changed[:, t + 1 :] = torch.randint(1, V, (2, 12 - t - 1))
    out = lm(changed)
    torch.testing.assert_close(out[:, : t + 1], logits[:, : t + 1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[:, t + 1 :], logits[:, t + 1 :])
    # and changing a token at or before t does change position t
    earlier = ids.clone()
    earlier[:, 0] = (earlier[:, 0] % (V - 1)) + 1
    assert not torch.allclose(lm(earlier)[:, t], logits[:, t])


def test_weight_tying_shares_one_storage():
    lm = TransformerLM(encoder(), tie_weights=True)
    assert lm.lm_head.weight is lm.encoder.embedding.weight
    assert lm.lm_head.weight.data_ptr() == lm.encoder.embedding.weight.data_ptr()
    n_params = sum(p.numel() for p in lm.parameters())  # counted once
    untied = TransformerLM(encoder(), tie_weights=False)
    assert sum(p.numel() for p in untied.parameters()) == n_params + V * D
    assert untied.lm_head.weight.data_ptr() != untied.encoder.embedding.weight.data_ptr()


def test_projection_when_embedding_dim_differs_and_tying_then_fails():
    enc = encoder(emb_dim=16)
    assert isinstance(enc.proj, nn.Linear) and enc.proj.in_features == 16
    model = TransformerClassifier(enc, num_classes=2)
    assert model(torch.randint(1, V, (3, 7))).shape == (3, 2)
    assert TransformerLM(encoder(emb_dim=16), tie_weights=False)(
        torch.randint(1, V, (1, 4))
    ).shape == (1, 4, V)
    with pytest.raises(ConfigError, match="tie_weights"):
        TransformerLM(encoder(emb_dim=16), tie_weights=True)


def test_too_long_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="max_positions"):
        TransformerLM(encoder())(torch.randint(1, V, (1, 65)))


def test_generation_is_deterministic_under_a_seed():
    lm = TransformerLM(encoder(), tie_weights=True)
    prompt = torch.tensor([[1, 2], [3, 4]])

    def sample(seed: int, **kw) -> torch.Tensor:
        return lm.generate(
            prompt, 15, temperature=1.0, generator=torch.Generator().manual_seed(seed), **kw
        )

    a, b, c = sample(0), sample(0), sample(1)
    assert a.shape == (2, 17) and torch.equal(a[:, :2], prompt)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # top_k=1 is greedy, whatever the seed; banned ids never appear
    greedy = lm.generate(prompt, 15, temperature=0.0)
    assert torch.equal(sample(5, top_k=1), greedy)
    assert not (sample(3, banned_ids=[0, 7])[:, 2:] == 7).any()
    assert lm.training  # generate() restores the mode


def test_length_bucket_sampler_orders_and_covers():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 100, (1000,), generator=g)
    sampler = LengthBucketSampler(lengths, batch_size=32, chunk_batches=10, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(1000)) and len(sampler) == 1000
    batches = [torch.tensor(order[i : i + 32]) for i in range(0, 1000, 32)]
    pad = sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)
    rand = torch.randperm(1000, generator=g)
    pad_random = sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in rand.split(32))
    assert pad < pad_random / 3
    sampler.set_epoch(1)
    assert list(sampler) != order
    # two DDP ranks: disjoint, equally many, full batches
    ranks = [LengthBucketSampler(lengths, 32, 10, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    parts = [list(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == len(ranks[0]) and len(parts[0]) % 32 == 0
    assert not set(parts[0]) & set(parts[1])


def test_config_problems_are_named(make_cfg):
    with pytest.raises(ConfigError) as err:
        validate(
            make_cfg(
                "model=transformer_lm", "embedding.dim=32", "model.d_model=30", "model.nhead=4"
            )
        )
    text = str(err.value)
    assert "model.d_model" in text and "model.tie_weights" in text and "task=lm" in text
    with pytest.raises(Exception, match="pooling"):
        validate(make_cfg("model=transformer", "model.pooling=sum"))


def test_padded_training_batches_are_length_bucketed(make_cfg):
    from embedlab.data.datamodule import ClassificationDataModule

    cfg = validate(make_cfg("model=transformer", "data.max_len=10"))
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout="padded")
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, LengthBucketSampler)
    batches = list(loader)
    assert sum(len(b["labels"]) for b in batches) == len(dm.encoded["train"])
    assert max(b["ids"].shape[1] for b in batches) <= 10  # data.max_len truncation
    real = sum(int(b["mask"].sum()) for b in batches)
    padded = sum(b["mask"].numel() for b in batches)
    assert real / padded > 0.95  # almost no padding


def test_train_transformer_classifier_end_to_end(make_cfg, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    cfg = make_cfg(
        "model=transformer", "model.pooling=cls", "optimizer.lr=3e-3", "trainer.max_epochs=3"
    )
    metrics = train(cfg)
    # 6 balanced classes: chance is ~0.17
    assert metrics["test/acc"] > 0.4
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-6
