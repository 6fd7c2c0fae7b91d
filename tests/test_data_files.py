"""The ``files`` data source: every format and option, and every kind of bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from embedlab.config import validate
from embedlab.data.sources import load_dataset
from embedlab.errors import ConfigError, DataError


@pytest.fixture
def load(make_cfg):
    """``load(*overrides) -> TextDataset`` through the composed config (data=files)."""

    def _load(*overrides: str, seed: int = 0):
        cfg = make_cfg("data=files", *overrides, tiny=False)
        validate(cfg)
        return load_dataset(cfg.data, cfg.paths, seed)

    return _load


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


CSV = 'text,label\n"a fine, good film",pos\nterrible movie,neg\n"he said ""great""",pos\nbad bad,neg\n'


def test_csv_with_header_quotes_and_sorted_label_names(tmp_path, load):
    train = write(tmp_path / "train.csv", CSV)
    test = write(tmp_path / "test.csv", "text,label\nokay film,pos\nawful,neg\n")
    val = write(tmp_path / "val.csv", "text,label\nnice,pos\n")
    ds = load(f"data.train={train}", f"data.test={test}", f"data.val={val}")
    assert ds.label_names == ["neg", "pos"]  # sorted, so ids are stable across runs
    assert ds.splits["train"].texts == [
        "a fine, good film",
        "terrible movie",
        'he said "great"',
        "bad bad",
    ]
    np.testing.assert_array_equal(ds.splits["train"].labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.splits["test"].labels, [1, 0])
    assert ds.splits["val"].texts == ["nice"]
    assert ds.info["formats"] == {"train": "csv", "val": "csv", "test": "csv"}


def test_tsv_without_header_by_position_keeps_leading_quotes(tmp_path, load):
    # the ../shared/data layout: label<TAB>text, texts may begin with a double quote
    train = write(
        tmp_path / "train.tsv", '0\t"the rock" is great\n1\tdull\n0\tfun , fun\n1\t" boring\n'
    )
    ds = load(
        f"data.train={train}",
        f"data.test={train}",
        "data.header=false",
        "data.text_column=1",
        "data.label_column=0",
        "data.label_names=[good,bad]",
    )
    assert ds.splits["test"].texts == ['"the rock" is great', "dull", "fun , fun", '" boring']
    np.testing.assert_array_equal(ds.splits["test"].labels, [0, 1, 0, 1])
    assert ds.label_names == ["good", "bad"]


def test_integer_labels_sort_numerically(tmp_path, load):
    rows = "".join(f"{lab}\ttext {i}\n" for i, lab in enumerate([10, 9, 2, 10, 9, 2]))
    train = write(tmp_path / "t.tsv", rows)
    ds = load(
        f"data.train={train}",
        f"data.test={train}",
        "data.header=false",
        "data.text_column=1",
        "data.label_column=0",
    )
    assert ds.label_names == ["2", "9", "10"]
    np.testing.assert_array_equal(ds.splits["test"].labels, [2, 1, 0, 2, 1, 0])


def test_jsonl_with_named_columns(tmp_path, load):
    lines = [{"review": f"text {i}", "stars": i % 3, "other": None} for i in range(9)]
    train = write(tmp_path / "train.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    ds = load(
        f"data.train={train}",
        f"data.test={train}",
        "data.text_column=review",
        "data.label_column=stars",
    )
    assert ds.label_names == ["0", "1", "2"]
    np.testing.assert_array_equal(ds.splits["test"].labels, [i % 3 for i in range(9)])


def test_fasttext_lines_from_extension_sniffing(tmp_path, load):
    train = write(
        tmp_path / "cooking.txt",
        "__label__baking how to make bread ?\n__label__tea green tea\n\n__label__baking cake\n",
    )
    ds = load(f"data.train={train}", f"data.test={train}")
    assert ds.info["formats"]["train"] == "fasttext"
    assert ds.label_names == ["baking", "tea"]
    assert ds.splits["test"].texts == ["how to make bread ?", "green tea", "cake"]


def test_format_override_and_custom_delimiter(tmp_path, load):
    train = write(tmp_path / "data.dat", "label;text\nx;one\ny;two\nx;three\ny;four\n")
    ds = load(f"data.train={train}", f"data.test={train}", "data.format=csv", "data.delimiter=';'")
    assert ds.splits["test"].texts == ["one", "two", "three", "four"]


def test_unknown_extension_asks_for_format(tmp_path, load):
    train = write(tmp_path / "data.dat", "text,label\na,b\n")
    with pytest.raises(DataError, match=r"data\.dat.*data\.format"):
        load(f"data.train={train}")


def test_plain_text_is_unlabelled(tmp_path, load):
    train = write(tmp_path / "corpus.txt", "first line\n\nsecond line\n")
    ds = load(f"data.train={train}", f"data.test={train}")
    assert ds.splits["test"].texts == ["first line", "second line"]
    assert ds.splits["test"].labels is None and ds.label_names == []


def test_val_is_carved_stratified_and_seeded(tmp_path, load):
    rows = "".join(f"{'a' if i % 4 else 'b'},text {i}\n" for i in range(200))
    train = write(tmp_path / "t.csv", "label,text\n" + rows)
    ds = load(f"data.train={train}", "data.val_fraction=0.2", seed=3)
    val = ds.splits["val"]
    assert len(val) == 40 and len(ds.splits["train"]) == 160
    assert np.bincount(val.labels).tolist() == [30, 10]  # 20% of each class (a: 150, b: 50)
    again = load(f"data.train={train}", "data.val_fraction=0.2", seed=3)
    assert again.splits["val"].texts == val.texts
    other = load(f"data.train={train}", "data.val_fraction=0.2", seed=4)
    assert other.splits["val"].texts != val.texts
    assert ds.info["val_carved"]["size"] == 40


def test_root_resolves_relative_paths_and_missing_root_says_what_to_set(tmp_path, load):
    (tmp_path / "ds").mkdir()
    write(tmp_path / "ds" / "train.csv", CSV)
    ds = load(f"data.root={tmp_path / 'ds'}", "data.train=train.csv", "data.test=train.csv")
    assert len(ds.splits["test"]) == 4
    with pytest.raises(DataError, match="EMBEDLAB_DATA_DIR"):
        load(f"data.root={tmp_path / 'nope'}", "data.train=train.csv")


def test_missing_train_is_a_config_error(make_cfg):
    with pytest.raises(ConfigError, match=r"data\.train: required"):
        validate(make_cfg("data=files", tiny=False))


def test_bad_format_and_column_values_are_config_errors(make_cfg):
    with pytest.raises(ConfigError) as err:
        validate(
            make_cfg(
                "data=files", "data.train=x.csv", "data.format=xml", "data.delimiter=ab", tiny=False
            )
        )
    assert "data.format" in str(err.value) and "data.delimiter" in str(err.value)


# --------------------------------------------------------------------------- bad input


def test_missing_file_names_the_key_and_path(tmp_path, load):
    with pytest.raises(DataError, match=r"nope\.csv: file not found \(data\.train\)"):
        load(f"data.train={tmp_path / 'nope.csv'}")
    train = write(tmp_path / "train.csv", CSV)
    with pytest.raises(DataError, match=r"data\.test"):
        load(f"data.train={train}", f"data.test={tmp_path / 'missing.csv'}")


def test_missing_column_names_file_and_columns(tmp_path, load):
    train = write(tmp_path / "train.csv", CSV)
    with pytest.raises(
        DataError, match=r"train\.csv:1: column 'review' \(data\.text_column\) not in the header"
    ):
        load(f"data.train={train}", "data.text_column=review")
    jl = write(tmp_path / "t.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"t\.jsonl:2: missing key: 'label'"):
        load(f"data.train={jl}")


def test_column_name_without_header_is_an_error(tmp_path, load):
    train = write(tmp_path / "t.tsv", "0\tx\n")
    with pytest.raises(DataError, match="no header"):
        load(f"data.train={train}", "data.header=false")


BAD_CASES = {
    # name: (file content, expected line, expected reason)
    "empty_text": ('text,label\ngood,a\n"  ",b\nfine,a\nok,b\n', 3, "empty text"),
    "non_utf8": (b"text,label\ngood,a\nclich\xe9,b\nfine,a\nok,b\n", 3, "bytes not valid utf-8"),
    "wrong_fields": (
        "text,label\ngood,a\nbad,b,extra\nfine,a\nok,b\n",
        3,
        "wrong number of fields",
    ),
    "empty_label": ("text,label\ngood,a\nbad,\nfine,a\nok,b\n", 3, "empty label"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_row_errors_name_file_and_line(tmp_path, load, case):
    content, line, reason = BAD_CASES[case]
    train = write(tmp_path / "train.csv", content)
    with pytest.raises(DataError, match=rf"train\.csv:{line}: {reason}.*on_bad_rows=skip"):
        load(f"data.train={train}", f"data.test={train}")


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_rows_skipped_counted_and_reported(tmp_path, load, case, caplog):
    content, line, reason = BAD_CASES[case]
    train = write(tmp_path / "train.csv", content)
    with caplog.at_level(logging.WARNING, logger="embedlab.data.files"):
        ds = load(f"data.train={train}", f"data.test={train}", "data.on_bad_rows=skip")
    assert ds.splits["test"].texts == ["good", "fine", "ok"]
    skipped = ds.info["skipped"]
    assert skipped["total"] == 2  # once in train, once in test (same file)
    assert skipped["by_file_and_reason"] == {f"{train}: {reason}": 2}
    assert f"train.csv:{line}" in skipped["examples"][0]
    assert "skipped 2 bad row(s)" in caplog.text and reason in caplog.text


def test_unseen_label_in_test_is_an_error_or_skipped(tmp_path, load):
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,x\nd,y\n")
    test = write(tmp_path / "test.csv", "text,label\ne,x\nf,z\n")
    with pytest.raises(DataError, match=r"test\.csv:3: unknown label: 'z' never seen in train"):
        load(f"data.train={train}", f"data.test={test}")
    ds = load(f"data.train={train}", f"data.test={test}", "data.on_bad_rows=skip")
    assert ds.splits["test"].texts == ["e"]
    assert ds.info["skipped"]["total"] == 1


def test_label_outside_given_names_is_an_error(tmp_path, load):
    train = write(tmp_path / "t.tsv", "0\ta\n1\tb\n2\tc\n")
    with pytest.raises(
        DataError, match=r"t\.tsv:3: unknown label: '2' not among data\.label_names"
    ):
        load(
            f"data.train={train}",
            "data.header=false",
            "data.text_column=1",
            "data.label_column=0",
            "data.label_names=[neg,pos]",
        )


def test_fasttext_line_without_label(tmp_path, load):
    train = write(tmp_path / "t.ft", "__label__a one\nno label here\n__label__b two\n")
    with pytest.raises(DataError, match=r"t\.ft:2: no __label__ prefix"):
        load(f"data.train={train}")


def test_all_rows_bad_is_an_error_not_an_empty_split(tmp_path, load):
    train = write(tmp_path / "train.csv", 'text,label\n"",a\n" ",b\n')
    with pytest.raises(DataError, match=r"no usable rows in data\.train \(2 bad row"):
        load(f"data.train={train}", "data.on_bad_rows=skip")
