"""The throughput callback counts exactly the training examples and only training time."""

import pytest

from embedlab.train import train


@pytest.mark.parametrize(
    ("overrides", "epochs"),
    [
        ([], 2),
        # nothing learns, so the best checkpoint is epoch 0; testing restores the callbacks'
        # state from it, which must not undo the counts of the later epochs
        (["optimizer.lr=1e-12"], 3),
    ],
)
def test_examples_counted_match_the_training_set(make_cfg, tmp_path, overrides, epochs):
    metrics = train(make_cfg(f"trainer.max_epochs={epochs}", *overrides))
    assert metrics["best_checkpoint"]
    # 1200 synthetic training texts per epoch
    assert metrics["train_examples"] == 1200 * epochs
    assert metrics["examples_per_second"] * metrics["train_seconds"] == pytest.approx(
        1200 * epochs, rel=0.01
    )
    assert 0 < metrics["train_seconds"] < metrics["wall_seconds"]


def test_the_clock_restarts_at_the_next_training_batch_after_a_mid_epoch_validation(
    monkeypatch,
):
    from types import SimpleNamespace

    from embedlab.callbacks import throughput

    now = [0.0]
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: now[0])
    trainer = SimpleNamespace(
        state=SimpleNamespace(fn="fit"),
        sanity_checking=False,
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(done=False)),
    )
    module = SimpleNamespace(examples_seen=0, log=lambda *a, **k: None)
    cb = throughput.Throughput()
    cb.startup_seconds = 1.0  # not this test's concern
    cb.on_train_epoch_start(trainer, module)
    cb.on_train_batch_start(trainer, module, None, 0)
    now[0] = 10.0  # 10 s of training, then a validation in the middle of the epoch
    cb.on_validation_start(trainer, module)
    now[0] = 12.0
    cb.on_validation_end(trainer, module)
    now[0] = 15.0  # the checkpoint callbacks, which run after this one, write for 3 s
    cb.on_train_batch_start(trainer, module, None, 1)
    now[0] = 20.0
    module.examples_seen = 100
    cb.on_train_epoch_end(trainer, module)
    assert cb.train_seconds == 15.0  # 10 + 5: neither the validation nor the checkpoint
    assert cb.examples_per_second == pytest.approx(100 / 15)


def test_trainer_profiler_writes_its_report_into_the_run_folder(make_cfg, tmp_path):
    cfg = make_cfg("trainer.profiler=simple", "trainer.max_epochs=1")
    cfg.paths.output_dir = str(tmp_path / "run")
    train(cfg)
    report = (tmp_path / "run" / "fit-profile.txt").read_text()
    assert report.startswith("FIT Profiler Report")
    assert "run_training_batch" in report and "training_step" in report
    assert (tmp_path / "run" / "test-profile.txt").is_file()


def test_an_unknown_profiler_is_refused_by_name(make_cfg):
    from embedlab.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"trainer\.profiler: 'fast' is not one of"):
        validate(make_cfg("trainer.profiler=fast"))
