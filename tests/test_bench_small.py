"""The small benchmark scripts check like with like: the same update, the same ids."""

from __future__ import annotations

from tests.conftest import load_script


def test_bench_optimizer_step_checks_the_same_update(capsys, one_thread):
    bench = load_script("bench_optimizer_step")
    assert bench.main(["--vocab", "300", "--dim", "20", "--steps", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "equal: True" in out
    assert "| torch.optim.Adadelta |" in out and "(300 x 20 table)" in out
    # the shapes of Kim's CNN: table, 3 conv weights + biases, output weight + bias
    assert bench.shapes(300, 20)[:2] == [(300, 20), (100, 20, 3)] and len(bench.shapes(9, 4)) == 9


def test_bench_tokenize_compares_the_same_ids(capsys):
    bench = load_script("bench_tokenize")
    assert bench.main(["--texts", "500", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "500 texts (synthetic generator, 100% ASCII)" in out
    assert "same tokenizer and ids: True" in out
