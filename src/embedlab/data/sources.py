"""Data sources: one registry entry per ``data.source``, with its schema, checks and loader.

``synthetic`` (generated), ``synthetic_lm`` (a generated LM corpus), ``text`` (plain-text
files, one text per line), ``files`` (CSV/TSV/JSONL/fastText/plain text, see
:mod:`embedlab.data.files`) and ``hub`` (``datasets.load_dataset``, see :mod:`embedlab.data.hub`).

A source is ``load(cfg, paths) -> TextDataset``, registered with the dataclass of its
``data`` node (stored as ``schema/data/<name>`` for its YAML file) and a check of what types
cannot say. When it yields no "val" split, one is carved from train (stratified by label,
seeded by ``data_seed`` or ``seed``, ``data.val_fraction``). Sources whose schema derives from
:class:`LMDataCommon` give unlabelled text for ``task=lm``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING, OmegaConf

from embedlab.data import synthetic, synthetic_lm
from embedlab.data.files import (
    DATA_FORMATS,
    EXTENSION_FORMATS,
    BadRows,
    LabelEncoder,
    encode_labels,
    read_rows,
    read_text,
)
from embedlab.data.types import TextDataset, TextSplit
from embedlab.errors import DataError, OnBadRows
from embedlab.registry import Registry

log = logging.getLogger(__name__)


class Chunking(StrEnum):
    stream = "stream"  # concatenate all texts (+eos) and cut contiguous block_size windows
    sentence = "sentence"  # one text per example: bos + tokens + eos, padded per batch
    # the stream cut into batch_size contiguous rows read left to right, block_size tokens a
    # batch, in order (batchify): a recurrent model carries its state from batch to batch
    rows = "rows"


@dataclass
class DataCommon:
    source: str = MISSING  # registry name of the data source (see embedlab.data.sources)
    batch_size: int | None = None  # examples per training batch (None: boe 256, transformers 64)
    eval_batch_size: int = 512  # examples per val/test batch
    # training batches per Lightning step, one optimizer update each (None: boe 64,
    # transformer_lm 8, others 1): Lightning's fixed cost per step is paid once for all of them
    batches_per_step: int | None = None
    num_workers: int = 0  # DataLoader workers; the in-memory batches need none
    # build the next step's batches in a thread while this step trains (with batches_per_step
    # > 1, no workers and the fused bag step; None: boe true, others false)
    prefetch: bool | None = None
    val_fraction: float = 0.1  # carved from train (stratified, seeded) when there is no val split
    max_len: int | None = None  # truncate every text to this many tokens (None: keep all)
    cache: bool = True  # cache tokenized splits under paths.cache_dir, keyed by content
    # padded layouts: sort by length within chunks of this many batches (0: off)
    length_buckets: int = 50
    on_bad_rows: OnBadRows = OnBadRows.error  # error: stop at file:line | skip: drop, count, report


@dataclass
class SyntheticDataConfig(DataCommon):
    """The embedded default: class words among shared and noise words, generated at run time."""

    source: str = "synthetic"
    num_classes: int = 6  # number of labels
    num_train: int = 12000  # training examples
    num_val: int = 2000  # validation examples
    num_test: int = 2000  # test examples
    class_words: int = 40  # signal words owned by each class
    shared_words: int = 400  # topic-neutral words all classes use (Zipf distributed)
    noise_words: int = 2000  # rare words drawn uniformly (many never repeat)
    min_len: int = 8  # shortest text, in words
    max_words: int = 24  # longest text, in words
    signal: float = 0.15  # probability that a word is a class word
    confusion: float = 0.2  # probability that a class word comes from a random other class
    label_noise: float = 0.0  # fraction of labels flipped uniformly at random
    data_seed: int = 1234  # generator seed, independent of the training seed


@dataclass
class LMDataCommon(DataCommon):
    """Unlabelled text for language modelling (task=lm)."""

    batch_size: int = 32  # windows (or sentences) per training batch
    eval_batch_size: int = 64
    # tokens per window (stream, rows) / longest sentence incl. bos+eos (sentence)
    block_size: int = 64
    chunking: Chunking = Chunking.stream  # stream | sentence | rows


@dataclass
class StreamingOptions:
    """Keys of the sources that can stream their training split (text, files, hub)."""

    # read the training split lazily, tokenizing in the DataLoader workers, sharded over
    # workers and DDP ranks (val/test are still read into memory): corpora larger than memory
    streaming: bool = False
    vocab_sample: int = 100_000  # streaming: train the tokenizer (and label set) on this many rows
    shuffle_buffer: int = (
        10_000  # streaming: shuffle within a buffer of this many rows/blocks (0: file order)
    )


@dataclass
class SyntheticLMConfig(LMDataCommon):
    """The embedded LM corpus: sentences from a seeded probabilistic grammar over pseudo-words."""

    source: str = "synthetic_lm"
    num_train: int = 4000  # training sentences
    num_val: int = 400  # validation sentences
    num_test: int = 400  # test sentences
    nouns: int = 120  # noun types (each used in singular and plural form)
    verbs: int = 60  # verb types (singular and plural form)
    adjectives: int = 40
    adverbs: int = 20
    data_seed: int = 1234  # generator seed, independent of the training seed


@dataclass
class TextFilesLMConfig(StreamingOptions, LMDataCommon):
    """Plain-text corpora: one file per split, one text (sentence, line) per line."""

    source: str = "text"
    root: str = "${paths.data_dir}"  # folder the file names below are relative to
    train: str = "train.txt"  # training file (relative to root, or absolute)
    val: str | None = "valid.txt"  # validation file (None: carve data.val_fraction from train)
    test: str | None = "test.txt"  # test file (None: no test split; test runs on val)
    encoding: str = "utf-8"
    skip_empty: bool = True  # drop blank lines


@dataclass
class FilesDataConfig(StreamingOptions, DataCommon):
    """Labelled examples from local files: CSV, TSV, JSONL, fastText ``__label__x text`` lines.

    Relative paths resolve against ``root`` (when set). Columns are names (header row, JSON
    keys) or 0-based positions. Label ids follow ``label_names`` when given (a file label is a
    name or an integer id), else the sorted distinct train labels (numerically if all integers).
    """

    source: str = "files"
    root: str | None = None  # folder the relative paths below are resolved against
    train: str = MISSING  # training file
    val: str | None = None  # validation file (None: carve data.val_fraction from train)
    test: str | None = None  # test file (None: test on val)
    format: str | None = None  # csv | tsv | jsonl | fasttext | text (None: from the extension)
    text_column: Any = "text"  # column name or 0-based position of the text
    label_column: Any = "label"  # column name or position of the label (null: unlabelled)
    header: bool = True  # csv/tsv: the first line names the columns
    delimiter: str | None = None  # csv/tsv field separator (None: "," for csv, TAB for tsv)
    quoting: bool | None = None  # csv quoting rules (None: on for csv, off for tsv)
    encoding: str = "utf-8"  # bytes that do not decode are bad rows
    label_names: list[str] | None = None  # id order of the labels (None: sorted train labels)
    name: str | None = None  # dataset name for logs and tables (None: the train file's stem)
    max_text_chars: int = 10_000_000  # a longer text is a bad row (any format)


@dataclass
class HubDataConfig(StreamingOptions, DataCommon):
    """A dataset through ``datasets.load_dataset`` (Hugging Face hub, or a local builder)."""

    source: str = "hub"
    # hub id ("fancyzhx/ag_news") or a builder ("csv", "json", "text", "parquet")
    name: str = MISSING
    subset: str | None = None  # the dataset's config name ("wikitext-2-raw-v1")
    revision: str | None = None  # git revision on the hub (None: main)
    data_files: dict[str, Any] = field(
        default_factory=dict
    )  # builder inputs: {split: path or [paths]}
    splits: dict[str, Any] = field(
        default_factory=lambda: {"train": "train", "val": "validation", "test": "test"}
    )  # our split -> the dataset's split; a missing val is carved, null drops a split
    text_column: str = "text"  # the text field
    label_column: str | None = "label"  # the label field (null: unlabelled, e.g. LM corpora)
    label_names: list[str] | None = None  # id order (None: the ClassLabel names, else sorted)
    # read lazily (datasets' streaming mode, nothing materialised on disk), and stream the
    # training split through the DataLoader workers (see StreamingOptions)
    streaming: bool = False
    # keep the first N examples per split (with streaming: fetch only N)
    max_examples: int | None = None
    cache_dir: str | None = None  # datasets' own cache (None: HF_DATASETS_CACHE)


def _common_problems(cfg: Any) -> list[str]:
    data = cfg.data
    problems = []
    if data.batch_size is not None and data.batch_size < 1:
        problems.append(f"data.batch_size: must be >= 1, got {data.batch_size}")
    if data.batches_per_step is not None and data.batches_per_step < 1:
        problems.append(f"data.batches_per_step: must be >= 1, got {data.batches_per_step}")
    if not 0.0 < data.val_fraction < 1.0:
        problems.append(f"data.val_fraction: must be in (0, 1), got {data.val_fraction}")
    return problems


DATA_SOURCES: Registry = Registry(
    "data source", "data.source", node="data", group="data", check=_common_problems
)


def is_lm_source(name: str) -> bool:
    """Whether data source ``name`` gives unlabelled text for language modelling."""
    schema = DATA_SOURCES.schema(name) if name in DATA_SOURCES else None
    return schema is not None and issubclass(schema, LMDataCommon)


def _lm_problems(cfg: Any) -> list[str]:
    problems = []
    if cfg.data.block_size < 2:
        problems.append(f"data.block_size: must be >= 2, got {cfg.data.block_size}")
    if cfg.data.chunking == Chunking.sentence and not (
        cfg.tokenizer.bos_token and cfg.tokenizer.eos_token
    ):
        problems.append(
            "data.chunking: sentence needs tokenizer.bos_token and tokenizer.eos_token (e.g. <bos>, <eos>)"
        )
    if cfg.data.chunking == Chunking.rows and cfg.data.get("streaming", False):
        problems.append(
            "data.chunking: rows cuts the whole training stream in memory; "
            "set data.streaming=false or data.chunking=stream"
        )
    return problems


@DATA_SOURCES.register("synthetic", SyntheticDataConfig)
def load_synthetic(cfg: Any, paths: Any) -> TextDataset:
    splits, names = synthetic.generate(
        {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
        num_classes=cfg.num_classes,
        class_words=cfg.class_words,
        shared_words=cfg.shared_words,
        noise_words=cfg.noise_words,
        min_len=cfg.min_len,
        max_words=cfg.max_words,
        signal=cfg.signal,
        confusion=cfg.confusion,
        label_noise=cfg.label_noise,
        seed=cfg.data_seed,
    )
    return TextDataset(splits=splits, label_names=names, info={"source": "synthetic"})


@DATA_SOURCES.register("synthetic_lm", SyntheticLMConfig, check=_lm_problems)
def load_synthetic_lm(cfg: Any, paths: Any) -> TextDataset:
    splits = synthetic_lm.generate(
        {"train": cfg.num_train, "val": cfg.num_val, "test": cfg.num_test},
        nouns=cfg.nouns,
        verbs=cfg.verbs,
        adjectives=cfg.adjectives,
        adverbs=cfg.adverbs,
        seed=cfg.data_seed,
    )
    return TextDataset(splits=splits, info={"source": "synthetic_lm"})


def _streaming_problems(cfg: Any) -> list[str]:
    """What a streamed training split cannot do (run for the sources with StreamingOptions)."""
    data, problems = cfg.data, []
    if data.vocab_sample < 1:
        problems.append(f"data.vocab_sample: must be >= 1, got {data.vocab_sample}")
    if data.shuffle_buffer < 0:
        problems.append(
            f"data.shuffle_buffer: must be >= 0 (0: file order), got {data.shuffle_buffer}"
        )
    if not data.streaming:
        return problems
    trainer = cfg.trainer
    limit = trainer.limit_train_batches
    if isinstance(limit, float) and limit != 1.0:
        problems.append(
            f"trainer.limit_train_batches: a streamed epoch has no known length, so {limit} of it "
            "is undefined; give a number of batches (an int) with data.streaming=true"
        )
    interval = trainer.val_check_interval
    if isinstance(interval, float) and interval != 1.0:
        problems.append(
            f"trainer.val_check_interval: {interval} of a streamed epoch is undefined; give a "
            "number of batches (an int) with data.streaming=true"
        )
    if cfg.scheduler.name != "none" and cfg.scheduler.interval == "step" and trainer.max_steps < 0:
        problems.append(
            f"trainer.max_steps: scheduler={cfg.scheduler.name} steps per batch and needs the "
            "run's length, which a streamed epoch does not know; set trainer.max_steps=N "
            "(or scheduler.interval=epoch)"
        )
    if cfg.task.name == "word2vec":
        problems.append("data.streaming: task=word2vec reads its corpus into memory; set it false")
    if data.get("chunking", "stream") != Chunking.stream:
        problems.append(
            "data.chunking: data.streaming=true cuts the token stream into blocks; use chunking=stream"
        )
    if "val" in data and data.val is None:
        problems.append(
            "data.val: data.streaming=true needs a validation file (a stream is not carved; "
            "val and test are read into memory)"
        )
    if "quoting" in data:  # files: one record per line, so that a byte range holds whole rows
        fmt = data.format or EXTENSION_FORMATS.get(Path(str(data.train)).suffix.lower())
        if fmt == "csv" and data.quoting is not False:
            problems.append(
                "data.quoting: data.streaming=true reads CSV one record per line, and quoting "
                "lets a record span lines; set data.quoting=false (no field holds a newline) "
                "or use tsv/jsonl"
            )
    return problems


def _text_problems(cfg: Any) -> list[str]:
    return _lm_problems(cfg) + _streaming_problems(cfg)


SPLITS = ("train", "val", "test")


@DATA_SOURCES.register("text", TextFilesLMConfig, check=_text_problems)
def load_text_files(
    cfg: Any, paths: Any, only: tuple[str, ...] = SPLITS, names: list[str] | None = None
) -> TextDataset:
    """One plain-text file per split, one text per line (e.g. Penn Treebank).

    ``only``: the splits to read (a streamed run reads val and test here, train lazily).
    """
    bad = BadRows(cfg.on_bad_rows)
    splits: dict[str, TextSplit] = {}
    files: dict[str, str] = {}
    for split in only:
        if cfg.get(split) is None:
            continue
        path = text_file(cfg, split)
        rows = read_text(path, cfg.encoding, bad, skip_empty=cfg.skip_empty)
        splits[split] = TextSplit(texts=[r.text.strip() for r in rows], labels=None)
        files[split] = str(path)
    bad.report()
    if "train" in splits and not splits["train"].texts:
        raise DataError("data.train: the training file has no text", files["train"])
    return TextDataset(splits=splits, info={"source": "text", "files": files})


def text_file(cfg: Any, split: str) -> Path:
    """The file of ``split`` of a ``text`` source (relative to ``data.root``), which must exist."""
    root = Path(str(cfg.root)).expanduser()
    name = cfg.get(split)
    path = Path(str(name)).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        raise DataError(
            f"data.{split}: file not found (data.root={root}, data.{split}={name})", str(path)
        )
    return path


def _files_problems(cfg: Any) -> list[str]:
    data = cfg.data
    problems: list[str] = []
    if OmegaConf.is_missing(data, "train"):
        problems.append("data.train: required: the training file (data.train=PATH)")
    if data.format is not None and data.format not in DATA_FORMATS:
        problems.append(
            f"data.format: {data.format!r} is not a valid choice; choose one of {list(DATA_FORMATS)} or null"
        )
    for key in ("text_column", "label_column"):
        value = data[key]
        if value is None and key == "label_column":
            continue
        if not isinstance(value, int | str) or isinstance(value, bool):
            problems.append(f"data.{key}: a column name or 0-based position, got {value!r}")
    if data.delimiter is not None and len(data.delimiter) != 1:
        problems.append(f"data.delimiter: one character, got {data.delimiter!r}")
    if not OmegaConf.is_missing(data, "train"):
        problems += _streaming_problems(cfg)
    return problems


def _hub_problems(cfg: Any) -> list[str]:
    data = cfg.data
    problems: list[str] = []
    if OmegaConf.is_missing(data, "name"):
        problems.append(
            "data.name: required: a hub dataset id or a builder (csv, json, text, parquet)"
        )
    bad_keys = [k for k in data.splits if k not in ("train", "val", "test")]
    if bad_keys:
        problems.append(f"data.splits: keys must be train, val, test; got {bad_keys}")
    if data.max_examples is not None and data.max_examples < 1:
        problems.append(f"data.max_examples: must be >= 1, got {data.max_examples}")
    if data.streaming and data.splits.get("val") is None:
        problems.append(
            "data.splits.val: data.streaming=true needs a validation split (a stream is not carved)"
        )
    return problems + _streaming_problems(cfg)


def resolve_file(cfg: Any, key: str) -> Path:
    """The file of ``data.<key>`` of a ``files`` source (relative to ``data.root``), which must exist."""
    path = Path(str(cfg[key])).expanduser()
    if cfg.root and not path.is_absolute():
        root = Path(str(cfg.root)).expanduser()
        if not root.is_dir():
            raise DataError(
                "data.root does not exist; point EMBEDLAB_DATA_DIR (or paths.data_dir) at the folder that "
                "holds the dataset folders (e.g. ../shared/data), or pass data.root=PATH",
                str(root),
            )
        path = root / path
    if not path.is_file():
        raise DataError(f"file not found (data.{key})", str(path))
    return path


@DATA_SOURCES.register("files", FilesDataConfig, check=_files_problems)
def load_files(
    cfg: Any, paths: Any, only: tuple[str, ...] = SPLITS, names: list[str] | None = None
) -> TextDataset:
    """Labelled (or, with ``label_column: null``/format text, unlabelled) examples from files.

    ``only``: the splits to read; ``names``: the label order when train is not among them.
    """
    bad = BadRows(cfg.on_bad_rows)
    labelled = cfg.label_column is not None
    splits: dict[str, TextSplit] = {}
    encoder: LabelEncoder | None = LabelEncoder(names) if names else None
    formats = {}
    for name in only:
        if cfg.get(name) is None:
            continue
        path = resolve_file(cfg, name)
        fmt, rows = read_rows(path, cfg, bad)
        formats[name] = fmt
        has_labels = labelled and fmt != "text"
        if not has_labels:
            labels = None
        else:
            if encoder is None:
                encoder = LabelEncoder.fit(
                    [r.label for r in rows],
                    list(cfg.label_names) if cfg.label_names else None,
                    where=str(path),
                )
            rows, labels = encode_labels(rows, encoder, path, bad, name)
        if not rows:
            raise DataError(
                f"no usable rows in data.{name} ({bad.total} bad row(s) skipped)", str(path)
            )
        splits[name] = TextSplit([r.text for r in rows], labels)
    bad.report()
    info = {
        "source": "files",
        "name": cfg.name or Path(str(cfg.train)).stem,
        "formats": formats,
        "skipped": bad.summary(),
    }
    return TextDataset(splits=splits, label_names=encoder.names if encoder else [], info=info)


@DATA_SOURCES.register("hub", HubDataConfig, check=_hub_problems)
def load_hub(
    cfg: Any, paths: Any, only: tuple[str, ...] = SPLITS, names: list[str] | None = None
) -> TextDataset:
    from embedlab.data.hub import load_hub as _load_hub

    return _load_hub(cfg, paths, only, names)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each label held out, seeded, order preserved."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        k = int(round(fraction * len(idx)))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


def ensure_val(dataset: TextDataset, fraction: float, seed: int) -> TextDataset:
    """Carve a stratified validation split from train when the source has none."""
    if "val" in dataset.splits:
        return dataset
    train = dataset.splits["train"]
    labels = train.labels if train.labels is not None else np.zeros(len(train), dtype=np.int64)
    keep, held = stratified_split(labels, fraction, seed)

    def take(idx: np.ndarray) -> TextSplit:
        return TextSplit(
            texts=[train.texts[i] for i in idx.tolist()],
            labels=None if train.labels is None else train.labels[idx],
        )

    dataset.splits = {
        "train": take(keep),
        "val": take(held),
        **{k: v for k, v in dataset.splits.items() if k != "train"},
    }
    dataset.info["val_carved"] = {"fraction": fraction, "seed": seed, "size": len(held)}
    return dataset


def load_dataset(cfg: Any, paths: Any, seed: int) -> TextDataset:
    """Load ``cfg.source`` and make sure train, val and test exist."""
    dataset = DATA_SOURCES.get(cfg.source)(cfg, paths)
    dataset = ensure_val(dataset, cfg.val_fraction, seed)
    if dataset.label_names and dataset.splits["train"].labels is not None:
        n = len(dataset.label_names)
        for name, split in dataset.splits.items():
            if (
                split.labels is not None
                and len(split.labels)
                and (split.labels.min() < 0 or split.labels.max() >= n)
            ):
                raise DataError(
                    f"data split {name!r} has label ids outside [0, {n}) (source {cfg.source})"
                )
    if "test" not in dataset.splits:
        dataset.info["no_test_split"] = True
    return dataset
