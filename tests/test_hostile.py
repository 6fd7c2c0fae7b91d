"""Bad input that used to reach training silently: each case, its error, and no metrics.json.

Table-driven: a case writes its files into ``tmp``, names the overrides that use them and the
fragment the error must contain. Every case runs through ``train()`` as a user's run would.
The process-level cases (exit codes, run folders, checkpoints) are in test_run_safety.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from embedlab.config import validate
from embedlab.data.files import BadRows, read_rows
from embedlab.data.sources import FilesDataConfig
from embedlab.errors import DataError, EmbedlabError
from embedlab.train import train


def _tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{lab}\t{text}\n" for lab, text in rows))
    return path


def _files(tmp: Path, train_rows: list[tuple[str, str]]) -> list[str]:
    good = [("pos", "good fine film"), ("neg", "bad dull film")] * 10
    return [
        "data=files",
        f"data.train={_tsv(tmp / 'train.tsv', train_rows)}",
        f"data.val={_tsv(tmp / 'val.tsv', good)}",
    ]


def mixed_labels(tmp: Path) -> list[str]:
    rows = [("0", "bad plot"), ("1", "good plot"), ("neg", "dull film"), ("pos", "fine film")] * 5
    return _files(tmp, rows)


def one_class(tmp: Path) -> list[str]:
    return _files(tmp, [("pos", "good fine film")] * 20) + ["data.val=null"]


def ragged_first_vector_row(tmp: Path) -> list[str]:
    vec = tmp / "vectors.txt"
    rows = ["film 0.1 0.2 0.3"] + [f"{w} 0.1 0.2 0.3 0.4" for w in ("good", "bad", "fine", "dull")]
    vec.write_text("\n".join(rows) + "\n")
    good = [("pos", "good fine film"), ("neg", "bad dull film")] * 10
    return _files(tmp, good) + [
        "embedding=pretrained",
        "pretrained=file",
        f"pretrained.path={vec}",
        "tokenizer.ngrams=1",
    ]


def unclosed_quote(tmp: Path) -> list[str]:
    csv_file = tmp / "train.csv"
    lines = ["label,text", "pos,good film", 'neg,"bad film', "pos,fine film", "neg,dull film"]
    csv_file.write_text("\n".join(lines) + "\n")
    return ["data=files", f"data.train={csv_file}"]


CASES: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "mixed integer and named labels": (mixed_labels, "mixes integer ids ['0', '1'] and names"),
    "one class in train": (one_class, "has a single class (['pos'])"),
    "ragged first vector row": (ragged_first_vector_row, "vectors.txt:1: 3 values, expected 4"),
    "unclosed csv quote": (unclosed_quote, "a quote opened on line 3"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_clear_error_and_writes_no_result(case, make_cfg, tmp_path):
    build, fragment = CASES[case]
    cfg = make_cfg(*build(tmp_path), tiny=False)
    with pytest.raises(EmbedlabError) as info:
        train(validate(cfg))
    assert fragment in str(info.value)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_a_ragged_row_after_the_first_is_still_named_and_skippable(tmp_path, make_cfg):
    overrides = ragged_first_vector_row(tmp_path)
    metrics = train(validate(make_cfg(*overrides, "pretrained.on_bad_rows=skip", tiny=False)))
    assert metrics["embedding/coverage_types"] > 50  # 4 of the 5 words found, dim 4


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_long_texts_are_treated_alike_in_every_format(tmp_path, fmt):
    long_text = "word " * 60_000  # 300k characters: over the csv module's 128 KiB default
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text(json.dumps({"label": "pos", "text": long_text}) + "\n")
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text(f"label{sep}text\npos{sep}{long_text}\n")
    cfg = FilesDataConfig(train=str(path))
    _, rows = read_rows(path, _node(cfg), BadRows("error"))
    assert len(rows) == 1 and len(rows[0].text) == len(long_text)
    cfg.max_text_chars = 1000
    with pytest.raises(
        DataError, match=r"text too long: 300,000 characters > data.max_text_chars=1,000"
    ):
        read_rows(path, _node(cfg), BadRows("error"))


def _node(cfg: FilesDataConfig):
    from omegaconf import OmegaConf

    return OmegaConf.structured(cfg)
