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
