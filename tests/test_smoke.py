"""One end-to-end run through train() on tiny data."""

import json

from embedlab.train import train


def test_train_tiny_run_writes_metrics(make_cfg, tmp_path):
    cfg = make_cfg()
    metrics = train(cfg)
    assert 0.0 <= metrics["test/acc"] <= 1.0
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test/acc"] == metrics["test/acc"]
    assert saved["epochs"] == 2
