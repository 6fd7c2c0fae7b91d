"""Vectorised batching from CSR token arrays: no per-example Python work per batch.

``BagBatches`` yields bags for ``nn.EmbeddingBag`` (flat ids + offsets), ``SparseBagBatches``
the same from a scipy CSR bag-of-words matrix (+ its values as per-sample weights), ``PaddedBatches``
yields ``(B, T)`` ids with a padding mask for sequence models. Both implement
``__getitems__`` so a standard ``DataLoader(batch_size=..., shuffle=...)`` (which Lightning
can re-shard for DDP) hands them a whole list of indices at once.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from embedlab.data.types import EncodedSplit


def index_tensor(indices: Sequence[int]) -> torch.Tensor:
    """A sampler's indices (a list of ints, or a tensor) as an int64 tensor.

    Through numpy: ``torch.as_tensor`` reads a list of Python ints at ~40 ns each, numpy at
    ~10 (a 16,384-index group of the bag model's loader: 0.64 ms against 0.17 ms)."""
    if isinstance(indices, torch.Tensor):
        return indices.to(torch.int64)
    return torch.from_numpy(np.asarray(indices, dtype=np.int64))


def gather_bags(
    split: EncodedSplit, index: torch.Tensor, compiled: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate texts ``index`` into (ids (T,), offsets (B,), lengths (B,)).

    ``compiled``: copy the ids with the compiled ``gather_segments_i64`` where it loads (the bag
    model's loaders; 4x faster on a 8192-text group); torch's ops otherwise, or where a text
    reaches outside ``split.ids``, whose indexing then raises."""
    starts = split.offsets[index]
    lengths = split.offsets[index + 1] - starts
    bag_offsets = torch.cumsum(lengths, 0) - lengths  # where each bag starts in the batch
    total = int(lengths.sum())
    source = split.ids
    plain = source.dtype == torch.int64 and source.is_contiguous() and starts.is_contiguous()
    gather = _gather_segments() if compiled and plain else None
    if gather is not None:
        ids = torch.empty(total, dtype=torch.int64)
        args = (starts.data_ptr(), lengths.data_ptr(), source.numel(), source.data_ptr())
        if not gather(len(starts), *args, ids.data_ptr()):
            return ids, bag_offsets, lengths
    # position in the flat array = batch position - bag start in batch + text start in flat
    shift = torch.repeat_interleave(starts - bag_offsets, lengths, output_size=total)
    ids = split.ids[torch.arange(total) + shift]
    return ids, bag_offsets, lengths


@functools.cache
def _gather_segments() -> Any:
    """``gather_segments_i64`` of the compiled bag kernels, or None (torch's ops)."""
    from embedlab.training import native

    lib = native.bag_update()
    return None if lib is None else lib.gather_segments_i64


def pad_rows(
    split: EncodedSplit, index: torch.Tensor, pad_id: int, min_width: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts ``index`` right-padded with ``pad_id`` into ``(B, W)`` ids, and their lengths (B,).

    ``W`` is the longest of them (at least ``min_width``).
    """
    ids, offsets, lengths = gather_bags(split, index)
    width = max(int(lengths.max()) if len(lengths) else 0, min_width)
    rows = torch.repeat_interleave(torch.arange(len(index)), lengths, output_size=ids.numel())
    cols = torch.arange(ids.numel()) - offsets[rows]
    padded = torch.full((len(index), width), pad_id, dtype=torch.int64)
    padded[rows, cols] = ids
    return padded, lengths


class GroupedBatches(Dataset):
    """Several training batches per DataLoader item: ``data.batches_per_step`` of them.

    The loader draws ``batch_size * K`` indices at a time from the usual sampler and this
    cuts them into batches of ``batch_size``: the very batches, in the very order, that the
    loader of ``K = 1`` gives (the samplers put their one partial batch last). A task trains
    the whole list in one Lightning step (``EmbeddingTask.training_step``).
    """

    def __init__(self, dataset: Any, batch_size: int) -> None:
        self.dataset = dataset
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        b = self.batch_size
        if hasattr(self.dataset, "batches"):  # gathers all of them at once
            return self.dataset.batches(indices, b)
        return [self.dataset.__getitems__(indices[i : i + b]) for i in range(0, len(indices), b)]


class _Failure:
    """An exception raised by the background thread, to raise in the consumer's."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()  # the background iterator is exhausted


class BackgroundIterator:
    """Runs ``iterator`` one item ahead of its consumer in a daemon thread.

    The thread builds item ``n + 1`` while the consumer works on item ``n``: the bag model's
    step is one C call that releases the GIL, and the second core was idle during it. Items
    come in the iterator's order; an exception in the thread is raised in the consumer at the
    item where it happened; :meth:`close` (also on garbage collection: the thread holds no
    reference to this object) stops the thread within a tenth of a second when the consumer
    leaves early. The thread starts at the first ``next()``, where a DataLoader's own
    iterator would first read its sampler: Lightning makes the iterator before it sets the
    sampler's epoch when it resumes a run. The thread must not draw from torch's global
    generator, which it shares with the consumer (the samplers of :func:`make_loader` draw
    from their own, seeded by seed + epoch, and the datasets draw nothing).
    """

    def __init__(
        self, iterator: Iterator[Any], use_thread: Callable[[], bool] = lambda: True
    ) -> None:
        self._base = iterator
        self._use_thread = use_thread  # asked at the first next(); False: items made inline
        self._inline = False
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce,
            args=(iterator, self._queue, self._stop),
            name="embedlab-prefetch",
            daemon=True,
        )

    def __iter__(self) -> BackgroundIterator:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        if self._thread.ident is None and not self._inline:
            if self._use_thread():
                self._thread.start()
            else:
                self._inline = True
        if self._inline:
            return next(self._base)
        item = self._queue.get()
        if item is _END or isinstance(item, _Failure):
            self._done = True
            self._thread.join()
            if item is _END:
                raise StopIteration
            raise item.error
        return item

    def __len__(self) -> int:
        return len(self._base)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop the thread (it ends within 0.1 s; an item it was building is dropped)."""
        self._stop.set()
        self._done = True

    def __del__(self) -> None:
        self.close()


def _produce(items: Iterator[Any], out: queue.Queue[Any], stop: threading.Event) -> None:
    """The thread of :class:`BackgroundIterator`: ``items`` into ``out`` until ``stop``."""

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items:
            if not put(item):
                return
    except BaseException as error:  # raised again in the consumer
        put(_Failure(error))
        return
    put(_END)


class PrefetchLoader(DataLoader):
    """A ``DataLoader`` whose iterator builds the next item in a background thread
    (:class:`BackgroundIterator`; ``data.prefetch``, for ``num_workers=0``).

    The grouped training loader of the bag model: a step's 64 batches took ~12% of an epoch
    to gather (24 of 210 ms at 160k synthetic texts), serially before each step. The thread
    pays only where the training step releases the GIL for most of its time, as the fused bag
    step's one C call does: beside autograd's many small ops it contends for the GIL (the bag
    model at 160k texts, ``optimizer.fuse_train_step=false``: 410-428k -> 206-218k texts/s).
    So the task sets :attr:`background` when training starts (``EmbeddingTask.on_train_start``),
    and an epoch's iterator reads it at its first item.
    """

    background = True  # the thread's use, set by the task once it knows its step

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # an epoch of one item has nothing to overlap: the thread's start and hand-over cost
        # ~1.5 ms an epoch (MR: 4 epochs of one step, 64 -> 70 ms of training)
        items = super().__iter__()
        if len(self) <= 1:
            return items
        return BackgroundIterator(items, lambda: self.background)


def batches_per_step(loader: Any) -> float:
    """Training batches per item of ``loader`` over an epoch (1.0 unless grouped)."""
    dataset = getattr(loader, "dataset", None)
    if not isinstance(dataset, GroupedBatches) or loader.batch_size is None:
        return 1.0
    n = len(loader.sampler)
    return math.ceil(n / dataset.batch_size) / max(math.ceil(n / loader.batch_size), 1)


def identity_collate(batch: Any) -> Any:
    """The datasets below return finished batches; the DataLoader must not touch them."""
    return batch


class BagBatches(Dataset):
    """Batches ``{"ids", "offsets", "labels"}`` for bag-of-embeddings models."""

    def __init__(self, split: EncodedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = index_tensor(indices)
        ids, offsets, _ = gather_bags(self.split, index, compiled=True)
        batch = {"ids": ids, "offsets": offsets}
        if self.split.labels is not None:
            batch["labels"] = self.split.labels[index]
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def batches(self, indices: Sequence[int], batch_size: int) -> list[dict[str, torch.Tensor]]:
        """``__getitems__`` of each ``batch_size`` slice of ``indices``, from one gather of
        them all (the batches are views of it): per batch one op instead of eight, 32 batches
        of MPQA in 1.02 ms instead of 2.64, of MR in 2.32 instead of 4.58 (2 threads)."""
        index = index_tensor(indices)
        ids, offsets, _ = gather_bags(self.split, index, compiled=True)
        labels = None if self.split.labels is None else self.split.labels[index]
        starts = range(0, len(index), batch_size)
        bounds = offsets[::batch_size].tolist() + [ids.numel()]
        out = []
        for first, begin, end in zip(starts, bounds, bounds[1:], strict=False):
            batch = {"ids": ids[begin:end], "offsets": offsets[first : first + batch_size] - begin}
            if labels is not None:
                batch["labels"] = labels[first : first + batch_size]
            out.append(batch)
        return out


class PaddedBatches(Dataset):
    """Batches ``{"ids" (B, T), "mask" (B, T) true at real tokens, "labels"}`` padded with ``pad_id``."""

    def __init__(self, split: EncodedSplit, pad_id: int) -> None:
        self.split = split
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        index = index_tensor(indices)
        padded, lengths = pad_rows(self.split, index, self.pad_id)  # (B, W), (B,)
        mask = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
        batch = {"ids": padded, "mask": mask}
        if self.split.labels is not None:
            batch["labels"] = self.split.labels[index]
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


def csr_to_bags(matrix: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A scipy CSR matrix (rows = texts, columns = vocabulary ids) as EmbeddingBag inputs.

    Returns ``(ids (nnz,), offsets (B,), per_sample_weights (nnz,))``: row ``i``'s column
    indices are bag ``i`` and its stored values (counts, TF-IDF, ...) the per-sample weights.
    ``EmbeddingBag(mode="sum")`` over them equals ``matrix @ weight`` (the sparse bag-of-words
    product), i.e. a bias-free ``nn.Linear`` with ``linear.weight = table.T`` on the dense rows.
    """
    import scipy.sparse as sp

    if not sp.issparse(matrix):
        raise TypeError(f"expected a scipy sparse matrix, got {type(matrix).__name__}")
    csr = matrix.tocsr()
    ids = torch.from_numpy(csr.indices.astype("int64", copy=False))
    offsets = torch.from_numpy(csr.indptr[:-1].astype("int64", copy=False))
    weights = torch.from_numpy(csr.data.astype("float32", copy=False))
    return ids, offsets, weights


class SparseBagBatches(Dataset):
    """Batches ``{"ids", "offsets", "per_sample_weights", "labels"}`` from a sparse bag-of-words matrix.

    The data path for a CSR matrix ``(N, V)`` (counts or TF-IDF, e.g. from scikit-learn's
    vectorizers): row slices become bags whose stored values weight each id. Pair it with
    ``embedding.mode=sum`` (weights need sum); ``weighted=False`` drops the values (binary bags,
    any mode).
    """

    def __init__(self, matrix: Any, labels: Any = None, weighted: bool = True) -> None:
        import scipy.sparse as sp

        self.matrix = sp.csr_matrix(matrix)
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.int64)
        self.weighted = weighted

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        ids, offsets, weights = csr_to_bags(self.matrix[list(indices)])
        batch = {"ids": ids, "offsets": offsets}
        if self.weighted:
            batch["per_sample_weights"] = weights
        if self.labels is not None:
            batch["labels"] = self.labels[index_tensor(indices)]
        return batch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])


class LengthBucketSampler(DistributedSampler):
    """Training order that keeps padding small: sort by length inside large shuffled chunks.

    Each epoch (seeded by ``seed + epoch``): shuffle all indices, cut them into chunks of
    ``chunk_batches * batch_size``, sort each chunk by length, cut it into batches, shuffle
    the batches (the one partial batch goes last), flatten. A ``DataLoader`` with the same
    ``batch_size`` and ``shuffle=False`` then sees length-homogeneous batches in random order.

    It subclasses ``DistributedSampler`` so Lightning leaves it alone under DDP (instead of
    wrapping it in a sampler that would reshuffle the order): with several processes, rank
    ``r`` takes batches ``r, r + W, ...`` of the same global order (the partial batch and any
    remainder are dropped so every rank runs the same number of steps).
    """

    def __init__(
        self,
        lengths: torch.Tensor,  # (N,) tokens per example
        batch_size: int,
        chunk_batches: int = 50,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        import torch.distributed as dist

        if num_replicas is None:
            num_replicas = (
                dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            )
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        # the parent's bookkeeping (epoch, rank, num_replicas); our own __iter__/__len__
        super().__init__(
            range(len(lengths)), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.chunk_batches = max(chunk_batches, 1)

    def _batches(self) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        perm = torch.randperm(n, generator=g)
        chunk = self.chunk_batches * self.batch_size
        full: list[torch.Tensor] = []
        partial: list[torch.Tensor] = []
        for start in range(0, n, chunk):
            idx = perm[start : start + chunk]
            idx = idx[torch.argsort(self.lengths[idx], stable=True)]
            for b in idx.split(self.batch_size):
                (full if len(b) == self.batch_size else partial).append(b)
        order = torch.randperm(len(full), generator=g).tolist()
        batches = [full[i] for i in order]
        if self.num_replicas == 1:
            return batches + partial  # at most one partial batch, and it is last
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self):  # type: ignore[override]
        batches = self._batches()
        return iter(torch.cat(batches).tolist() if batches else [])

    def __len__(self) -> int:
        n = len(self.lengths)
        if self.num_replicas == 1:
            return n
        return (n // self.batch_size) // self.num_replicas * self.batch_size


class ShardSampler(DistributedSampler):
    """Evaluation order under DDP: rank ``r`` of ``W`` takes examples ``r, r + W, ...``, in order.

    Unlike Lightning's default ``DistributedSampler`` it pads nothing, so every example of a
    val/test split is scored exactly once (ranks may differ by one example; the metrics sum
    counts over ranks). A ``DistributedSampler`` subclass, so Lightning leaves it in place.
    """

    def __init__(self, size: int, num_replicas: int, rank: int) -> None:
        super().__init__(range(size), num_replicas=num_replicas, rank=rank, shuffle=False)
        self.size = size

    def __iter__(self):  # type: ignore[override]
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


def world_and_rank() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, else (1, 0)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def make_loader(
    dataset: Dataset, data_cfg: Any, train: bool, seed: int, lengths: torch.Tensor | None = None
) -> DataLoader:
    """The DataLoader every datamodule uses for one split.

    Batches come whole from ``dataset.__getitems__``. Training batches are shuffled by a
    ``DistributedSampler`` seeded with ``seed`` + epoch (one process: no padding), or, when
    ``lengths`` (tokens per example) is given and ``data.length_buckets > 0``, drawn by a
    :class:`LengthBucketSampler` so padded batches hold examples of similar length: either
    way the order is a function of (seed, epoch), so a resumed run sees the same batches.
    Evaluation splits go in order, sharded under DDP by :class:`ShardSampler`. Training
    items are lists of ``data.batches_per_step`` batches when that is above 1
    (:class:`GroupedBatches`), built one step ahead in a thread where ``data.prefetch`` is
    true and there are no loader workers (:class:`PrefetchLoader`).
    """
    batch_size = data_cfg.batch_size if train else data_cfg.eval_batch_size
    group = (data_cfg.get("batches_per_step") or 1) if train else 1
    if batch_size is None:  # null means "the model's default", filled by config.validate
        raise ValueError(
            "data.batch_size is null: pass the config through embedlab.config.validate"
        )
    world, rank = world_and_rank()
    if train and lengths is not None and data_cfg.length_buckets > 0:
        sampler = LengthBucketSampler(lengths, batch_size, data_cfg.length_buckets, seed=seed)
    elif train:  # order = f(seed, epoch): a resumed run sees the batches the first run would
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed
        )
    else:
        sampler = ShardSampler(len(dataset), world, rank)
    if group > 1:
        dataset = GroupedBatches(dataset, batch_size)
    # the next step's batches built while this one trains (the datasets and samplers here
    # draw nothing from torch's global generator: the same batches, the same run)
    prefetch = group > 1 and data_cfg.num_workers == 0 and data_cfg.get("prefetch")
    return (PrefetchLoader if prefetch else DataLoader)(
        dataset,
        batch_size=batch_size * group,
        shuffle=False,  # the sampler orders every split (Lightning calls its set_epoch)
        sampler=sampler,
        collate_fn=identity_collate,
        num_workers=data_cfg.num_workers,
        persistent_workers=data_cfg.num_workers > 0,
    )
