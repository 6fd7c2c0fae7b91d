"""The benchmark data configs over ../shared/data, the experiment recipes, and one user-CSV run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from embedlab.config import validate
from embedlab.data.sources import load_dataset
from embedlab.paths import config_dir

# name: (train+val examples, test examples, number of classes) from each dataset's README
COUNTS = {
    "mr": (9596, 1066, 2),
    "sst2": (76958 + 872, 1821, 2),  # data=sst2 trains on the labelled phrases
    "sst5": (8544 + 1101, 2210, 5),
    "subj": (9000, 1000, 2),
    "trec": (5452, 500, 6),
    "cr": (3397, 378, 2),
    "mpqa": (9546, 1060, 2),
}
# rows whose text is empty in the source files (the configs skip and report them): (train, test)
EMPTY = {"cr": (3, 1), "mpqa": (3, 0)}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_benchmark_configs_read_the_shared_layout(make_cfg, shared_data, name):
    cfg = make_cfg(f"data={name}", f"paths.data_dir={shared_data}", tiny=False)
    validate(cfg)
    ds = load_dataset(cfg.data, cfg.paths, seed=0)
    train_val, test, classes = COUNTS[name]
    empty_train, empty_test = EMPTY.get(name, (0, 0))
    assert len(ds.splits["train"]) + len(ds.splits["val"]) == train_val - empty_train
    assert len(ds.splits["test"]) == test - empty_test
    assert len(ds.label_names) == classes
    assert set(np.unique(ds.splits["test"].labels).tolist()) == set(range(classes))
    assert ds.info["skipped"]["total"] == empty_train + empty_test
    if name == "trec":
        assert ds.label_names == ["DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"]
    if name in ("mr", "subj"):  # 48 / 66 train texts begin with a double quote: read verbatim
        train_texts = ds.splits["train"].texts + ds.splits["val"].texts
        assert sum(t.startswith('"') for t in train_texts) == {"mr": 48, "subj": 66}[name]


def test_missing_data_dir_says_to_set_embedlab_data_dir(make_cfg, tmp_path):
    from embedlab.errors import DataError

    cfg = make_cfg("data=mr", f"paths.data_dir={tmp_path / 'none'}", tiny=False)
    with pytest.raises(DataError, match="EMBEDLAB_DATA_DIR"):
        load_dataset(cfg.data, cfg.paths, seed=0)


EXPERIMENTS = sorted(
    p.stem for p in (config_dir() / "experiment").glob("boe_*.yaml") if p.stem != "boe_synthetic"
)


def test_every_dataset_has_a_boe_experiment():
    assert sorted(f"boe_{n}" for n in COUNTS) == EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose_and_validate(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}", tiny=False)
    validate(cfg)
    assert cfg.data.source == "files" and cfg.task_name == experiment


def test_published_numbers_are_parsed_from_the_readmes(shared_data):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reproduce import published

    mr = published(shared_data, "mr")
    assert mr["CNN-rand"] == {"kim": 76.1, "sent-conv-torch": 75.9}
    assert published(shared_data, "trec")["CNN-non-static"]["kim"] == 93.6


def test_train_on_a_user_csv_in_one_command(make_cfg, tmp_path):
    """The README's one-liner: data=files data.train=... data.test=... trains and saves labels."""
    from embedlab.train import train

    rng = np.random.default_rng(0)
    words = {
        "spam": ["win", "free", "cash", "prize"],
        "ham": ["meeting", "lunch", "report", "notes"],
    }
    for split, n in (("train", 240), ("test", 60)):
        rows = ["text,label"]
        for _ in range(n):
            label = str(rng.choice(["spam", "ham"]))
            rows.append(" ".join(rng.choice(words[label], 3)) + " today," + label)
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    cfg = make_cfg(
        "data=files",
        f"data.train={tmp_path / 'train.csv'}",
        f"data.test={tmp_path / 'test.csv'}",
        "data.batch_size=16",
        "trainer.max_epochs=3",
        "optimizer.lr=0.05",
        "logger.tensorboard=false",
        tiny=False,
    )
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.95
    run = Path(cfg.paths.output_dir)
    assert json.loads((run / "labels.json").read_text()) == ["ham", "spam"]


TRANSFORMER = sorted(p.stem for p in (config_dir() / "experiment").glob("transformer_*.yaml"))


@pytest.mark.skipif(
    not (config_dir() / "model" / "transformer.yaml").is_file(), reason="model=transformer not here"
)
@pytest.mark.parametrize("experiment", TRANSFORMER)
def test_transformer_experiments_compose_and_validate(make_cfg, experiment):
    cfg = make_cfg(f"experiment={experiment}", tiny=False)
    validate(cfg)
    assert cfg.model.name == "transformer" and cfg.embedding.dim == cfg.model.d_model


def test_reproduce_combine_replaces_rows_and_keeps_dataset_order(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reproduce import combine

    def row(dataset: str, ours: str) -> dict:
        return {
            "dataset": dataset,
            "model": "boe",
            "init": "rand (normal)",
            "train": "train.tsv",
            "ours": ours,
            "kim_rand": 76.1,
            "kim_nonstatic": 81.5,
            "sct_rand": 75.9,
            "delta": 1.0,
            "seconds": 3.0,
        }

    def part(name: str, rows: list, runs: list) -> Path:
        path = tmp_path / f"{name}.json"
        info = {"wall_seconds": 60.0, "commands": [name], "seeds": 3, "data_dir": "d"}
        path.write_text(json.dumps({**info, "rows": rows, "runs": runs}))
        return path

    first = part(
        "a",
        [row("TREC", "88.0 ± 1.0"), row("MR", "77.0 ± 1.0")],
        [{"experiment": "boe_trec", "seed": 0}, {"experiment": "boe_mr", "seed": 0}],
    )
    second = part("b", [row("MR", "78.0 ± 0.5")], [{"experiment": "boe_mr", "seed": 0}])
    table = combine(tmp_path / "all", [first, second])
    lines = [x for x in table.splitlines() if x.startswith("| MR") or x.startswith("| TREC")]
    assert (
        lines[0].startswith("| MR") and "78.0 ± 0.5" in lines[0] and lines[1].startswith("| TREC")
    )
    data = json.loads((tmp_path / "all.json").read_text())
    assert len(data["runs"]) == 2 and data["wall_seconds"] == 120.0
    assert "Command: `a`" in table and "Command: `b`" in table


def test_reproduce_combine_pools_parts_with_other_seeds(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reproduce import combine

    def part(name: str, accs: dict[int, float]) -> Path:
        runs = [
            {
                "experiment": "cnn_trec",
                "init": "rand",
                "seed": seed,
                "test/acc": acc,
                "val/acc_best": acc + 0.01,
                "seconds": 10.0 * (seed + 1),
            }
            for seed, acc in accs.items()
        ]
        mean = 100 * sum(accs.values()) / len(accs)
        row = {
            "dataset": "TREC",
            "model": "cnn",
            "init": "rand (uniform)",
            "init_key": "rand",
            "train": "train.tsv",
            "ours": "x",
            "val": "x",
            "mean": mean,
            "kim_rand": 91.2,
            "kim_nonstatic": 93.6,
            "sct_rand": 88.2,
            "delta": mean - 91.2,
            "seconds": 1.0,
        }
        other = {**row, "init": "glove (frozen)", "init_key": "glove_frozen", "ours": "60.0 ± 0.0"}
        other_run = {**runs[0], "init": "glove_frozen", "test/acc": 0.6}
        path = tmp_path / f"{name}.json"
        info = {"wall_seconds": 60.0, "commands": [name], "seeds": len(accs), "data_dir": "d"}
        path.write_text(json.dumps({**info, "rows": [row, other], "runs": [*runs, other_run]}))
        return path

    table = combine(tmp_path / "all", [part("a", {0: 0.90}), part("b", {1: 0.92, 2: 0.94})])
    line = next(x for x in table.splitlines() if x.startswith("| TREC | cnn | rand"))
    assert "| 92.0 ± 2.0 |" in line and "| 93.0 ± 2.0 |" in line  # test and val over 3 seeds
    assert line.endswith("| 20 |")  # mean seconds of the three runs
    assert "(mean ± std, 3 seeds)" in table
    frozen = next(x for x in table.splitlines() if x.startswith("| TREC | cnn | glove (frozen)"))
    assert "60.0 ± 0.0" in frozen  # seed 0 in both parts: replaced, not pooled
    # the same seeds again: the later part's row replaces the earlier one, and so do its runs
    again = combine(
        tmp_path / "again", [part("c", {1: 0.5, 2: 0.7}), part("d", {1: 0.92, 2: 0.94})]
    )
    line = next(x for x in again.splitlines() if x.startswith("| TREC | cnn | rand"))
    assert "| +1.8 |" in line  # d's mean, 93.0 - 91.2
    runs = json.loads((tmp_path / "again.json").read_text())["runs"]
    assert sorted(r["test/acc"] for r in runs if r["init"] == "rand") == [0.92, 0.94]


def test_reproduce_run_again_reuses_finished_runs_and_refuses_other_ones(
    shared_data, tmp_path, monkeypatch, capsys
):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from reproduce import main

    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(shared_data))
    out, runs = tmp_path / "table", tmp_path / "runs"
    args = ["--datasets", "trec", "--seeds", "1", "--out", str(out), "--runs-dir", str(runs)]
    quick = ["trainer.max_epochs=1", "callbacks=none"]
    main([*args, *quick])
    first = json.loads(out.with_suffix(".json").read_text())["runs"][0]
    capsys.readouterr()
    main([*args, *quick])  # as after a stop: nothing left to train
    assert "finished before, its metrics.json is reused" in capsys.readouterr().out
    again = json.loads(out.with_suffix(".json").read_text())["runs"][0]
    assert again["test/acc"] == first["test/acc"] and again["global_steps"] == first["global_steps"]
    with pytest.raises(SystemExit, match="boe_trec/seed0: holds a finished run of other"):
        main([*args, "trainer.max_epochs=2", "callbacks=none"])
