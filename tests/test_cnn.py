"""Kim's sentence CNN (model=cnn) and multichannel embeddings (embedding.channels=2)."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from embedlab.config import validate
from embedlab.embeddings import build_embedding
from embedlab.embeddings.multichannel import MultiChannelEmbedding, embedding_tables
from embedlab.errors import ConfigError
from embedlab.models.cnn import SentenceCNN
from embedlab.models.transformer import TransformerClassifier, TransformerEncoder
from embedlab.train import train
from embedlab.training.optim import build_optimizer, param_groups

pytestmark = pytest.mark.usefixtures("one_thread")

V, D, C = 40, 8, 3


def table(channels: int = 1, pad_row_zero: bool = True) -> nn.Module:
    torch.manual_seed(0)
    emb = nn.Embedding(V, D, padding_idx=0 if pad_row_zero else None)
    if not pad_row_zero:  # a pad row that holds a real vector (embedding.padding_idx=false)
        nn.init.normal_(emb.weight)
    return MultiChannelEmbedding(emb) if channels == 2 else emb


def cnn(channels: int = 1, pad_row_zero: bool = True, **kw) -> SentenceCNN:
    model = SentenceCNN(table(channels, pad_row_zero), C, num_filters=6, dropout=0.0, **kw)
    return model.eval()


def test_shapes_and_texts_shorter_than_the_widest_filter():
    model = cnn()
    assert [conv.kernel_size[0] for conv in model.convs] == [3, 4, 5]
    assert model.out.in_features == 3 * 6
    ids = torch.tensor([[5, 0, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11]])  # 1 token vs 7
    out = model(ids, ids != 0)
    assert out.shape == (2, C) and torch.isfinite(out).all()
    # one token: each width has windows on it, and it changes the logits
    other = model(torch.tensor([[6]]), torch.tensor([[True]]))
    assert not torch.allclose(out[0], other[0])


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("pad_row_zero", [True, False])
def test_more_padding_never_changes_the_logits(channels, pad_row_zero):
    model = cnn(channels, pad_row_zero)
    text = torch.tensor([[7, 3, 12, 9, 21, 4]])
    alone = model(text, torch.ones_like(text, dtype=torch.bool))
    # to float rounding: the convolution's kernel may sum in another order for another length
    # (bit-equal on the Intel machines this ran on, 1e-7 apart on an AMD EPYC)
    for extra in (1, 5, 30):
        padded = torch.cat([text, torch.zeros(1, extra, dtype=torch.int64)], dim=1)
        torch.testing.assert_close(model(padded, padded != 0), alone, atol=1e-6, rtol=0)
    # in a batch beside a longer text too
    batch = torch.zeros(2, 11, dtype=torch.int64)
    batch[0, :6], batch[1] = text[0], torch.arange(1, 12)
    torch.testing.assert_close(model(batch, batch != 0)[0], alone[0], atol=1e-6, rtol=0)
    if not pad_row_zero:  # the mask is what keeps a non-zero pad row out
        padded = torch.cat([text, torch.zeros(1, 5, dtype=torch.int64)], dim=1)
        assert not torch.allclose(model(padded)[0], alone[0])


def test_padding_never_wins_the_max():
    """Every real window is negative after tanh; a pad-only window would give tanh(0) = 0."""
    model = cnn(activation="tanh")
    with torch.no_grad():
        model.embedding.weight.abs_()  # positive rows (the pad row stays zero) ...
        for conv in model.convs:
            conv.weight.fill_(-0.1)  # ... times negative filters: every real window < 0
            conv.bias.zero_()
    features = []
    model.out.register_forward_hook(lambda m, inp, out: features.append(inp[0]))
    ids = torch.tensor([[3, 4, 5, 0, 0, 0, 0, 0]])
    model(ids, ids != 0)
    assert (features[0] < 0).all()  # with the mask, no pad-only window reaches the max
    model(ids)  # without it, the pads count as tokens and their zero windows win
    assert (features[1] == 0).all()


def test_empty_text_gives_finite_logits():
    model = cnn()
    ids = torch.tensor([[3, 4, 0], [0, 0, 0]])
    assert torch.isfinite(model(ids, ids != 0)).all()


def test_max_norm_rescales_only_rows_above_the_cap():
    model = cnn(max_norm=3.0)
    with torch.no_grad():
        model.out.weight.copy_(torch.zeros_like(model.out.weight))
        model.out.weight[0, 0] = 10.0  # norm 10: rescaled to 3
        model.out.weight[1, :2] = torch.tensor([1.0, 1.0])  # norm 1.41: kept as is
    model.apply_constraints()
    norms = model.out.weight.detach().norm(dim=1)
    assert float(norms[0]) == pytest.approx(3.0, abs=1e-5)
    assert torch.equal(model.out.weight[1, :2], torch.tensor([1.0, 1.0]))
    assert norms[2] == 0
    SentenceCNN(table(), C, max_norm=None).apply_constraints()  # no cap: nothing to do


def test_multichannel_sums_two_copies_of_one_start():
    emb = table(channels=2)
    assert isinstance(emb, MultiChannelEmbedding) and emb.embedding_dim == D
    assert torch.equal(emb.static, emb.nonstatic.weight.detach())
    ids = torch.tensor([[1, 2, 0]])
    torch.testing.assert_close(emb(ids), 2 * emb.nonstatic(ids))
    # only the non-static table is a parameter; the static one is a buffer (in checkpoints)
    assert [n for n, _ in emb.named_parameters()] == ["nonstatic.weight"]
    assert "static" in emb.state_dict()
    assert list(embedding_tables(emb)) == ["embedding/static", "embedding/nonstatic"]
    assert list(embedding_tables(nn.Embedding(3, 2))) == ["embedding"]
    # the transformer takes the pair too (same width, summed rows)
    enc = TransformerEncoder(emb, d_model=D, nhead=2, num_layers=1, dim_feedforward=16)
    assert TransformerClassifier(enc, C).eval()(ids, ids != 0).shape == (1, C)


@pytest.mark.parametrize(
    ("sparse", "optimizer", "unfreeze"),
    [(False, "adadelta", False), (True, "adam", False), (True, "adagrad", True)],
)
def test_optimizer_never_updates_the_static_channel(make_cfg, sparse, optimizer, unfreeze):
    overrides = ["model=cnn", "embedding.channels=2", "embedding.dim=8", f"optimizer={optimizer}"]
    overrides += [f"embedding.sparse={str(sparse).lower()}"]
    if unfreeze:
        overrides.append("embedding.unfreeze_at_epoch=1")
    cfg = validate(make_cfg(*overrides))
    emb = build_embedding(cfg.embedding, V, 0, bag=False)
    model = SentenceCNN(emb, C, num_filters=4, max_norm=None)
    groups = param_groups(model, cfg.optimizer, emb, None, unfreeze_later=unfreeze)
    opt = build_optimizer(groups, cfg.optimizer)
    if unfreeze:  # what UnfreezeEmbedding does at its epoch
        for p in emb.parameters():
            p.requires_grad_(True)
    static, nonstatic = emb.static.clone(), emb.nonstatic.weight.detach().clone()
    ids = torch.randint(1, V, (16, 7))
    labels = torch.randint(0, C, (16,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(ids, ids != 0), labels).backward()
        opt.step()
    assert emb.nonstatic.weight.grad is not None and emb.nonstatic.weight.grad.is_sparse == sparse
    assert torch.equal(emb.static, static)  # bit-identical
    assert not torch.equal(emb.nonstatic.weight.detach(), nonstatic)


# --------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model=boe", "embedding.channels=2"], "embedding.channels"),
        (["task=word2vec", "model=skipgram", "embedding.channels=2"], "embedding.channels"),
        (["model=cnn", "embedding.channels=3"], "embedding.channels"),
        (["model=cnn", "embedding.channels=2", "embedding.freeze=true"], "embedding.freeze"),
        (
            ["task=lm", "data=synthetic_lm", "model=transformer_lm", "embedding.channels=2"],
            "model.tie_weights",
        ),
        (["model=cnn", "model.filter_widths=[]"], "model.filter_widths"),
        (["model=cnn", "model.filter_widths=[3,0]"], "model.filter_widths"),
        (["model=cnn", "model.num_filters=0"], "model.num_filters"),
        (["model=cnn", "model.max_norm=0"], "model.max_norm"),
        (["model=cnn", "model.dropout=1.0"], "model.dropout"),
    ],
)
def test_config_errors_name_the_key(make_cfg, overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert any(p.startswith(f"{key}:") for p in err.value.problems), err.value.problems


def test_sequence_models_accept_two_channels(make_cfg):
    for overrides in (
        ["model=cnn"],
        ["model=transformer"],
        ["task=lm", "data=synthetic_lm", "model=transformer_lm", "model.tie_weights=false"],
    ):
        validate(make_cfg(*overrides, "embedding.channels=2"))


def test_cnn_defaults_are_kims(make_cfg):
    cfg = validate(make_cfg("model=cnn"))
    assert list(cfg.model.filter_widths) == [3, 4, 5] and cfg.model.num_filters == 100
    assert cfg.model.dropout == 0.5 and cfg.model.max_norm == 3.0
    assert cfg.optimizer.name == "adadelta" and cfg.optimizer.kwargs.rho == 0.95
    assert cfg.data.batch_size == 50 and cfg.tokenizer.ngrams == 1
    assert cfg.embedding.dim == 300 and cfg.embedding.init_args.a == -0.25
    assert cfg.embedding.sparse is False


def test_cli_refuses_channels_on_the_bag_model_in_one_line(tmp_path: Path):
    from tests.test_cli import run_cli

    proc = run_cli("model=boe", "embedding.channels=2", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "embedding.channels" in line]
    assert len(lines) == 1 and "model=boe" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- end to end


def test_train_cnn_end_to_end_keeps_the_max_norm(make_cfg, monkeypatch):
    import embedlab

    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    cfg = make_cfg(
        "model=cnn",
        "embedding.dim=32",
        "model.max_norm=1.0",  # low enough to bind within a few epochs (uncapped rows reach ~1.2)
        "trainer.max_epochs=6",
    )
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.3  # 6 balanced classes: chance ~0.17
    ckpt = glob.glob(f"{cfg.paths.output_dir}/checkpoints/epoch*.ckpt")[0]
    model = embedlab.load(ckpt)
    norms = model.model.out.weight.detach().norm(dim=1)
    assert norms.max() <= 1.0 + 1e-5
    assert norms.max() >= 1.0 - 1e-3  # it did bind: the cap, not luck, holds the rows


def _all_synthetic_words_vec(path: Path, dim: int) -> dict[str, np.ndarray]:
    """Vectors for every two-syllable pseudo-word (the synthetic data's whole vocabulary)."""
    from embedlab.data.synthetic import _SYLLABLES

    rng = np.random.default_rng(0)
    words = [a + b for a in _SYLLABLES for b in _SYLLABLES]
    vectors = rng.uniform(-0.5, 0.5, (len(words), dim)).astype(np.float32)
    with open(path, "w") as f:
        f.write(f"{len(words)} {dim}\n")
        for w, v in zip(words, vectors, strict=True):
            f.write(w + " " + " ".join(f"{x:.9g}" for x in v.tolist()) + "\n")
    return dict(zip(words, vectors, strict=True))


def test_train_multichannel_end_to_end(make_cfg, monkeypatch, tmp_path: Path):
    import embedlab

    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    vectors = _all_synthetic_words_vec(tmp_path / "vectors.vec", 16)
    cfg = make_cfg(
        "model=cnn",
        "embedding=pretrained",
        "pretrained=file",
        f"pretrained.path={tmp_path / 'vectors.vec'}",
        "embedding.channels=2",
        "trainer.max_epochs=6",
    )
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.3  # 6 balanced classes: chance ~0.17
    ckpt = glob.glob(f"{cfg.paths.output_dir}/checkpoints/epoch*.ckpt")[0]
    model = embedlab.load(ckpt)
    emb = model.embedding
    assert isinstance(emb, MultiChannelEmbedding)
    words = [(i, w) for i, w in enumerate(model.vocab) if w in vectors]
    assert len(words) > 1500  # every word of the 1,200 training texts
    ids = torch.tensor([i for i, _ in words])
    start = torch.from_numpy(np.stack([vectors[w] for _, w in words]))
    assert torch.equal(emb.static[ids], start)  # the static channel: bit-identical after training
    moved = (emb.nonstatic.weight.detach()[ids] != start).any(dim=1)
    assert moved.float().mean() > 0.5  # the non-static channel was fine-tuned
    assert model.predict(["hello"])[0]["label"] in model.labels
    # TensorBoard: the projector and drift views show both tables
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = Path(cfg.paths.output_dir)
    pbtxt = (run / "projector_config.pbtxt").read_text()
    for name in ("static", "nonstatic"):
        assert f'tensor_name: "embedding/{name}_start:00000"' in pbtxt
        assert f"embedding/{name}_end" in pbtxt
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    static = acc.Scalars("embedding/static/drift_cosine_mean")[0].value
    nonstatic = acc.Scalars("embedding/nonstatic/drift_cosine_mean")[0].value
    assert static < 1e-6 < nonstatic
