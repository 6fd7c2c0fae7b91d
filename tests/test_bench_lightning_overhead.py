"""scripts/bench_lightning_overhead.py compares like with like: same samples on both sides."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_lightning_overhead")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.num_train=600", "trainer.max_epochs=2"], 1200),  # texts
        (["experiment=lm_default", "data.num_train=200", "trainer.max_epochs=1"], None),  # tokens
    ],
)
def test_plain_and_lightning_sides_train_on_the_same_samples(
    bench, tmp_path, one_thread, overrides, expected
):
    plain_seconds, plain_samples = bench.plain_side(
        bench.compose_cfg(overrides + ["callbacks=none"], tmp_path / "plain")
    )
    light_seconds, light_samples = bench.lightning_side(
        bench.compose_cfg(overrides + ["callbacks=none"], tmp_path / "lightning")
    )
    assert plain_seconds > 0 and light_seconds > 0
    assert plain_samples == light_samples
    if expected is not None:
        assert plain_samples == expected
