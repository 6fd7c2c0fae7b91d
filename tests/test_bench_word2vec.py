"""scripts/bench_word2vec.py: the shared-all corpus, the verdicts, and the skip without gensim."""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

from tests.conftest import load_script


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_word2vec")


def test_skips_with_a_clear_message_without_gensim(bench, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "gensim", None)  # import gensim raises ImportError
    bench.main(["--out", str(tmp_path)])
    assert "gensim is not installed" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_shared_all_joins_ptb_and_the_classification_texts(bench, tmp_path):
    data = tmp_path / "data"
    (data / "ptb").mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (data / "ptb" / f"ptb.{split}.txt").write_text(f" the {split} line \n")
    (data / "mr").mkdir()
    (data / "mr" / "train.tsv").write_text("1\tA Good Film\n0\tbad\n")
    (data / "sst2").mkdir()
    (data / "sst2" / "dev.tsv").write_text("label\tsentence\n1\tfine\n0\tbad\n")
    out = bench.shared_all(data, tmp_path / "all.txt").read_text().splitlines()
    assert out == [
        " the train line ",
        " the valid line ",
        " the test line ",
        "a good film",
        "bad",
        "fine",
    ]


def test_verdicts_compare_with_the_targets(bench):
    ref = {"ws353": 0.5, "simlex": 0.3, "analogy": 0.4, "train_s": 10.0, "wall_s": 10.0}
    ours = {"ws353": 0.49, "simlex": 0.27, "analogy": 0.37, "train_s": 15.0, "wall_s": 25.0}
    v = bench.verdicts(ours, ref)
    assert v[0].endswith("(met: within 0.02)") and "NOT met" in v[1]
    assert "-3.0 points (NOT met" in v[2]
    assert "1.50x gensim (met" in v[3] and "2.50x gensim (NOT met" in v[4]
