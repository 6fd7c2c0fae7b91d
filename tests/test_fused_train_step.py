"""model=boe's whole training step in one compiled call (optimizer.fuse_train_step,
embedlab.training.bag_step): the step autograd and the optimizers make, to float rounding."""

from __future__ import annotations

import warnings
from copy import deepcopy
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from embedlab.embeddings.bag import BagEmbedding
from embedlab.models.bag_of_embeddings import BagOfEmbeddings
from embedlab.training import native
from embedlab.training.bag_step import FusedBagStep, fuse_bag_step
from embedlab.training.optim import CompositeOptimizer, RowWiseAdagrad, fuse_table_update
from tests.conftest import train_into

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C compiler (cc)")

ROWS, DIM, CLASSES = 40, 16, 3
TRAINER = SimpleNamespace(precision="32-true", callbacks=[])


def _model(mode: str = "mean", dropout: float = 0.5, hidden: tuple[int, ...] = ()) -> nn.Module:
    table = BagEmbedding(ROWS, DIM, mode=mode, sparse=True, padding_idx=0)
    return BagOfEmbeddings(table, CLASSES, hidden_dims=hidden, dropout=dropout)


def _optimizer(
    model: nn.Module, head_cls: type = torch.optim.Adagrad, **head_kwargs
) -> CompositeOptimizer:
    head = [p for n, p in model.named_parameters() if not n.startswith("embedding")]
    head_kwargs = {"lr": 0.2, **head_kwargs}
    table = RowWiseAdagrad([model.embedding.weight], lr=0.3)
    optimizer = CompositeOptimizer([head_cls(head, **head_kwargs), table])
    assert fuse_table_update(optimizer, model.embedding, TRAINER)
    return optimizer


def _twins(
    mode: str = "mean", dropout: float = 0.5, smoothing: float = 0.0, **head_kwargs
) -> tuple[nn.Module, nn.Module, nn.CrossEntropyLoss, CompositeOptimizer, CompositeOptimizer]:
    """A model and its copy, the loss, and an optimizer for each (seeded)."""
    torch.manual_seed(0)
    first = _model(mode, dropout)
    second = deepcopy(first)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing)
    return (
        first,
        second,
        loss_fn,
        _optimizer(first, **head_kwargs),
        _optimizer(second, **head_kwargs),
    )


def _batches(n: int, weighted: bool = False, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(1, 7, (10,), generator=gen)
        lengths[3] = 0  # an empty text
        ids = torch.randint(0, ROWS, (int(lengths.sum()),), generator=gen)  # 0 is <pad>
        batch = {
            "ids": ids,
            "offsets": torch.cumsum(lengths, 0) - lengths,
            "labels": torch.randint(0, CLASSES, (10,), generator=gen),
        }
        if weighted:
            batch["per_sample_weights"] = torch.rand(ids.numel(), generator=gen)
        out.append(batch)
    return out


def _autograd_step(model, optimizer, loss_fn, batch) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs)
    loss = loss_fn(logits, batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.argmax(-1)


@pytest.mark.parametrize(
    ("mode", "weighted", "dropout", "smoothing", "head_kwargs"),
    [
        ("mean", False, 0.5, 0.0, {"fused": True}),
        ("sum", True, 0.3, 0.1, {"lr_decay": 0.01, "weight_decay": 1e-3, "eps": 1e-6}),
        ("mean", False, 0.0, 0.2, {"initial_accumulator_value": 0.1}),
    ],
)
def test_the_fused_step_is_autograds_step(mode, weighted, dropout, smoothing, head_kwargs):
    plain, fused, loss_fn, plain_opt, fused_opt = _twins(mode, dropout, smoothing, **head_kwargs)
    step = fuse_bag_step(fused, loss_fn, fused_opt, TRAINER)
    assert isinstance(step, FusedBagStep)
    start = plain.embedding.weight.detach().clone()
    plain.train(), fused.train()
    for i, batch in enumerate(_batches(8, weighted)):
        torch.manual_seed(100 + i)  # both draw the same dropout mask from torch's generator
        loss, preds = _autograd_step(plain, plain_opt, loss_fn, batch)
        torch.manual_seed(100 + i)
        result = step(batch)
        assert result is not None
        torch.testing.assert_close(result[0], loss, rtol=1e-5, atol=1e-6)
        assert torch.equal(result[1], preds)
        ours, theirs = fused.embedding.last_gradient, plain.embedding.last_gradient
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-7)
        assert torch.equal(ours.lengths, theirs.lengths)
        assert (ours.keep is None) == (theirs.keep is None)
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)
        assert b.grad is None  # updated in the step: nothing left in .grad
    for member_plain, member_fused in zip(plain_opt.optimizers, fused_opt.optimizers, strict=True):
        for p, q in zip(member_plain.state, member_fused.state, strict=True):
            for key, value in member_plain.state[p].items():
                torch.testing.assert_close(member_fused.state[q][key], value, rtol=1e-5, atol=1e-9)
    moved = (fused.embedding.weight - start).abs().sum(1) > 0
    assert not moved[0] and moved[1:].sum() >= 30  # <pad> untouched, the rest trained


@pytest.mark.parametrize(
    ("mode", "weighted", "dropout", "smoothing", "head_kwargs"),
    [
        ("mean", False, 0.5, 0.0, {"fused": True}),
        ("sum", True, 0.3, 0.1, {"lr_decay": 0.01, "weight_decay": 1e-3, "eps": 1e-6}),
    ],
)
def test_several_batches_in_one_call_are_the_one_batch_calls(
    mode, weighted, dropout, smoothing, head_kwargs
):
    one, many, loss_fn, one_opt, many_opt = _twins(mode, dropout, smoothing, **head_kwargs)
    one_step = fuse_bag_step(one, loss_fn, one_opt, TRAINER)
    many_step = fuse_bag_step(many, loss_fn, many_opt, TRAINER)
    batches = _batches(6, weighted)
    batches[2] = {
        k: v[: len(batches[2]["ids"]) if k == "ids" else 4] for k, v in batches[2].items()
    }
    batches[2]["ids"] = batches[2]["ids"][: int(batches[2]["offsets"][-1]) + 2]  # 4 texts
    torch.manual_seed(7)
    one_confusion = torch.full((CLASSES, CLASSES), 5, dtype=torch.int64)
    one_totals = torch.tensor([1.5, 2.0], dtype=torch.float64)
    results = [one_step(batch, one_confusion, one_totals) for batch in batches]
    rng_after_one = torch.get_rng_state()
    torch.manual_seed(7)
    confusion = torch.full((CLASSES, CLASSES), 5, dtype=torch.int64)  # added to
    totals = torch.tensor([1.5, 2.0], dtype=torch.float64)
    losses, preds = many_step.steps(batches, confusion, totals)
    labels = torch.cat([batch["labels"] for batch in batches])
    counts = torch.bincount(labels * CLASSES + preds, minlength=CLASSES**2).view(CLASSES, CLASSES)
    assert torch.equal(confusion, counts + 5)
    sizes = torch.tensor([len(batch["labels"]) for batch in batches], dtype=torch.float64)
    want = torch.tensor(
        [1.5 + float(losses.double() @ sizes), 2.0 + float(sizes.sum())], dtype=torch.float64
    )
    torch.testing.assert_close(totals, want, rtol=1e-12, atol=0)
    assert torch.equal(one_confusion, confusion)  # one call a batch tallies alike
    torch.testing.assert_close(one_totals, totals, rtol=1e-12, atol=0)
    # the same random numbers (one draw of every bag = the draws batch after batch) ...
    assert torch.equal(torch.get_rng_state(), rng_after_one)
    # ... and the same updates, to the bit
    assert torch.equal(losses, torch.stack([loss for loss, _ in results]))
    assert torch.equal(preds, torch.cat([p for _, p in results]))
    for (name, a), (_, b) in zip(one.named_parameters(), many.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    for member_one, member_many in zip(one_opt.optimizers, many_opt.optimizers, strict=True):
        for p, q in zip(member_one.state, member_many.state, strict=True):
            for key, value in member_one.state[p].items():
                assert torch.equal(member_many.state[q][key], value), key


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_several_batches_keep_the_last_bag_gradient_for_the_histograms(mode):
    one, many, loss_fn, one_opt, many_opt = _twins(mode)
    one_step = fuse_bag_step(one, loss_fn, one_opt, TRAINER)
    many_step = fuse_bag_step(many, loss_fn, many_opt, TRAINER)
    batches = _batches(4)
    torch.manual_seed(5)
    for batch in batches:
        assert one_step(batch) is not None
    torch.manual_seed(5)
    assert many_step.steps(batches) is not None
    ours, theirs = many.embedding.last_gradient, one.embedding.last_gradient
    for field in ("grad", "ids", "lengths", "weights", "scale", "keep"):
        a, b = getattr(ours, field), getattr(theirs, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert torch.equal(a, b), field


def test_several_batches_with_a_bad_one_change_nothing_and_draw_nothing():
    torch.manual_seed(0)
    model = _model(dropout=0.5)
    optimizer = _optimizer(model)
    step = fuse_bag_step(model, nn.CrossEntropyLoss(), optimizer, TRAINER)
    good = _batches(3)
    past_the_table = {**good[1], "ids": good[1]["ids"].clone().fill_(ROWS)}
    before = deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    for batches in ([good[0], past_the_table, good[2]], [good[0], {**good[1], "mask": 1}], []):
        assert step.steps(batches) is None
    for confusion, totals in (
        (torch.zeros(CLASSES, CLASSES + 1, dtype=torch.int64), None),  # written past its end
        (torch.zeros(CLASSES, CLASSES), None),  # float counts
        (None, torch.zeros(3, dtype=torch.float64)),
    ):
        with pytest.raises(ValueError, match="tally"):
            step.steps(good, confusion, totals)
    assert torch.equal(torch.get_rng_state(), rng)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_an_optimizer_step_after_it_applies_nothing_not_even_an_earlier_gradient():
    # Lightning's optimizer step follows the fused updates (for its hooks and step count): it
    # must find no gradient, also where the batch before took autograd's path and left one
    plain, fused, loss_fn, plain_opt, fused_opt = _twins()
    step = fuse_bag_step(fused, loss_fn, fused_opt, TRAINER)
    first, second = _batches(2)
    plain.train(), fused.train()
    for model, optimizer in ((plain, plain_opt), (fused, fused_opt)):
        torch.manual_seed(1)
        _autograd_step(model, optimizer, loss_fn, first)  # leaves the head's .grad set
    assert fused.head[-1].weight.grad is not None
    torch.manual_seed(2)
    _autograd_step(plain, plain_opt, loss_fn, second)
    torch.manual_seed(2)
    assert step(second) is not None
    assert all(p.grad is None for p in fused.parameters())
    after = deepcopy(fused.state_dict())
    fused_opt.step()  # Lightning's step: nothing to apply
    for key, value in fused.state_dict().items():
        assert torch.equal(value, after[key]), key
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=name)


def test_a_batch_it_cannot_take_changes_nothing():
    torch.manual_seed(0)
    model = _model()
    optimizer = _optimizer(model)
    step = fuse_bag_step(model, nn.CrossEntropyLoss(), optimizer, TRAINER)
    good = _batches(1)[0]
    bad = {
        "an id past the table": {**good, "ids": good["ids"].clone().fill_(ROWS)},
        "a label past the classes": {**good, "labels": torch.full_like(good["labels"], CLASSES)},
        "offsets out of order": {**good, "offsets": good["offsets"].flip(0)},
        "int32 ids": {**good, "ids": good["ids"].int()},
        "another key": {**good, "mask": good["ids"]},
        "weights in a mean bag": {**good, "per_sample_weights": torch.ones(len(good["ids"]))},
    }
    before = deepcopy(model.state_dict())
    sums = optimizer.optimizers[1].row_sums(model.embedding.weight).clone()
    for what, batch in bad.items():
        assert step(batch) is None, what
    model.embedding.weight.requires_grad_(False)  # frozen for now (unfreeze_at_epoch)
    assert step(good) is None
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(optimizer.optimizers[1].state[model.embedding.weight]["sum"], sums)
    with pytest.raises(RuntimeError, match="idx"):  # autograd's path says what is wrong
        model(bad["an id past the table"]["ids"], good["offsets"])


def test_not_fused_where_the_step_is_another():
    torch.manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()

    def fusable(model=None, optimizer=None, loss=loss_fn, trainer=TRAINER) -> bool:
        model = model or _model()
        optimizer = optimizer or _optimizer(model)
        return fuse_bag_step(model, loss, optimizer, trainer) is not None

    assert fusable()
    hidden = _model(hidden=(8,))
    assert not fusable(hidden)  # an MLP head
    adam = _model()
    assert not fusable(adam, _optimizer(adam, torch.optim.Adam, lr=1e-3))
    assert not fusable(loss=nn.CrossEntropyLoss(weight=torch.ones(CLASSES)))
    assert not fusable(loss=nn.CrossEntropyLoss(reduction="sum"))
    assert not fusable(trainer=SimpleNamespace(precision="bf16-mixed", callbacks=[]))

    class Hook(L.Callback):  # sees the backward, which the fused step does not make
        def on_after_backward(self, trainer, module):
            pass

    assert not fusable(trainer=SimpleNamespace(precision="32-true", callbacks=[Hook()]))
    unfused = _model()
    optimizer = _optimizer(unfused)
    unfused.embedding.fused_update = None  # optimizer.fuse_table_update=false
    assert not fusable(unfused, optimizer)
    wide = _model().double()
    assert not fusable(wide, _optimizer(wide))


@pytest.mark.parametrize("scheduler", ["linear", "none"])
def test_a_run_uses_it_and_ends_where_the_autograd_run_ends(
    make_cfg, tmp_path, monkeypatch, scheduler
):
    from embedlab.tasks.classification import ClassificationTask

    calls: list[tuple[int, bool]] = []  # (batches, done) of each call
    fused_train_batches = ClassificationTask.fused_train_batches

    def counted(self, batches):
        done = fused_train_batches(self, batches)
        calls.append((len(batches), done))
        return done

    monkeypatch.setattr(ClassificationTask, "fused_train_batches", counted)
    runs = {}
    for fuse in (True, False):
        cfg = make_cfg(
            f"optimizer.fuse_train_step={str(fuse).lower()}",
            f"scheduler={scheduler}",
            "data.batches_per_step=4",
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs[fuse] = train_into(cfg, tmp_path / str(fuse))
        # updates made without optimizer.step() are no schedule stepped before its updates
        assert not [w for w in caught if "before `optimizer.step()`" in str(w.message)]
        sizes = [n for n, _ in calls]
        if not fuse:
            assert not calls  # autograd for every batch
        elif scheduler == "linear":  # an lr between two updates: one call a batch
            assert calls and all(done for _, done in calls) and set(sizes) == {1}
        else:  # a step's updates in one call
            assert calls and all(done for _, done in calls)
            assert 4 in sizes and all(1 <= n <= 4 for n in sizes)
        calls.clear()
    (fused, fused_state), (plain, plain_state) = runs[True], runs[False]
    for key, value in plain_state.items():
        torch.testing.assert_close(fused_state[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert fused["val/acc"] == pytest.approx(plain["val/acc"], abs=0.01)
    assert fused["train/loss_epoch"] == pytest.approx(plain["train/loss_epoch"], rel=1e-4)
    # the training tallies, added to by the call of several batches where it makes them
    assert fused["train/acc_epoch"] == pytest.approx(plain["train/acc_epoch"], abs=0.01)


def test_a_dropout_in_eval_mode_draws_nothing():
    plain, fused, loss_fn, plain_opt, fused_opt = _twins()
    step = fuse_bag_step(fused, loss_fn, fused_opt, TRAINER)
    plain.head[0].eval(), fused.head[0].eval()  # the rest trains
    batch = _batches(1)[0]
    _autograd_step(plain, plain_opt, loss_fn, batch)
    rng = torch.get_rng_state()
    assert step(batch) is not None
    assert torch.equal(torch.get_rng_state(), rng)  # as nn.Dropout in eval mode
    for (name, a), (_, b) in zip(plain.named_parameters(), fused.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_the_composite_optimizer_steps_only_members_with_a_gradient():
    model = _model()
    optimizer = _optimizer(model)
    head, table = optimizer.optimizers
    stepped: list[str] = []
    head.register_step_pre_hook(lambda *_: stepped.append("head"))
    table.register_step_pre_hook(lambda *_: stepped.append("table"))
    optimizer.step()  # no gradient anywhere (a fused call made the updates)
    assert stepped == []
    before = model.head[-1].weight.detach().clone()
    model.head[-1].weight.grad = torch.ones_like(before)
    optimizer.step()
    assert stepped == ["head"]  # the table's update is fused: it never has a .grad
    assert not torch.equal(model.head[-1].weight, before)
