"""TensorBoard views of an embedding table: projector, drift, histograms (pure functions).

The callbacks in :mod:`embedlab.callbacks.embeddings` decide *when*; these decide *what*.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.tensorboard import SummaryWriter


def top_words(
    counts: torch.Tensor, vocab: list[str], n: int, skip: set[str] | None = None
) -> torch.Tensor:
    """Ids of the ``n`` most frequent words with a count > 0 (ties: lower id first), minus ``skip``."""
    counts = counts[: len(vocab)].to(torch.int64).clone()
    for i, word in enumerate(vocab):
        if skip and word in skip:
            counts[i] = 0
    order = torch.argsort(-counts, stable=True)
    order = order[counts[order] > 0]
    return order[:n]


def _clean(word: str) -> str:
    return word.replace("\t", " ").replace("\n", " ") or "<empty>"


def log_projector(
    writer: SummaryWriter,
    weight: torch.Tensor,
    ids: torch.Tensor,
    vocab: list[str],
    counts: torch.Tensor,
    tag: str,
    step: int,
) -> None:
    """Write rows ``ids`` of ``weight`` for the PROJECTOR with metadata columns word, frequency.

    Lands in ``<log_dir>/<step:05d>/<tag>/`` plus an entry in ``<log_dir>/projector_config.pbtxt``.
    """
    rows = weight.detach().float().cpu()[ids]  # (N, C)
    meta = [[_clean(vocab[i]), str(int(counts[i]))] for i in ids.tolist()]
    writer.add_embedding(
        rows, metadata=meta, metadata_header=["word", "frequency"], tag=tag, global_step=step
    )
    writer.flush()


@dataclass
class Drift:
    """Per-word movement of the table between two snapshots (only rows both non-zero)."""

    ids: torch.Tensor  # (N,) word ids that were compared
    cosine: torch.Tensor  # (N,) 1 - cos(initial, final)
    l2: torch.Tensor  # (N,) ||final - initial||


class SpilledTable:
    """A float32 copy of a table in an anonymous temporary file, read back rows on demand.

    The drift view needs the initial table only at the end of training; for the 830k x 100
    table of the 1M-text benchmark an in-memory copy was 332 MB of the run's peak RSS. Reads
    go through ``readinto`` (no memory map, whose pages would count as resident).
    """

    def __init__(self, table: torch.Tensor) -> None:
        import tempfile

        data = table.detach().float().cpu().contiguous()
        self.shape = data.shape
        self._row_bytes = data[0].numel() * 4 if len(data) else 4
        self._file = tempfile.TemporaryFile(prefix="embedlab-drift-")  # noqa: SIM115 (closed by close())
        self._file.write(data.numpy().data)  # the array's own buffer: tobytes() copied 332 MB

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` (sorted ascending) as a (len(rows), ...) float32 tensor."""
        if rows.numel() == 0:
            return torch.zeros(0, *self.shape[1:])
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        block = torch.empty(hi - lo, *self.shape[1:])
        self._file.seek(lo * self._row_bytes)
        self._file.readinto(block.numpy().data.cast("B"))
        return block[rows - lo]

    def close(self) -> None:
        self._file.close()


def embedding_drift(
    initial: torch.Tensor | SpilledTable,
    final: torch.Tensor,
    ids: torch.Tensor,
    chunk: int = 8192,
) -> Drift:
    """Cosine and L2 distance of each row in ``ids`` from its initial vector.

    Rows that are all zeros in either snapshot (padding, a ``zeros`` init) have no direction
    and are left out. Works through ``chunk`` rows at a time: the whole-table version held
    five copies of the rows compared (1.3 GB for an 830k x 100 table). ``ids`` ascending.
    """
    n = ids.numel()
    # Results go into tensors allocated once, and chunks stay small: per-chunk outputs kept in
    # lists pinned the heap between the temporaries, and 26 MB temporaries (65,536 rows) were
    # not reused; an 830k x 100 table's drift grew RSS by 364 MB, now by 50 MB.
    keep, cosine, l2 = torch.empty(n, dtype=torch.bool), torch.empty(n), torch.empty(n)
    for start in range(0, n, chunk):
        part = ids[start : start + chunk]
        rows = slice(start, start + part.numel())
        a = initial[part].detach().float().cpu()  # (n, C)
        b = final.detach()[part].float().cpu()  # (n, C)
        keep[rows] = (a.norm(dim=1) > 0) & (b.norm(dim=1) > 0)
        cosine[rows] = torch.nn.functional.cosine_similarity(a, b, dim=1)
        l2[rows] = (b - a).norm(dim=1)
    return Drift(ids=ids[keep], cosine=(1.0 - cosine[keep]).clamp_min(0.0), l2=l2[keep])


def log_drift(
    writer: SummaryWriter,
    drift: Drift,
    vocab: list[str],
    counts: torch.Tensor,
    top_k: int,
    step: int,
    prefix: str = "embedding",
) -> None:
    """HISTOGRAM ``<prefix>/drift_cosine``, scalar ``<prefix>/drift_cosine_mean`` and a TEXT
    table ``<prefix>/most_moved`` of the ``top_k`` words that moved most (``prefix``: the
    table's name, e.g. ``embedding/static`` for one channel of ``embedding.channels=2``)."""
    if drift.ids.numel() == 0:
        return
    writer.add_histogram(f"{prefix}/drift_cosine", drift.cosine, step)
    writer.add_scalar(f"{prefix}/drift_cosine_mean", float(drift.cosine.mean()), step)
    if top_k > 0:
        order = torch.argsort(drift.cosine, descending=True)[:top_k]
        lines = ["| word | frequency | cosine distance | L2 distance |", "|---|---:|---:|---:|"]
        for j in order.tolist():
            i = int(drift.ids[j])
            word = _clean(vocab[i]).replace("|", "\\|")
            lines.append(
                f"| {word} | {int(counts[i])} | {float(drift.cosine[j]):.4f} | {float(drift.l2[j]):.4f} |"
            )
        writer.add_text(f"{prefix}/most_moved", "\n".join(lines), step)
    writer.flush()


def row_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of every row: (V, C) -> (V,)."""
    return weight.detach().float().norm(dim=1)


def grad_row_norms(grad: torch.Tensor) -> torch.Tensor:
    """L2 norms of the gradient rows that are non-zero (dense or sparse gradients)."""
    if grad.is_sparse and grad.sparse_dim() != 1:
        grad = grad.to_dense()
    if grad.is_sparse:  # row-sparse, as nn.Embedding(sparse=True) makes: values (nnz, C)
        grad = grad.coalesce()
        norms = grad.values().detach().float().norm(dim=1)
    else:
        norms = grad.detach().float().norm(dim=1)
    return norms[norms > 0]
