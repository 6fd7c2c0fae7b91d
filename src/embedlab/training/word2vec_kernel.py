"""word2vec's training loop as one compiled kernel: sampling and SGD updates, in place.

One call trains on a chunk of the corpus (whole sentences), like one job of word2vec.c or
gensim: per sentence, frequent-word subsampling (and removal of words under ``min_count``,
whose keep probability is 0), the dynamic window, ``negative`` draws from the unigram
distribution (an alias table), and per example the plain SGD update of the output row of
the target and the negatives and of the input row(s), applied at once (online SGD, as
word2vec does). Skip-gram: the input is the context word, the target the centre word (as in
gensim); CBOW: the input is the bag of context words (mean or sum), and every context word
receives the bag's whole error (word2vec's ``cbow_mean``). A negative equal to the target is
skipped. The loss is word2vec's, ``-log s(u.v_target) - sum_k log s(-u.v_neg_k)``.

Why a kernel (measured, README "Word vectors"): the tensor path it replaced (gather the
(examples x 6 x 100) rows, bmm, autograd backward, sparse SGD scatter) materialised each row
several times per batch, 5.5 s of a 9.6 s PTB epoch, and trained at 0.2x gensim's words/s;
this loop keeps one example's rows in cache and updates the two tables directly (numpy views
of the torch parameters): 1.1 s for that epoch, 1.5x gensim's words/s on one thread.

Threads: the sentences of a chunk are shared among :func:`set_threads` Python threads, each
running the ``nogil`` kernel on its share (numba's ``prange`` with its OpenMP layer beside
torch's ran the epoch 2.8x slower), and they update the tables without locks (hogwild, like word2vec.c and gensim): with more than one thread a run is not
bit-reproducible; with one thread and a fixed seed it is. Every random draw comes from a
splitmix64 stream seeded by (chunk seed, sentence index), so the draws do not depend on the
number of threads. ``mode=RECORD`` runs the same loop without updates and returns the pairs
and negatives it would train (for tests of the sampling).
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

TRAIN, LOSS, RECORD = 0, 1, 2  # update, loss only (val/test), the draws only
# TRAIN scores the loss of every LOSS_EVERY-th sentence of a chunk only: the log of every
# score cost 25% of the kernel's time, and the training loss is only logged
LOSS_EVERY = 8

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(inline="always")
def _mix(z):  # splitmix64's output function
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _below(z, n):  # an integer in [0, n) from the high 32 bits of z (n < 2**32)
    return np.int64(((z >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@njit(inline="always")
def _unit(z):  # a float in [0, 1) from the low 24 bits of z
    return np.float32(z & np.uint64(0xFFFFFF)) * np.float32(1.0 / 16777216.0)


@njit(inline="always")
def _score(f, label, loss, scored):
    """(g, loss): g = label - sigmoid(f); if ``scored``, -log sigmoid(+-f) added to ``loss``."""
    x = f if label else -f
    e = np.exp(-abs(x))
    if x >= 0:
        if scored:
            loss += np.log1p(e)
        s = e / (np.float32(1.0) + e)  # sigmoid(-x)
    else:
        if scored:
            loss += -x + np.log1p(e)
        s = np.float32(1.0) / (np.float32(1.0) + e)
    return (s if label else -s), loss


@njit(inline="always")
def _example(
    src, r, target, state, loss, scored, syn1, lr_out, work, sampler, mode, negs, slot_out
):
    """One example: input row ``src[r]`` against ``target`` and the negatives it draws.

    Updates the output rows (TRAIN) and leaves the input row's error in ``work``; returns the
    stream's state and the loss so far. RECORD writes the draws to ``negs[slot_out]`` only.
    """
    neg_prob, neg_alias, negative = sampler
    dim = src.shape[1]
    vocab = np.uint64(len(neg_prob))
    for d in range(dim):
        work[d] = 0
    for k in range(negative + 1):
        if k == 0:
            t = target
        else:
            state += _GOLDEN
            z = _mix(state)
            slot = _below(z, vocab)
            t = slot if _unit(z) < neg_prob[slot] else np.int64(neg_alias[slot])
            if mode == RECORD:
                negs[slot_out, k - 1] = t
            if t == target:
                continue
        if mode == RECORD:
            continue
        f = np.float32(0.0)
        for d in range(dim):
            f += src[r, d] * syn1[t, d]
        g, loss = _score(f, k == 0, loss, scored)
        if mode == TRAIN:
            for d in range(dim):
                work[d] += g * syn1[t, d]
                syn1[t, d] += lr_out * g * src[r, d]
    return state, loss


@njit(nogil=True, fastmath=True, cache=True)
def _chunk(
    ids,  # (N,) int32 word ids of the chunk's sentences
    bounds,  # (S+1,) int64 sentence starts in ids
    s_lo,  # this call trains sentences s_lo..s_hi-1
    s_hi,
    seed,  # uint64
    keep,  # (V,) float32 probability that an occurrence survives (0: removed)
    neg_prob,  # (V,) float32 alias table of the negatives' distribution
    neg_alias,  # (V,) int32
    syn0,  # (V, D) float32 input table (the embedding under study)
    syn1,  # (V, D) float32 output table (syn1neg)
    lr_in,  # float32 step of the input rows (0: frozen)
    lr_out,  # float32 step of the output rows
    window,
    negative,
    cbow,
    cbow_mean,
    mode,
    rec_pairs,  # RECORD: (N * 2 * window, 2) int64 (centre, context) positions, else (0, 2)
    rec_negs,  # RECORD: (N * 2 * window, negative) int64, else (0, negative)
    rec_counts,  # RECORD: (S, 2) int64 pairs and examples per sentence, else (0, 2)
):
    dim = syn0.shape[1]
    sampler = (neg_prob, neg_alias, negative)
    total_loss = 0.0
    total_examples = 0
    kept = np.empty(len(ids), np.int64)  # positions surviving subsampling, per sentence region
    for s in range(s_lo, s_hi):
        state = _mix(seed ^ (np.uint64(s) * _GOLDEN))
        lo = bounds[s]
        room = lo * 2 * window  # RECORD: this sentence's rows of rec_pairs / rec_negs
        n = 0
        for i in range(lo, bounds[s + 1]):
            p = keep[ids[i]]
            if p < np.float32(1.0):
                if p <= np.float32(0.0):
                    continue
                state += _GOLDEN
                if _unit(_mix(state)) >= p:
                    continue
            kept[lo + n] = i
            n += 1
        work = np.empty(dim, np.float32)  # the input rows' error (word2vec's neu1e)
        bag = np.empty((1, dim), np.float32)  # CBOW: the context vectors' mean or sum (neu1)
        loss = np.float32(0.0)
        scored = mode == LOSS or s % LOSS_EVERY == 0  # this sentence's loss counts
        examples = 0
        n_pairs = 0
        for c in range(n):
            state += _GOLDEN
            reach = 1 + _below(_mix(state), window)
            first = max(c - reach, 0)
            last = min(c + reach + 1, n)
            target = np.int64(ids[kept[lo + c]])
            if mode == RECORD:
                for j in range(first, last):
                    if j != c:
                        rec_pairs[room + n_pairs, 0] = kept[lo + c]
                        rec_pairs[room + n_pairs, 1] = kept[lo + j]
                        n_pairs += 1
            if cbow:
                if last - first < 2:
                    continue
                for d in range(dim):
                    bag[0, d] = 0
                for j in range(first, last):
                    if j != c:
                        w = ids[kept[lo + j]]
                        for d in range(dim):
                            bag[0, d] += syn0[w, d]
                if cbow_mean:
                    scale = np.float32(1.0 / (last - first - 1))
                    for d in range(dim):
                        bag[0, d] *= scale
                state, loss = _example(
                    bag,
                    0,
                    target,
                    state,
                    loss,
                    scored,
                    syn1,
                    lr_out,
                    work,
                    sampler,
                    mode,
                    rec_negs,
                    room + examples,
                )
                examples += 1
                if mode == TRAIN and lr_in != 0:  # every context word gets the whole error
                    for j in range(first, last):
                        if j != c:
                            w = ids[kept[lo + j]]
                            for d in range(dim):
                                syn0[w, d] += lr_in * work[d]
            else:
                for j in range(first, last):
                    if j == c:
                        continue
                    w = ids[kept[lo + j]]
                    state, loss = _example(
                        syn0,
                        w,
                        target,
                        state,
                        loss,
                        scored,
                        syn1,
                        lr_out,
                        work,
                        sampler,
                        mode,
                        rec_negs,
                        room + examples,
                    )
                    examples += 1
                    if mode == TRAIN and lr_in != 0:
                        for d in range(dim):
                            syn0[w, d] += lr_in * work[d]
        if mode == RECORD:
            rec_counts[s, 0] = n_pairs
            rec_counts[s, 1] = examples
        if scored:
            total_loss += loss
            total_examples += examples
    return total_loss, total_examples


@dataclass
class Sampling:
    """What the kernel samples from: the training words' keep probabilities and negatives."""

    keep: np.ndarray  # (V,) float32: P(an occurrence survives subsampling); 0: removed
    neg_prob: np.ndarray  # (V,) float32 and
    neg_alias: np.ndarray  # (V,) int32: the alias table of counts ** ns_exponent
    window: int
    negative: int


def _as_arrays(ids: torch.Tensor | np.ndarray, bounds: torch.Tensor | np.ndarray):
    ids = np.ascontiguousarray(np.asarray(ids), dtype=np.int32)
    bounds = np.ascontiguousarray(np.asarray(bounds), dtype=np.int64)
    return ids, bounds


def _table(weight: torch.Tensor) -> np.ndarray:
    """The parameter's storage as a numpy array (shared memory: the kernel updates it in place)."""
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not weight.is_contiguous():
        raise ValueError(
            f"the word2vec kernel needs contiguous float32 CPU tables, got {weight.dtype} on {weight.device}"
        )
    return weight.detach().numpy()


def run(
    sampling: Sampling,
    syn0: torch.Tensor,
    syn1: torch.Tensor,
    ids: torch.Tensor | np.ndarray,
    bounds: torch.Tensor | np.ndarray,
    seed: int,
    lr_in: float = 0.0,
    lr_out: float = 0.0,
    mode: int = TRAIN,
    cbow: bool = False,
    cbow_mean: bool = True,
) -> tuple[float, int]:
    """Train on (``TRAIN``) or score (``LOSS``) one chunk: (summed loss, examples scored).

    ``TRAIN`` scores every :data:`LOSS_EVERY`-th sentence of the chunk only.
    ``cbow``: the bag of context words is the input (its ``mean``, else its sum). The
    sentences are shared among :func:`set_threads` threads, about the same words each.
    """
    ids, bounds = _as_arrays(ids, bounds)
    k = sampling.negative
    args = (
        np.uint64(seed),
        sampling.keep,
        sampling.neg_prob,
        sampling.neg_alias,
        _table(syn0),
        _table(syn1),
        np.float32(lr_in),
        np.float32(lr_out),
        sampling.window,
        k,
        cbow,
        cbow_mean,
        mode,
        np.empty((0, 2), np.int64),
        np.empty((0, k), np.int64),
        np.empty((0, 2), np.int64),
    )
    n_sent = len(bounds) - 1
    parts = min(_threads, n_sent)
    if parts <= 1:
        loss, examples = _chunk(ids, bounds, 0, n_sent, *args)
        return float(loss), int(examples)
    cuts = np.searchsorted(bounds, np.linspace(0, bounds[-1], parts + 1)[1:-1])
    edges = [0, *cuts.tolist(), n_sent]
    jobs = [
        _pool().submit(_chunk, ids, bounds, lo, hi, *args)
        for lo, hi in itertools.pairwise(edges)
        if hi > lo
    ]
    results = [job.result() for job in jobs]
    return float(sum(r[0] for r in results)), int(sum(r[1] for r in results))


def draws(
    sampling: Sampling,
    ids: torch.Tensor | np.ndarray,
    bounds: torch.Tensor | np.ndarray,
    seed: int,
    cbow: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`run` with ``seed`` trains on: ((P, 2) (centre, context) positions in ``ids``,
    (E, negative) negatives of each example), in training order; E = P for skip-gram, the
    number of centres with a context for CBOW."""
    ids, bounds = _as_arrays(ids, bounds)
    k, room = sampling.negative, len(ids) * 2 * sampling.window
    pairs = np.full((room, 2), -1, np.int64)
    negs = np.full((room, k), -1, np.int64)
    counts = np.zeros((len(bounds) - 1, 2), np.int64)
    vocab = len(sampling.keep)
    tables = np.zeros((vocab, 1), np.float32)
    _chunk(
        ids,
        bounds,
        0,
        len(bounds) - 1,
        np.uint64(seed),
        sampling.keep,
        sampling.neg_prob,
        sampling.neg_alias,
        tables,
        tables,
        np.float32(0.0),
        np.float32(0.0),
        sampling.window,
        k,
        cbow,
        True,
        RECORD,
        pairs,
        negs,
        counts,
    )
    starts = bounds[:-1] * 2 * sampling.window
    take_pairs = np.concatenate(
        [np.arange(a, a + n) for a, n in zip(starts, counts[:, 0], strict=True)] or [[]]
    ).astype(np.int64)
    take_ex = np.concatenate(
        [np.arange(a, a + n) for a, n in zip(starts, counts[:, 1], strict=True)] or [[]]
    ).astype(np.int64)
    return pairs[take_pairs], negs[take_ex]


_threads = 1
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None or _executor._max_workers < _threads:
        _executor = ThreadPoolExecutor(_threads, thread_name_prefix="word2vec")
    return _executor


def set_threads(n: int) -> None:
    """Run the kernel on ``n`` threads (each a share of a chunk's sentences, hogwild)."""
    global _threads
    _threads = max(1, int(n))


@njit(cache=True)
def _alias(probs):
    """Vose's alias table of ``probs`` (summing to 1): slot i keeps i with prob[i], else alias[i]."""
    n = len(probs)
    prob = np.zeros(n, np.float64)
    alias = np.arange(n).astype(np.int32)
    scaled = probs * n
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    for i in range(nl):
        prob[large[i]] = 1.0
    for i in range(ns):  # rounding leftovers: a slot whose word has a weight keeps itself
        prob[small[i]] = 1.0 if probs[small[i]] > 0 else 0.0
    return prob.astype(np.float32), alias


def alias_table(weights: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prob, alias) drawing i with probability ``weights[i] / sum(weights)`` (0: never)."""
    w = np.asarray(weights, dtype=np.float64)
    return _alias(w / w.sum())
