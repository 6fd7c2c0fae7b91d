"""scripts/bench_fasttext.py: its pure helpers, and one tiny end-to-end run on synthetic data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "bench_fasttext.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_fasttext")


def test_convert_tsv_writes_lowercased_split_fasttext_lines(bench, tmp_path):
    src = tmp_path / "train.tsv"
    src.write_text(
        "1\tA Great, Fun movie!\n"
        '0\tIt\'s "bad" (really).\n'
        "0\t   \n"  # empty text: dropped, as embedlab's on_bad_rows=skip drops it
        "no tab here\n"
        "HUM\tWho wrote Hamlet?\r\n",
        encoding="utf-8",
    )
    dst = tmp_path / "train.ft"
    assert bench.convert_tsv(src, dst) == 3
    assert dst.read_text(encoding="utf-8").splitlines() == [
        "__label__1 a great , fun movie !",
        '__label__0 it\'s " bad " ( really ) .',
        "__label__HUM who wrote hamlet ?",
    ]


def test_fasttext_word_share_counts_tokens_as_fasttext_does(bench, tmp_path):
    # fastText counts every token it reads, the label and each line's </s> included
    ft = tmp_path / "train.ft"
    ft.write_text("__label__1 a great , fun movie !\n__label__0 bad\n", encoding="utf-8")
    # words: 6 + 1; tokens: (7 + 1) + (2 + 1)
    assert bench.fasttext_word_share(ft) == pytest.approx(7 / 11)
    (tmp_path / "empty.ft").write_text("", encoding="utf-8")
    assert bench.fasttext_word_share(tmp_path / "empty.ft") is None
    line = bench.share_line([{"name": "mpqa", "fasttext_word_share": 0.6061}, {"name": "x"}])
    assert "mpqa 0.606" in line and "x " not in line


def test_parse_progress_takes_the_last_words_per_second_value(bench):
    stderr = (
        "\rRead 0M words\nNumber of words:  18765\nNumber of labels: 2\n"
        "\rProgress:   0.0% words/sec/thread:       0 lr:  0.500000 avg.loss:  0.693147 ETA:   0h 0m 9s"
        "\rProgress:  41.3% words/sec/thread:  851234 lr:  0.293500 avg.loss:  0.512345 ETA:   0h 0m 1s"
        "\rProgress: 100.0% words/sec/thread: 1378177 lr:  0.000000 avg.loss:  0.401234 ETA:   0h 0m 0s\n"
    )
    assert bench.parse_progress(stderr) == 1378177.0
    assert bench.parse_progress("Read 0M words\n") is None


def test_parse_fasttext_test_output(bench):
    scores = bench.parse_fasttext_test("N\t10\nP@1\t0.700\nR@1\t0.700\n")
    assert scores == {"N": 10.0, "P@1": 0.7, "R@1": 0.7}


def run(**fields: Any) -> dict[str, Any]:
    return {"rc": 0, **fields}


def row(kind: str, size: int | None, ft_walls: list[float], el_walls: list[float]) -> dict:
    ft = [
        run(wall_seconds=w, acc=0.8, tokens_per_second=1_000_000.0, max_rss_kb=102400)
        for w in ft_walls
    ]
    el = [
        run(wall_seconds=w, acc=0.75, tokens_per_second=400_000.0, startup_seconds=2.0)
        for w in el_walls
    ]
    el.append({"rc": 1, "wall_seconds": 99.0, "error": "exit 1: boom"})  # ignored by medians
    return {
        "name": "mr" if kind == "shared" else f"synthetic-{size}",
        "kind": kind,
        "size": size,
        "texts": size or 9596,
        "fasttext": {"runs": ft, "median": {}},
        "embedlab": {"runs": el, "median": {}, "cached": {"startup_seconds": 0.5}},
    }


def with_medians(bench, r: dict) -> dict:
    for tool in ("fasttext", "embedlab"):
        r[tool]["median"] = bench.summarize(r[tool]["runs"])
    return r


def test_median_ratio_and_table(bench):
    assert bench.median([3.0, None, 1.0, 2.0]) == 2.0
    assert bench.median([None]) is None
    assert bench.ratio(5.0, 2.0) == "2.50x"
    assert bench.ratio(1.0, 3.0) == "0.33x"
    assert bench.ratio(None, 2.0) == "-"
    assert bench.ratio(1.0, 0.0) == "-"

    shared = with_medians(bench, row("shared", None, [2.0, 1.0, 4.0], [9.0, 5.0, 6.0]))
    assert shared["fasttext"]["median"]["wall_seconds"] == 2.0
    assert shared["embedlab"]["median"]["wall_seconds"] == 6.0  # the failed run is left out
    cells = dict(zip(bench.MAIN_HEADER, bench.main_row(shared), strict=True))
    assert cells["wall ratio"] == "3.00x"
    assert cells["throughput ratio"] == "0.40x"
    assert cells["target"] == "≤ 10.0 s ok"  # 3 x 2.0 + 4
    assert cells["fastText acc %"] == "80.0"
    assert cells["embedlab acc %"] == "75.0"
    assert cells["fastText start-up s"] == "-"
    assert cells["embedlab start-up (cached) s"] == "0.50"
    assert cells["fastText peak RSS MB"] == "104.9"
    assert cells["embedlab peak RSS MB"] == "-"
    assert cells["texts (train)"] == "9,596"

    big = with_medians(bench, row("synthetic", 1_000_000, [10.0], [16.0]))
    small = with_medians(bench, row("synthetic", 10_000, [1.0], [3.0]))
    assert bench.target_cell(big) == "≤ 15.0 s MISSED"  # 1.5 x 10
    assert bench.target_cell(small) == "-"  # no target below 1M texts

    table = bench.main_table([shared, big]).splitlines()
    assert table[0].startswith("| dataset | texts (train) | fastText acc % |")
    assert len(table) == 4
    assert "| synthetic-1000000 | 1,000,000 |" in table[3]

    assert bench.growth_exponent([(1e4, 1.0), (1e5, None), (1e6, 100.0)]) == pytest.approx(1.0)
    assert bench.growth_exponent([(1e4, 1.0)]) is None
    lines = bench.growth_lines([big, small, shared])
    assert lines[0].startswith("fastText growth exponent")
    assert lines[0].endswith("k = 0.50")  # 1 s -> 10 s over 100x the texts
    assert bench.scaling_table([big, small, shared]).splitlines()[2].startswith("| 10,000 |")


def cell(markdown: str, name: str, column: str) -> str:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == name:
            return cells[header.index(column)]
    raise AssertionError(f"no row {name!r} in:\n{markdown}")


@pytest.mark.slow
def test_end_to_end_on_tiny_synthetic(tmp_path):
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--datasets",
        "synthetic",
        "--synthetic-sizes",
        "2000",
        "--runs",
        "1",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
        "--embedlab-args",
        "trainer.max_epochs=1",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    markdown = (tmp_path / "bench_fasttext.md").read_text(encoding="utf-8")
    assert (tmp_path / "bench_fasttext.json").is_file()
    assert (tmp_path / "data" / "synthetic_2000" / "train.tsv").is_file()
    assert 0 < float(cell(markdown, "synthetic-2000", "embedlab acc %")) <= 100
    if shutil.which("fasttext") is None:
        assert "fastText CLI not found" in done.stdout
        pytest.skip("fastText CLI not installed: fastText columns not checked")
    assert 0 < float(cell(markdown, "synthetic-2000", "fastText acc %")) <= 100
