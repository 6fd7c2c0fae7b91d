"""The throughput callback counts exactly the training examples and only training time."""

import pytest

from embedlab.train import train


def test_examples_counted_match_the_training_set(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=2"))
    # 1200 synthetic training texts, 2 epochs
    assert metrics["train_examples"] == 2400
    assert metrics["examples_per_second"] * metrics["train_seconds"] == pytest.approx(
        2400, rel=0.01
    )
    assert 0 < metrics["train_seconds"] < metrics["wall_seconds"]
