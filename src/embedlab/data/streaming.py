"""Streamed training splits (``data.streaming=true``): corpora larger than memory.

The training split is never read whole. The main process reads a **vocabulary sample**
(``data.vocab_sample`` rows, spread over the file: the first rows of 32 equal byte ranges;
a hub split's first rows) to train the tokenizer, fix the label set and fit the n-grams,
and reads the val and test splits into memory as usual (they are assumed small).
Training batches then come from :class:`StreamBatches`, an ``IterableDataset`` that reads,
tokenizes and batches rows inside the DataLoader workers:

- **Sharding.** Worker ``w`` of ``W`` on DDP rank ``r`` of ``R`` reads shard
  ``r * W + w`` of ``R * W``: for a file, the lines that *begin* in that equal byte range
  (:class:`~embedlab.data.files.Span`), so every line is read by exactly one worker, and
  each reads only its own part. A hub split is divided over ranks by
  ``datasets.distributed.split_dataset_by_node`` (by data files when their number divides
  the world size, else each rank reads every example and keeps every R-th) and over each
  rank's workers by
  ``datasets`` itself (by data files: a split with fewer files than workers leaves some
  workers idle).
- **Classification**: rows go through a seeded shuffle buffer (``data.shuffle_buffer``),
  ``batch_size`` at a time are encoded with the run's tokenizer (and n-grams) and batched
  by :class:`~embedlab.data.batching.BagBatches` / ``PaddedBatches``.
- **Language modelling**: each shard's texts (+ ``eos``) form one token stream, cut into
  contiguous ``block_size + 1`` windows overlapping by one token (inputs, targets shifted by
  one), as :class:`~embedlab.data.lm.StreamWindows` does in memory; the last window of a
  shard is padded (pad targets ignored). Windows are shuffled in the buffer.
- **Memory** stays flat: a worker holds a read buffer, the shuffle buffer and one chunk of
  encoded text, whatever the size of the corpus.
- **Epochs.** The epoch ends when every worker's shard is exhausted; the shuffle is seeded by
  (``seed``, epoch, shard). The dataset has no ``len``: Lightning shows a progress bar without
  a total, and ``trainer.limit_train_batches`` / ``val_check_interval`` must be ints
  (``config.validate`` says so).
- **DDP.** Shards are as even as byte ranges make them, not exact. So that no rank waits
  for a batch another will never send, every rank takes the same number of batches: before
  each batch the ranks agree (one all-reduce of one number, in :class:`StreamLoader`) and
  all end the epoch at the first batch that some rank does not have. The other ranks'
  remaining batches of that epoch (at most the shard imbalance) are not trained on in it.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from embedlab.data.batching import BagBatches, PaddedBatches, identity_collate, world_and_rank
from embedlab.data.files import (
    BadRows,
    LabelEncoder,
    Row,
    Span,
    SpanBadRows,
    iter_rows,
    read_header,
    read_text,
)
from embedlab.data.types import TextDataset, TextSplit
from embedlab.errors import DataError

log = logging.getLogger(__name__)

STREAM_ERROR = "stream_error"  # key of the batch a worker sends instead of raising
SAMPLE_PIECES = 32  # a vocabulary sample takes the first rows of this many byte ranges
ENCODE_ROWS = 2048  # LM: rows encoded at a time


@dataclass(frozen=True)
class Shard:
    """Which part of the training split one DataLoader worker on one DDP rank reads."""

    rank: int = 0
    world: int = 1
    worker: int = 0
    workers: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.workers + self.worker

    @property
    def count(self) -> int:
        return self.world * self.workers

    @classmethod
    def current(cls, rank: int, world: int) -> Shard:
        """This process's shard: ``rank``/``world`` from the main process, the worker from torch."""
        info = get_worker_info()
        return cls(rank, world, info.id if info else 0, info.num_workers if info else 1)


def shuffled(items: Iterable[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """``items`` in a random order drawn from a buffer of ``size`` (0 or 1: unchanged)."""
    if size <= 1:
        yield from items
        return
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


def chunks(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    """Lists of ``n`` consecutive items (the last may be shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


# --------------------------------------------------------------------------- readers


class RowReader:
    """The rows of one source's training split, read lazily in parts (one reader per source)."""

    where: str  # the file (or hub split) that bad rows name

    def rows(self, shard: Shard, bad: BadRows) -> tuple[Iterator[Row], Any]:
        """The rows of ``shard``, and the bad-row policy that names their lines correctly."""
        raise NotImplementedError

    def sample(self, n: int, bad: BadRows) -> list[Row]:
        """About ``n`` rows spread over the split (all of them when it has fewer)."""
        pieces = max(1, min(SAMPLE_PIECES, n))
        per = -(-n // pieces)
        out: list[Row] = []
        for k in range(pieces):
            rows, _ = self.rows(Shard(k, pieces), bad)
            out += itertools.islice(rows, per)
        return out[:n]


class TextFileRows(RowReader):
    """``data=text``: one text per line (stripped; blank lines dropped with ``skip_empty``)."""

    def __init__(self, cfg: Any) -> None:
        from embedlab.data.sources import text_file

        self.path = text_file(cfg, "train")
        self.where = str(self.path)
        self.encoding = cfg.encoding
        self.skip_empty = cfg.skip_empty

    def rows(self, shard: Shard, bad: BadRows) -> tuple[Iterator[Row], Any]:
        span = Span.part(self.path, shard.index, shard.count)
        bad = SpanBadRows(bad, self.path, span)
        lines = read_text(self.path, self.encoding, bad, self.skip_empty, span)
        return (Row(r.line, r.text.strip(), None) for r in lines), bad


class FileRows(RowReader):
    """``data=files``: TSV, JSONL, fastText, plain text (and CSV without quoting), one row per line."""

    def __init__(self, cfg: Any) -> None:
        from embedlab.data.files import detect_format
        from embedlab.data.sources import resolve_file

        self.cfg = cfg
        self.path = resolve_file(cfg, "train")
        self.where = str(self.path)
        fmt = detect_format(self.path, cfg.format)
        if fmt == "csv" and cfg.quoting is not False:  # config.validate catches known extensions
            raise DataError(
                "data.quoting: data.streaming=true reads CSV one record per line; set "
                "data.quoting=false (no field holds a newline) or use tsv/jsonl",
                str(self.path),
            )
        self.header = read_header(self.path, cfg, BadRows(cfg.on_bad_rows))

    def rows(self, shard: Shard, bad: BadRows) -> tuple[Iterator[Row], Any]:
        span = Span.part(self.path, shard.index, shard.count)
        bad = SpanBadRows(bad, self.path, span)
        return iter_rows(self.path, self.cfg, bad, span, self.header), bad


class HubRows(RowReader):
    """``data=hub`` with ``streaming``: the train split as a ``datasets.IterableDataset``."""

    def __init__(self, cfg: Any) -> None:
        from embedlab.data.hub import check_columns, class_names, open_dataset, split_mapping

        self.cfg = cfg
        dsd = open_dataset(cfg)
        available = list(dsd.keys())
        mapping = split_mapping(cfg, available)
        for ours in ("val", "test"):
            if mapping.get(ours) is not None and mapping[ours] not in available:
                raise DataError(
                    f"hub dataset {cfg.name}: no split {mapping[ours]!r} (data.splits.{ours}); "
                    f"it has {available} (a streamed train split is not carved)"
                )
        self.split = dsd[mapping["train"]]
        if cfg.max_examples is not None:
            self.split = self.split.take(cfg.max_examples)
        self.where = f"{cfg.name}[{mapping['train']}]"
        check_columns(self.split, cfg, self.where)
        self.names = (
            list(cfg.label_names)
            if cfg.label_names
            else class_names(self.split, cfg.label_column)
            if cfg.label_column is not None
            else None
        )

    def rows(self, shard: Shard, bad: BadRows) -> tuple[Iterator[Row], Any]:
        from datasets.distributed import split_dataset_by_node

        from embedlab.data.hub import example_rows

        # ranks here; inside a DataLoader worker datasets divides the rank's part over workers
        part = split_dataset_by_node(self.split, rank=shard.rank, world_size=shard.world)
        where = self.where if shard.world == 1 else f"{self.where} (rank {shard.rank}'s part)"
        return example_rows(part, self.cfg, self.names, where, bad), bad

    def sample(self, n: int, bad: BadRows) -> list[Row]:
        from embedlab.data.hub import example_rows

        return list(
            itertools.islice(example_rows(self.split, self.cfg, self.names, self.where, bad), n)
        )


STREAM_READERS: dict[str, Callable[[Any], RowReader]] = {
    "text": TextFileRows,
    "files": FileRows,
    "hub": HubRows,
}


def open_stream(data_cfg: Any, paths_cfg: Any) -> tuple[RowReader, TextDataset]:
    """The training split's reader, and the dataset the datamodule tokenizes: its ``train``
    is the vocabulary sample, its val and test are read whole (by the source's own loader)."""
    from embedlab.data.sources import DATA_SOURCES

    source = data_cfg.source
    if source not in STREAM_READERS:
        raise DataError(
            f"data.streaming: data.source={source!r} cannot stream; use text, files or hub"
        )
    reader = STREAM_READERS[source](data_cfg)
    bad = BadRows(data_cfg.on_bad_rows)
    sample = reader.sample(data_cfg.vocab_sample, bad)
    bad.report()
    if not sample:
        raise DataError("data.train: no usable rows in the training split", reader.where)
    labelled = all(r.label is not None for r in sample)
    names: list[str] | None = None
    labels = None
    if labelled:
        given = list(data_cfg.label_names) if data_cfg.get("label_names") else None
        encoder = LabelEncoder.fit(
            [r.label for r in sample], given or getattr(reader, "names", None), reader.where
        )
        names = encoder.names
        # a sampled row with a label outside data.label_names is left out here; the stream
        # reports it (file:line) when it reaches it
        ids = [encoder.lookup(r.label) for r in sample]
        keep = [i for i, x in enumerate(ids) if x is not None]
        sample = [sample[i] for i in keep]
        labels = np.asarray([ids[i] for i in keep], dtype=np.int64)
    evals = DATA_SOURCES.get(source)(data_cfg, paths_cfg, only=("val", "test"), names=names)
    splits = {"train": TextSplit([r.text for r in sample], labels), **evals.splits}
    info = {
        **evals.info,
        "name": evals.info.get("name") or reader.where,
        "streaming": True,
        "train": reader.where,
        "vocab_sample": len(sample),
    }
    if "test" not in splits:
        info["no_test_split"] = True
    return reader, TextDataset(splits=splits, label_names=names or evals.label_names, info=info)


# --------------------------------------------------------------------------- batches


class StreamBatches(IterableDataset):
    """Finished training batches read, tokenized and batched inside the DataLoader workers.

    ``layout`` is ``bag`` or ``padded`` (classification, as the in-memory batches) or ``lm``
    (``{"ids", "targets"}`` windows of ``block_size``). ``epoch``, ``rank`` and ``world``
    are set by :class:`StreamLoader` in the main process before each epoch's workers start.
    """

    def __init__(
        self,
        reader: RowReader,
        tokenizer: Any,
        data_cfg: Any,
        layout: str,
        seed: int,
        pad_id: int,
        eos_id: int | None = None,
        label_names: list[str] | None = None,
        ngrams: Any = None,
    ) -> None:
        if layout not in ("bag", "padded", "lm"):
            raise ValueError(f"layout must be bag, padded or lm, got {layout!r}")
        self.reader = reader
        self.tokenizer_json = tokenizer.to_str()  # pickled to the workers as text
        self.layout = layout
        self.seed = seed
        self.pad_id, self.eos_id = pad_id, eos_id
        self.label_names = label_names
        self.ngrams = ngrams
        self.batch_size = int(data_cfg.batch_size)
        self.max_len = data_cfg.max_len
        self.block_size = int(data_cfg.get("block_size") or 0)
        self.shuffle_buffer = int(data_cfg.shuffle_buffer)
        self.on_bad_rows = str(data_cfg.on_bad_rows)
        self.epoch, self.rank, self.world = 0, None, None

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        try:
            yield from self._batches()
        except DataError as exc:  # a worker's exception would reach the user as a traceback
            if get_worker_info() is None:
                raise
            yield {STREAM_ERROR: str(exc)}

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        from tokenizers import Tokenizer

        world, rank = (self.world, self.rank) if self.world else world_and_rank()
        shard = Shard.current(rank, world)
        tok = Tokenizer.from_str(self.tokenizer_json)
        rows, bad = self.reader.rows(shard, BadRows(self.on_bad_rows))
        rng = random.Random(f"{self.seed}:{self.epoch}:{shard.index}")
        if self.layout == "lm":
            yield from self._windows(rows, tok, rng)
        else:
            yield from self._classified(rows, tok, rng, bad)
        bad.report()  # this worker's skipped rows (data.on_bad_rows=skip)

    # ------------------------------------------------------------------ classification
    def _classified(
        self, rows: Iterator[Row], tok: Any, rng: random.Random, bad: Any
    ) -> Iterator[dict[str, torch.Tensor]]:
        from embedlab.data.tokenizer import encode
        from embedlab.data.types import EncodedSplit

        encoder = LabelEncoder(self.label_names or [])

        def labelled() -> Iterator[tuple[str, int]]:
            for row in rows:
                idx = encoder.lookup(row.label) if row.label is not None else None
                if idx is None:
                    bad(
                        "unknown label",
                        f"{row.label!r} is not among the labels of the vocabulary sample "
                        f"{encoder.names[:20]} (set data.label_names=[...] to name them all)",
                        self.reader.where,
                        row.line,
                    )
                    continue
                yield row.text, idx

        for chunk in chunks(shuffled(labelled(), self.shuffle_buffer, rng), self.batch_size):
            texts, labels = zip(*chunk, strict=True)
            enc: EncodedSplit = encode(tok, texts, np.asarray(labels), self.max_len)
            if self.ngrams is not None:
                enc = self.ngrams.transform(enc)
            dataset = BagBatches(enc) if self.layout == "bag" else PaddedBatches(enc, self.pad_id)
            yield dataset.__getitems__(range(len(enc)))

    # ------------------------------------------------------------------ language modelling
    def _blocks(self, rows: Iterator[Row], tok: Any) -> Iterator[tuple[torch.Tensor, int]]:
        """(window of ``block_size + 1`` tokens, its real length) over the shard's stream."""
        from embedlab.data.lm import with_specials
        from embedlab.data.tokenizer import encode

        size = self.block_size
        carry = torch.zeros(0, dtype=torch.int64)
        for chunk in chunks(rows, ENCODE_ROWS):
            enc = with_specials(
                encode(tok, [r.text for r in chunk], None, self.max_len), None, self.eos_id
            )
            carry = torch.cat([carry, enc.ids])
            n = (len(carry) - 1) // size
            if n:
                windows = carry[: n * size + 1].unfold(0, size + 1, size)  # (n, T+1)
                for window in windows:
                    yield window.clone(), size + 1  # its own storage: the buffer holds few
                carry = carry[n * size :]  # the last target is the next window's first input
        if len(carry) > 1:
            last = torch.full((size + 1,), self.pad_id, dtype=torch.int64)
            last[: len(carry)] = carry
            yield last, len(carry)

    def _windows(
        self, rows: Iterator[Row], tok: Any, rng: random.Random
    ) -> Iterator[dict[str, torch.Tensor]]:
        from embedlab.data.lm import IGNORE

        blocks = shuffled(self._blocks(rows, tok), self.shuffle_buffer, rng)
        for chunk in chunks(blocks, self.batch_size):
            windows = torch.stack([w for w, _ in chunk])  # (B, T+1)
            real = torch.tensor([n for _, n in chunk])  # (B,)
            targets = windows[:, 1:].clone()  # (B, T)
            targets[torch.arange(self.block_size)[None, :] >= (real - 1)[:, None]] = IGNORE
            yield {"ids": windows[:, :-1], "targets": targets}


def _min_over_ranks(value: int) -> int:
    """The minimum of ``value`` over the DDP ranks (one all-reduce of one number)."""
    import torch.distributed as dist

    device = "cpu"
    if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
        device = f"cuda:{torch.cuda.current_device()}"
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


class StreamLoader(DataLoader):
    """The training DataLoader of a streamed split: whole batches from :class:`StreamBatches`.

    Before each epoch it hands the dataset the epoch (``epoch()``) and the DDP rank and
    world size (from ``torch.distributed`` when initialised). A worker's data error is
    raised here as a one-line :class:`DataError`. Workers are not persistent, so each
    epoch's workers get the new epoch.

    Under DDP every rank must take the same number of batches (else the ranks that still
    have data wait forever in the gradient all-reduce for one that has stopped). Before
    handing out each batch, the ranks take the minimum of "I have one" (1), "my shard is
    done" (0) and "my data failed" (-1), one all-reduce of one number per batch, in the main
    process: all ranks end the epoch at the first batch that some rank does not have (the
    other ranks' remaining batches of that epoch, at most the shard imbalance, are left
    out), and all stop when one rank's data fails. Lightning sees an ordinary epoch end, so
    validation and checkpoints follow as usual.
    """

    def __init__(self, dataset: StreamBatches, num_workers: int, epoch: Callable[[], int]) -> None:
        super().__init__(
            dataset, batch_size=None, collate_fn=identity_collate, num_workers=num_workers
        )
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:  # type: ignore[override]
        world, rank = world_and_rank()
        dataset: StreamBatches = self.dataset  # type: ignore[assignment]
        dataset.epoch, dataset.rank, dataset.world = self.epoch(), rank, world
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches, None)
            except DataError as exc:  # this rank's shard, read in this process
                batch = {STREAM_ERROR: str(exc)}
            state = 0 if batch is None else -1 if STREAM_ERROR in batch else 1
            if world > 1:
                agreed = _min_over_ranks(state)
                if agreed == -1 and state != -1:
                    raise DataError(
                        f"the training data of another DDP rank failed (this is rank {rank})"
                    )
                state = min(state, agreed)
            if state == -1:
                raise DataError(batch[STREAM_ERROR])
            if state == 0:
                return
            yield batch
