"""model=lstm_lm: shapes, truncated BPTT over contiguous rows, tying, adaptive softmax, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from embedlab.data.lm import IGNORE, StreamRows
from embedlab.models.layers import LockedDropout
from embedlab.models.lstm import LSTMLM
from embedlab.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

V = 50
TINY_LM = [
    "task=lm",
    "data=synthetic_lm",
    "model=lstm_lm",
    "data.chunking=rows",
    "data.num_train=300",
    "data.num_val=40",
    "data.num_test=40",
    "data.block_size=12",
    "data.batch_size=8",
    "data.eval_batch_size=4",
    "embedding.dim=16",
    "model.hidden_size=16",
    "tokenizer.eos_token='<eos>'",
]


def lstm(softmax: str = "full", **kw) -> LSTMLM:
    torch.manual_seed(0)
    return LSTMLM(nn.Embedding(V, 16), V, hidden_size=16, softmax=softmax, cutoffs=[10, 30], **kw)


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_output_shapes_and_state(softmax):
    model = lstm(softmax, num_layers=3).eval()
    ids = torch.randint(0, V, (3, 7))
    h, state = model(ids)
    assert h.shape == (3, 7, 16)
    assert len(state) == 3 and all(s.shape == (1, 3, 16) for hc in state for s in hc)
    logits = model.logits(ids)
    assert logits.shape == (3, 7, V)
    total, state = model.nll(ids, torch.randint(0, V, (3, 7)))
    assert total.ndim == 0 and total > 0
    assert not any(s.requires_grad for hc in state for s in hc)  # detached: truncated BPTT


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_carried_state_equals_one_long_forward_and_reset_differs(softmax):
    model = lstm(softmax, num_layers=2).eval()
    ids, targets = torch.randint(0, V, (2, 12)), torch.randint(0, V, (2, 12))
    whole, _ = model.nll(ids, targets)
    first, state = model.nll(ids[:, :6], targets[:, :6])
    carried, _ = model.nll(ids[:, 6:], targets[:, 6:], state)
    fresh, _ = model.nll(ids[:, 6:], targets[:, 6:])
    assert (first + carried).item() == pytest.approx(whole.item(), rel=1e-5)
    assert abs(fresh.item() - carried.item()) > 1e-3


def test_stream_rows_continue_from_batch_to_batch_and_predict_every_token_once():
    stream = torch.arange(1, 101)  # 100 tokens: 99 predicted
    data = StreamRows(stream, rows=3, block_size=7, pad_id=0)
    batches = [data[i] for i in range(len(data))]
    ids = torch.cat([b["ids"] for b in batches], dim=1)  # (3, L): the rows, batch after batch
    targets = torch.cat([b["targets"] for b in batches], dim=1)
    real = targets != IGNORE
    assert int(real.sum()) == data.num_tokens == 99
    assert torch.equal(targets[real], stream[1:])  # each once, in stream order row by row
    assert torch.equal(targets[:, :-1][real[:, :-1]], ids[:, 1:][real[:, :-1]])
    assert all(b["ids"].shape[0] == 3 for b in batches)
    # under DDP each rank keeps its own contiguous rows of rows x world
    shards = [StreamRows(stream, 2, 7, 0, shard=(r, 2)).targets for r in range(2)]
    assert torch.equal(torch.cat(shards), StreamRows(stream, 4, 7, 0).targets)


def _val_nll(module, loader, reset: bool = True) -> tuple[float, int]:
    if reset:
        module.on_validation_epoch_start()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            nll, n = module._nll(batch, "val")
            total, count = total + float(nll), count + n
    return total, count


def test_task_carries_state_over_rows_and_resets_it_for_each_pass(make_cfg):
    from embedlab.tasks import TASKS

    dm, module = TASKS.get("lm").setup(make_cfg(*TINY_LM))
    module.model.eval()
    assert module.carry_state
    loader = dm.val_dataloader()
    assert len(loader) > 2
    first, n = _val_nll(module, loader)
    assert n == dm.datasets["val"].num_tokens
    # (an untrained model leans little on its state: any gap beyond float noise is the state)
    assert _val_nll(module, loader)[0] == pytest.approx(first, rel=1e-6)  # reset at the start
    assert abs(_val_nll(module, loader, reset=False)[0] - first) > 1e-3
    # carried over batches = each row read in one forward pass
    rows = dm.datasets["val"]
    with torch.no_grad():
        whole, _ = module.model.nll(rows.ids, rows.targets)
    assert float(whole) == pytest.approx(first, rel=1e-5)
    # without carrying, every batch starts from zeros: a different (worse-informed) sum
    module.carry_state = False
    assert abs(_val_nll(module, loader)[0] - first) > 1e-3
    # training: the state the last batch left is dropped at the epoch start
    module.carry_state = True
    module.model.train()
    module.training_step(next(iter(dm.train_dataloader())), 0)
    assert "train" in module.state
    module.on_train_epoch_start()
    assert "train" not in module.state


def test_tied_weights_share_storage(make_cfg):
    from embedlab.tasks import TASKS

    _, module = TASKS.get("lm").setup(make_cfg(*TINY_LM, "model.tie_weights=true"))
    model = module.model
    assert model.head.weight is model.embedding.weight
    assert model.head.weight.data_ptr() == module.embedding.weight.data_ptr()


def test_adaptive_softmax_perplexity_is_exp_mean_nll_by_hand(make_cfg):
    from embedlab.tasks import TASKS

    _, module = TASKS.get("lm").setup(
        make_cfg(*TINY_LM, "model.softmax=adaptive", "model.cutoffs=[20,60]")
    )
    model = module.model.eval()
    ids = torch.randint(1, 100, (2, 5))
    targets = torch.randint(1, 100, (2, 5))
    targets[1, 3:] = IGNORE  # padded tail: not predicted
    module._eval_step("val", {"ids": ids, "targets": targets})
    ppl = math.exp(float(module.val_nll.compute()) / float(module.val_count.compute()))
    with torch.no_grad():
        logp = model.logits(ids)  # (B, T, V) log-probabilities
    keep = targets != IGNORE
    by_hand = -logp[keep].gather(1, targets[keep][:, None]).mean()
    assert int(module.val_count.compute()) == 8
    assert ppl == pytest.approx(math.exp(float(by_hand)), rel=1e-5)
    assert torch.exp(logp).sum(-1).allclose(torch.ones(2, 5), atol=1e-5)  # a distribution


def test_variational_dropout_keeps_one_mask_over_time():
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(4, 9, 32))
    zeros = out == 0
    assert zeros.any() and torch.equal(zeros, zeros[:, :1].expand_as(zeros))
    assert torch.equal(drop.eval()(torch.ones(2, 3, 4)), torch.ones(2, 3, 4))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.softmax=adaptive", "model.cutoffs=[60,20]"], "model.cutoffs"),
        (["model.softmax=adaptive", "model.cutoffs=[0,20]"], "model.cutoffs"),
        (["model.tie_weights=true", "embedding.dim=32"], "model.tie_weights"),
        (["model.tie_weights=true", "model.softmax=adaptive"], "model.tie_weights"),
        (["model.dropout_hidden=1.0"], "model.dropout_hidden"),
    ],
)
def test_config_errors_name_the_key(make_cfg, overrides, key):
    from embedlab.config import validate
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*TINY_LM, *overrides))
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(key)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        # known only once the tokenizer has counted the vocabulary (~420 types): at build time
        (["model.softmax=adaptive", "model.cutoffs=[20,100000]"], "model.cutoffs"),
        (["model.tie_weights=true", "embedding.dim=32"], "model.tie_weights"),
    ],
    ids=["cutoff-beyond-vocabulary", "tie-dims"],
)
def test_cli_refuses_bad_cutoffs_and_tying_in_one_line(tmp_path: Path, overrides, key):
    from tests.test_cli import run_cli

    proc = run_cli(*TINY_LM, *overrides, "print_config=false", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if key in line]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_lstm_lm_end_to_end_val_perplexity_falls(make_cfg, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    cfg = make_cfg(*TINY_LM, "model.softmax=adaptive", "model.cutoffs=[40]", "trainer.max_epochs=3",
                   "trainer.gradient_clip_val=0.25", "optimizer=adam", "optimizer.lr=0.01")  # fmt: skip
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    ea = EventAccumulator(str(run), size_guidance={"scalars": 0})
    ea.Reload()
    val = [e.value for e in ea.Scalars("val/ppl")]
    assert len(val) == 3 and val[-1] < val[0]
    vocab = len(json.loads((run / "tokenizer.json").read_text())["model"]["vocab"])
    assert 1.0 < saved["test/ppl"] < vocab
    assert saved["test/ppl"] == pytest.approx(metrics["test/ppl"])
    assert math.isclose(saved["test/ppl"], math.exp(saved["test/loss"]), rel_tol=1e-4)
    assert saved["train_tokens_per_second"] > 0
    # the checkpoint loads without Lightning and samples (the adaptive head's log-probabilities)
    from embedlab.inference import load

    best = next(p for p in (run / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt")
    loaded = load(best)
    assert isinstance(loaded.model, LSTMLM)
    assert loaded.generate("", max_new_tokens=5, seed=0) == loaded.generate(
        "", max_new_tokens=5, seed=0
    )
    # the per-epoch report reads the same scalars: valid and exp(train loss) per epoch
    from tests.conftest import load_script

    out = load_script("lm_ppl_report").main(
        [str(run), "--out", str(tmp_path / "report"), "--ref", "Zaremba small=114.5"]
    )
    assert out["png"].stat().st_size > 10_000
    table = out["md"].read_text()
    assert all(f"| {i + 1} |" in table and f"{v:.1f} |" in table for i, v in enumerate(val))
    assert f"**{saved['test/ppl']:.1f}**" in table and "Zaremba small 114.5" in table
    train_loss = [e.value for e in ea.Scalars("train/loss_epoch")]
    assert f"| 1 | {math.exp(train_loss[0]):.1f} |" in table
