"""One end-to-end run through train() on tiny data."""

import json

from embedlab.train import train


def test_train_tiny_run_writes_metrics(make_cfg, tmp_path):
    cfg = make_cfg()
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.75  # 6 classes: chance 1/6; this run measured 0.90
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test/acc"] == metrics["test/acc"]
    assert saved["epochs"] == 2
