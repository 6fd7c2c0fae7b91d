"""data.streaming: byte-range shards over workers and ranks, LM windows, train() end to end."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from embedlab.config import validate
from embedlab.data.batching import identity_collate
from embedlab.data.datamodule import ClassificationDataModule
from embedlab.data.files import BadRows, Span, read_text
from embedlab.data.lm import IGNORE, LanguageModelDataModule
from embedlab.data.streaming import Shard, shuffled
from embedlab.errors import ConfigError, DataError
from embedlab.train import train
from tests.conftest import load_script

pytestmark = pytest.mark.usefixtures("one_thread")

EOS = "tokenizer.eos_token='<eos>'"
TINY_LM = [
    "task=lm",
    "model=transformer_lm",
    "model.d_model=16",
    "embedding.dim=16",
    "model.num_layers=1",
    "model.nhead=2",
    "model.dim_feedforward=32",
    "data.block_size=8",
    "data.batch_size=16",
    "task.generate.num_samples=0",
    EOS,
]


def label(i: int) -> str:
    return "pos" if i % 3 else "neg"


def _corpus(folder: Path, n: int = 1000, seed: int = 0) -> tuple[Path, Path, list[str]]:
    """label<TAB>text lines (and the texts alone in train.txt), each text with a unique word ``idN``."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "épsilon", "zéta", "ηta", "theta"]
    texts = [
        " ".join([f"id{i}", *rng.choices(words, k=rng.randint(0, 14)), "good" if i % 3 else "bad"])
        for i in range(n)
    ]
    tsv = "".join(f"{label(i)}\t{t}\n" for i, t in enumerate(texts))
    (folder / "train.tsv").write_text("label\ttext\n" + tsv)
    (folder / "val.tsv").write_text("label\ttext\n" + "".join(tsv.splitlines(True)[:60]))
    (folder / "train.txt").write_text("".join(t + "\n" for t in texts))
    (folder / "valid.txt").write_text("".join(t + "\n" for t in texts[:60]))
    return folder / "train.tsv", folder / "val.tsv", texts


@pytest.fixture
def make_cfg(make_cfg):
    """The shared fixture with the shipped data sizes (tiny ones are the synthetic source's)."""

    def _make(*overrides: str):
        return make_cfg("trainer.max_epochs=2", *overrides, tiny=False)

    return _make


def _files_cfg(make_cfg, train: Path, val: Path, *extra: str):
    return make_cfg(
        "data=files",
        f"data.train={train}",
        f"data.val={val}",
        "data.streaming=true",
        "tokenizer.ngrams=1",
        *extra,
    )


def _in_workers(batches, rank: int, world: int, workers: int = 2) -> list[dict]:
    """Every batch simulated rank ``rank`` of ``world`` gets from ``workers`` real DataLoader workers."""
    batches.rank, batches.world = rank, world
    loader = DataLoader(batches, batch_size=None, collate_fn=identity_collate, num_workers=workers)
    return list(loader)


# --------------------------------------------------------------------------- shards


def test_byte_ranges_give_every_line_to_exactly_one_reader(tmp_path):
    _, _, texts = _corpus(tmp_path, 300)
    path = tmp_path / "train.txt"
    for count in (1, 2, 3, 4, 7, 64, 2000):  # more parts than lines: most are empty
        seen = []
        for index in range(count):
            span = Span.part(path, index, count)
            seen += [r.text for r in read_text(path, "utf-8", BadRows(), span=span)]
        assert seen == texts, count


def test_every_line_once_over_two_workers_and_two_ranks(make_cfg, tmp_path):
    train, val, texts = _corpus(tmp_path, 1000)
    cfg = _files_cfg(make_cfg, train, val, "data.batch_size=32", "data.vocab_sample=2000")
    validate(cfg)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout="bag")
    dm.setup()
    batches = dm._loader("train", True).dataset
    seen: Counter[str] = Counter()
    labels: Counter[int] = Counter()
    for rank in (0, 1):
        for batch in _in_workers(batches, rank, 2):
            ids, offsets = batch["ids"].tolist(), batch["offsets"].tolist() + [len(batch["ids"])]
            for k in range(len(offsets) - 1):
                words = [dm.vocab[i] for i in ids[offsets[k] : offsets[k + 1]]]
                seen.update(w for w in words if w.startswith("id"))
            labels.update(batch["labels"].tolist())
    assert seen == Counter(f"id{i}" for i in range(len(texts)))  # each line exactly once
    assert labels == Counter(dm.label_names.index(label(i)) for i in range(len(texts)))


def test_lm_windows_cover_each_shards_token_stream(make_cfg, tmp_path):
    _corpus(tmp_path, 400)
    cfg = make_cfg(
        *TINY_LM, "data=text", f"data.root={tmp_path}", "data.test=null", "data.streaming=true",
        "data.shuffle_buffer=0",
    )  # fmt: skip
    validate(cfg)
    dm = LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    dm.setup()
    batches = dm._loader("train", True).dataset
    eos = dm.eos_id
    # the whole file as one stream, the way the in-memory path builds it
    lines = (tmp_path / "train.txt").read_text().splitlines()
    full = [
        t for line in lines for t in [*dm.tokenizer.encode(line, add_special_tokens=False).ids, eos]
    ]
    streams = []
    for index in range(4):  # 2 ranks x 2 workers, each shard read in order
        shard = Shard(index // 2, 2, index % 2, 2)
        rows, _ = batches.reader.rows(shard, BadRows())
        from tokenizers import Tokenizer

        blocks = list(batches._blocks(rows, Tokenizer.from_str(batches.tokenizer_json)))
        inputs = [t for w, n in blocks for t in w[: n - 1].tolist()]
        streams.append(inputs + [int(blocks[-1][0][blocks[-1][1] - 1])])
        assert all(n == 9 for _, n in blocks[:-1])  # full windows of block_size + 1
    assert [t for s in streams for t in s] == full  # the shards' streams, in order, are the file's
    # through real workers: every token but each shard's first is predicted exactly once
    targets = Counter()
    for rank in (0, 1):
        for batch in _in_workers(batches, rank, 2):
            assert batch["ids"].shape[1] == 8
            t = batch["targets"]
            targets.update(t[t != IGNORE].tolist())
    assert targets == Counter(full) - Counter(s[0] for s in streams)


def test_shuffle_buffer_is_a_seeded_permutation():
    a = list(shuffled(range(1000), 64, random.Random("1:0:0")))
    b = list(shuffled(range(1000), 64, random.Random("1:0:0")))
    c = list(shuffled(range(1000), 64, random.Random("1:1:0")))
    assert a == b != c and sorted(a) == list(range(1000)) and a != list(range(1000))
    assert list(shuffled(range(10), 0, random.Random(0))) == list(range(10))


def test_hub_stream_shards_rows_over_ranks_and_workers(make_cfg, tmp_path):
    pytest.importorskip("datasets")
    _, _, texts = _corpus(tmp_path, 300)
    rows = [{"text": t, "label": label(i)} for i, t in enumerate(texts)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:30]))
    cfg = make_cfg(
        "data=hub", "data.name=json", f"+data.data_files.train={tmp_path / 'train.jsonl'}",
        f"+data.data_files.validation={tmp_path / 'val.jsonl'}", "data.splits.test=null",
        f"data.cache_dir={tmp_path / 'hf'}", "data.streaming=true", "tokenizer.ngrams=1",
        "data.batch_size=16",
    )  # fmt: skip
    validate(cfg)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout="bag")
    dm.setup()
    batches = dm._loader("train", True).dataset
    seen: Counter[str] = Counter()
    for rank in (0, 1):
        for batch in _in_workers(batches, rank, 2):
            seen.update(dm.vocab[i] for i in batch["ids"].tolist() if dm.vocab[i].startswith("id"))
    assert seen == Counter(f"id{i}" for i in range(len(texts)))
    assert len(dm.encoded["val"]) == 30  # val read whole, into memory


# --------------------------------------------------------------------------- train()


def test_streamed_classification_run_sees_every_row_each_epoch(make_cfg, tmp_path):
    train_file, val, texts = _corpus(tmp_path, 1200)
    cfg = _files_cfg(make_cfg, train_file, val, "data.num_workers=2", "data.batch_size=64")
    metrics = train(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["train_examples"] == metrics["train_examples"] == 2 * len(texts)  # 2 epochs
    assert written["val/acc"] > 0.9 and "test/acc" in written  # test on val (no test file)
    assert (tmp_path / "run" / "tokenizer.json").is_file()


def test_streamed_lm_run_predicts_every_token_but_one_per_shard(make_cfg, tmp_path):
    _corpus(tmp_path, 500)
    cfg = make_cfg(
        *TINY_LM, "data=text", f"data.root={tmp_path}", "data.test=valid.txt", "data.streaming=true",
        "data.num_workers=2", "trainer.max_epochs=1",
    )  # fmt: skip
    metrics = train(cfg)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp_path / "run" / "tokenizer.json"))
    lines = (tmp_path / "train.txt").read_text().splitlines()
    tokens = sum(len(e.ids) + 1 for e in tok.encode_batch(lines, add_special_tokens=False))
    assert metrics["train_examples"] == tokens - 2  # 2 worker shards: their first tokens
    assert metrics["test/ppl"] > 1 and (tmp_path / "run" / "metrics.json").is_file()


def test_progress_bar_without_a_length_and_an_int_batch_limit(make_cfg, tmp_path):
    train_file, val, _ = _corpus(tmp_path, 1000)
    cfg = _files_cfg(
        make_cfg, train_file, val, "trainer.enable_progress_bar=true", "callbacks.rich_progress=true",
        "trainer.limit_train_batches=3", "data.batch_size=32",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["global_steps"] == 6 and metrics["train_examples"] == 2 * 3 * 32  # 2 epochs


def test_a_bad_row_deep_in_the_stream_names_its_line_in_one_line(make_cfg, tmp_path):
    train_file, val, _ = _corpus(tmp_path, 1000)
    with train_file.open("a") as f:
        f.write("pos\tlast line\textra field\n")  # line 1002 (header + 1000 rows + this)
    cfg = _files_cfg(make_cfg, train_file, val, "data.num_workers=2", "data.vocab_sample=32")
    with pytest.raises(DataError) as info:  # raised in a worker, re-raised in the main process
        train(cfg)
    message = str(info.value)
    assert f"{train_file}:1002: wrong number of fields" in message and "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (["data.vocab_sample=0"], "data.vocab_sample: must be >= 1"),
        (["data.shuffle_buffer=-1"], "data.shuffle_buffer: must be >= 0"),
        (["trainer.limit_train_batches=0.5"], "trainer.limit_train_batches: a streamed epoch"),
        (["trainer.val_check_interval=0.25"], "trainer.val_check_interval:"),
        (["scheduler=cosine"], "trainer.max_steps: scheduler=cosine"),
        (["data.val=null"], "data.val: data.streaming=true needs a validation file"),
    ],
)
def test_streaming_config_errors_name_the_key(make_cfg, tmp_path, overrides, problem):
    train_file, val, _ = _corpus(tmp_path, 10)
    cfg = _files_cfg(make_cfg, train_file, val, *overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_csv_with_quoting_cannot_stream(make_cfg, tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nx,1\n")
    cfg = _files_cfg(make_cfg, tmp_path / "a.csv", tmp_path / "a.csv")
    with pytest.raises(ConfigError, match=r"data\.quoting: data\.streaming=true reads CSV"):
        validate(cfg)
    cfg.data.quoting = False
    validate(cfg)


def test_console_exits_2_with_the_key(tmp_path):
    train_file, val, _ = _corpus(tmp_path, 10)
    cmd = [
        sys.executable, "-m", "embedlab.train", "print_config=false", f"hydra.run.dir={tmp_path / 'r'}",
        "data=files", f"data.train={train_file}", f"data.val={val}", "data.streaming=true",
        "data.vocab_sample=0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "data.vocab_sample: must be >= 1" in proc.stderr


def test_two_ranks_with_uneven_shards_take_the_same_batches(tmp_path):
    """DDP on CPU: rank 1's byte range holds 5x the rows of rank 0's; no rank waits forever."""
    rows = [f"pos\t{'long words here ' * 12}id{i} good" for i in range(300)]
    rows += [f"{label(i)}\tid{i} {'good' if i % 3 else 'bad'}" for i in range(300, 1800)]
    (tmp_path / "train.tsv").write_text("label\ttext\n" + "\n".join(rows) + "\n")
    (tmp_path / "val.tsv").write_text("label\ttext\npos\tx good\nneg\ty bad\n")
    run = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "embedlab.train", "print_config=false",
        "trainer.enable_progress_bar=false", "callbacks.rich_progress=false",
        f"hydra.run.dir={run}", f"paths.root_dir={tmp_path}",
        "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", "trainer.max_epochs=2",
        "data=files", f"data.train={tmp_path / 'train.tsv'}", f"data.val={tmp_path / 'val.tsv'}",
        "data.streaming=true", "data.num_workers=1", "data.batch_size=50",
    ]  # fmt: skip
    env = {**os.environ, "EMBEDLAB_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and "val/acc" in metrics and metrics["epochs"] == 2
    # every rank stops when the shorter shard (rank 0's) runs out: its batches set the pace
    assert metrics["global_steps"] == 2 * -(-metrics["train_examples"] // 2 // 50)


def test_streaming_batches_match_the_in_memory_layouts(make_cfg, tmp_path):
    """A streamed padded batch is what PaddedBatches makes of the same rows (one shard, no shuffle)."""
    train_file, val, texts = _corpus(tmp_path, 100)
    cfg = _files_cfg(
        make_cfg, train_file, val, "model=transformer", "data.shuffle_buffer=0",
        "data.batch_size=100", "data.vocab_sample=1000",
    )  # fmt: skip
    validate(cfg)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed, layout="padded")
    dm.setup()
    (batch,) = list(dm._loader("train", True))
    from embedlab.data.batching import PaddedBatches
    from embedlab.data.tokenizer import encode

    labels = np.asarray([dm.label_names.index(label(i)) for i in range(100)])
    enc = encode(dm.tokenizer, texts, labels)
    want = PaddedBatches(enc, dm.pad_id).__getitems__(range(100))
    for key in ("ids", "mask", "labels"):
        assert torch.equal(batch[key], want[key]), key


# --------------------------------------------------------------------------- scale (slow)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_streaming")


def test_bench_corpus_has_the_lines_and_labels_asked_for(bench, tmp_path):
    info = bench.write_corpus(tmp_path, 1234)
    tsv = (tmp_path / "train.tsv").read_text().splitlines()
    assert (
        info["lines"]
        == 1234
        == len(tsv) - 1
        == len((tmp_path / "train.txt").read_text().splitlines())
    )
    assert {line.split("\t")[0] for line in tsv[1:]} == set(bench.CLASSES)


@pytest.mark.slow
def test_peak_memory_of_a_streamed_epoch_does_not_grow_with_the_corpus(bench, tmp_path):
    """2M and 8M generated lines (~150 and ~600 MiB a file), one full streamed epoch each of a
    tiny LM and a tiny bag classifier in a child process: the 4x peak RSS stays within
    1.15x of the 1x peak + 32 MiB (the in-memory path would hold 4x the texts and ids)."""
    lines = int(os.environ.get("EMBEDLAB_STREAM_TEST_LINES", 2_000_000))  # smaller: a dry run
    rows = bench.run(lines, [1, 4], ["lm", "classification"], workers=1, tmp=tmp_path)
    for task in ("lm", "classification"):
        one, four = (r for r in rows if r["task"] == task)
        for r in (one, four):  # a full epoch: every row (classification), every token (LM)
            n = r["lines"]
            if task == "classification":
                assert r["train_examples"] == n
            else:  # >= 8 words + <eos> a line, one shard: all tokens but the first predicted
                assert r["train_examples"] >= 9 * n - 1
        assert four["peak_mb"] <= 1.15 * one["peak_mb"] + 32, (one, four)
