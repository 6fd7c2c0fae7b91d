"""task=word2vec: the kernel's sampling and updates against Python references, training, export."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from embedlab.config import validate
from embedlab.data.types import EncodedSplit
from embedlab.data.word2vec import Word2VecBatches, keep_probabilities, word2vec_sampling
from embedlab.embeddings import intrinsic
from embedlab.tasks import TASKS
from embedlab.train import train
from embedlab.training import word2vec_kernel as kernel

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = [
    "callbacks.projector.enabled=false",
    "callbacks.drift.enabled=false",
    "callbacks.embedding_histograms.enabled=false",
    "logger.tensorboard=false",
]


# --------------------------------------------------------------------------- sampling


def test_keep_probabilities_match_word2vecs_formula():
    counts = torch.tensor([0, 1, 10, 1000, 100000])
    t = 1e-3
    total = float(counts.sum())
    p = keep_probabilities(counts, t)
    for c, got in zip(counts.tolist(), p.tolist(), strict=True):
        if c == 0:
            continue
        ref = (math.sqrt(c / (t * total)) + 1) * (t * total) / c  # word2vec.c / gensim
        assert got == pytest.approx(min(ref, 1.0), rel=1e-6)
    assert p[-1] < 0.2 < p[2] == 1.0  # the frequent word is cut, the rare ones kept
    assert torch.equal(keep_probabilities(counts, 0.0), torch.ones(5))


def test_alias_table_holds_the_unigram_distribution_to_the_075():
    counts = torch.tensor([0, 1, 5, 20, 100, 1000, 3])
    s = word2vec_sampling(counts, 0.0, window=5, negative=5, exponent=0.75)
    n = len(counts)
    # slot i yields i with prob[i] and alias[i] otherwise; each slot has probability 1/n
    got = s.neg_prob.astype(np.float64) / n
    np.add.at(got, s.neg_alias, (1 - s.neg_prob.astype(np.float64)) / n)
    ref = np.array([c**0.75 for c in counts.tolist()])
    np.testing.assert_allclose(got, ref / ref.sum(), atol=1e-7)
    assert got[0] == 0  # a dropped word is never a negative


M64, GOLDEN = 2**64 - 1, 0x9E3779B97F4A7C15


class ReferenceStream:
    """The kernel's random stream in Python ints: splitmix64 seeded by (chunk seed, sentence)."""

    def __init__(self, seed: int, sentence: int) -> None:
        self.state = self.mix(seed ^ ((sentence * GOLDEN) & M64))

    @staticmethod
    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & M64
        return self.mix(self.state)

    @staticmethod
    def below(z: int, n: int) -> int:
        return ((z >> 32) * n) >> 32

    @staticmethod
    def unit(z: int) -> float:
        return (z & 0xFFFFFF) / 16777216


def reference_draws(
    ids: list[int], bounds: list[int], seed: int, s: kernel.Sampling, cbow: bool
) -> tuple[list[tuple[int, int]], list[list[int]]]:
    """word2vec's sampling as plain Python loops: subsample each sentence, draw each centre's
    window b in 1..window, pair it with the kept words at most b away, draw the negatives."""
    pairs, negatives = [], []
    for sent in range(len(bounds) - 1):
        rng = ReferenceStream(seed, sent)
        kept = []
        for i in range(bounds[sent], bounds[sent + 1]):
            p = float(s.keep[ids[i]])
            if p >= 1 or (p > 0 and rng.unit(rng.next()) < p):
                kept.append(i)
        for c in range(len(kept)):
            b = 1 + rng.below(rng.next(), s.window)
            context = [kept[j] for j in range(c - b, c + b + 1) if j != c and 0 <= j < len(kept)]
            pairs += [(kept[c], j) for j in context]
            for _ in range(1 if cbow and context else 0 if cbow else len(context)):
                draws = []
                for _k in range(s.negative):
                    z = rng.next()
                    slot = rng.below(z, len(s.neg_prob))
                    draws.append(slot if rng.unit(z) < s.neg_prob[slot] else int(s.neg_alias[slot]))
                negatives.append(draws)
    return pairs, negatives


def toy_corpus(n_sentences: int = 40, vocab: int = 12, seed: int = 0):
    """Sentences of 1..15 words; word 1 very frequent; word 11 never seen (count 0)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 16, n_sentences)
    ids = rng.integers(1, vocab - 1, int(lengths.sum()))
    ids[::2] = 1
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    counts = torch.from_numpy(np.bincount(ids, minlength=vocab))
    return ids.astype(np.int32), bounds, counts


@pytest.mark.parametrize("cbow", [False, True], ids=["skipgram", "cbow"])
def test_kernel_draws_equal_the_python_reference(cbow):
    ids, bounds, counts = toy_corpus()
    s = word2vec_sampling(counts, sample=0.05, window=4, negative=3)
    assert 0 < s.keep[1] < 1 and s.keep[2] == 1 and s.keep[11] == 0  # all three cases
    pairs, negs = kernel.draws(s, ids, bounds, seed=12345, cbow=cbow)
    ref_pairs, ref_negs = reference_draws(ids.tolist(), bounds.tolist(), 12345, s, cbow)
    assert [tuple(p) for p in pairs.tolist()] == ref_pairs
    assert negs.tolist() == ref_negs
    # every pair stays within its sentence; a one-word sentence has none
    sentence = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    assert (sentence[pairs[:, 0]] == sentence[pairs[:, 1]]).all()


def test_kernel_subsampling_keeps_each_occurrence_with_its_probability():
    ids = np.array([0, 1] * 20_000, np.int32)
    keep = np.array([0.3, 1.0], np.float32)
    s = kernel.Sampling(keep, *kernel.alias_table(np.ones(2)), window=1, negative=1)
    pairs, _ = kernel.draws(s, ids, np.array([0, len(ids)]), seed=1)
    kept = np.unique(pairs)
    assert np.isin(np.flatnonzero(ids == 1), kept).all()  # probability 1: always kept
    share = np.isin(np.flatnonzero(ids == 0), kept).mean()
    assert share == pytest.approx(0.3, abs=0.01)


def test_dynamic_window_weights_distance_d_by_window_minus_d_plus_one():
    n, window = 200_000, 5
    s = kernel.Sampling(np.ones(3, np.float32), *kernel.alias_table(np.ones(3)), window, 1)
    pairs, _ = kernel.draws(s, np.ones(n, np.int32), np.array([0, n]), seed=0)
    dist = Counter(np.abs(pairs[:, 1] - pairs[:, 0]).tolist())
    for d in range(1, window + 1):  # P(b >= d) = (window - d + 1) / window, both sides
        expected = 2 * n * (window - d + 1) / window
        assert dist[d] == pytest.approx(expected, rel=0.02)
    assert max(dist) == window


def test_kernel_negatives_follow_the_unigram_distribution_to_the_075():
    counts = torch.tensor([0, 1, 5, 20, 100, 1000])
    s = word2vec_sampling(counts, 0.0, window=1, negative=8)
    ids = np.full(50_000, 2, np.int32)
    _, negs = kernel.draws(s, ids, np.array([0, len(ids)]), seed=3)
    freq = np.bincount(negs.ravel(), minlength=len(counts)) / negs.size
    ref = np.array([c**0.75 for c in counts.tolist()])
    assert negs.size > 400_000 and freq[0] == 0  # a dropped word is never a negative
    np.testing.assert_allclose(freq, ref / ref.sum(), atol=3e-3)


def batches(fixed_seed: int | None = 7) -> Word2VecBatches:
    # 30 sentences of 10 words
    ids = torch.randint(1, 20, (300,), generator=torch.Generator().manual_seed(0))
    split = EncodedSplit(ids=ids, offsets=torch.arange(0, 301, 10))
    return Word2VecBatches(split, 100, None, fixed_seed=fixed_seed)


def test_batches_are_runs_of_whole_sentences_with_a_seed_each():
    ds = batches()
    assert len(ds) == 3 and [ds.words_in(b) for b in range(3)] == [100, 100, 100]
    b = ds[1]
    assert b["ids"].tolist() == ds.ids[100:200].tolist()
    assert b["bounds"].tolist() == list(range(0, 101, 10))
    assert b["words"] == 100
    assert ds[1]["seed"] == b["seed"] != ds[2]["seed"]  # val/test: the same draws every pass
    train = batches(fixed_seed=None)
    torch.manual_seed(0)
    first = [train[i]["seed"] for i in range(3)]
    torch.manual_seed(0)
    assert first == [train[i]["seed"] for i in range(3)]  # from torch's seeded generator
    assert len({*first, *(train[i]["seed"] for i in range(3))}) == 6  # fresh draws each pass


# --------------------------------------------------------------------------- updates


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def fixed_negative_sampling(vocab: int, negative: int, word: int) -> kernel.Sampling:
    """No subsampling, window 1, every negative draw is ``word``."""
    weights = np.zeros(vocab)
    weights[word] = 1
    return kernel.Sampling(np.ones(vocab, np.float32), *kernel.alias_table(weights), 1, negative)


def reference_sgns(syn0, syn1, inp, target, negatives, lr):
    """One skip-gram example by hand (float64): word2vec's update of both tables."""
    h, work, loss = syn0[inp].copy(), np.zeros(syn0.shape[1]), 0.0
    for t, label in [(target, 1), *((n, 0) for n in negatives if n != target)]:
        f = h @ syn1[t]
        g = label - sigmoid(f)
        loss -= math.log(sigmoid(f if label else -f))
        work += g * syn1[t]
        syn1[t] += lr * g * h
    syn0[inp] += lr * work
    return loss


def test_kernel_update_equals_the_hand_computed_sgns_update():
    # 3 words: a sentence (0, 1), window 1: two examples (input = context, target = centre),
    # each against negatives (2, 2); the output table starts non-zero so every term counts
    rng = np.random.default_rng(0)
    syn0, syn1 = rng.normal(0, 0.5, (3, 4)), rng.normal(0, 0.5, (3, 4))
    w0, w1 = torch.tensor(syn0, dtype=torch.float32), torch.tensor(syn1, dtype=torch.float32)
    s = fixed_negative_sampling(3, 2, word=2)
    ids, bounds, lr = np.array([0, 1], np.int32), np.array([0, 2]), 0.1
    pairs, negs = kernel.draws(s, ids, bounds, seed=5)
    assert pairs.tolist() == [[0, 1], [1, 0]] and negs.tolist() == [[2, 2], [2, 2]]
    loss, n = kernel.run(s, w0, w1, ids, bounds, seed=5, lr_in=lr, lr_out=lr)
    ref = reference_sgns(syn0, syn1, 1, 0, [2, 2], lr)  # centre 0, context 1
    ref += reference_sgns(syn0, syn1, 0, 1, [2, 2], lr)  # centre 1, context 0
    np.testing.assert_allclose(w0.numpy(), syn0, atol=1e-6)
    np.testing.assert_allclose(w1.numpy(), syn1, atol=1e-6)
    assert n == 2 and loss == pytest.approx(ref, abs=1e-5)
    # LOSS mode: the same loss of the updated tables, nothing changes
    before = w0.clone(), w1.clone()
    loss, n = kernel.run(s, w0, w1, ids, bounds, seed=5, mode=kernel.LOSS)
    assert torch.equal(w0, before[0]) and torch.equal(w1, before[1]) and n == 2
    # a frozen input table (lr_in 0) keeps its rows; the output table still learns
    kernel.run(s, w0, w1, ids, bounds, seed=5, lr_in=0.0, lr_out=lr)
    assert torch.equal(w0, before[0]) and not torch.equal(w1, before[1])


@pytest.mark.parametrize("mean", [True, False], ids=["mean", "sum"])
def test_kernel_cbow_update_gives_every_context_word_the_whole_error(mean):
    # sentence (0, 1, 2), window 1: bags {1} -> 0, {0, 2} -> 1, {1} -> 2; negatives: word 3
    rng = np.random.default_rng(1)
    syn0, syn1 = rng.normal(0, 0.5, (4, 3)), rng.normal(0, 0.5, (4, 3))
    w0, w1 = torch.tensor(syn0, dtype=torch.float32), torch.tensor(syn1, dtype=torch.float32)
    s = fixed_negative_sampling(4, 1, word=3)
    ids, bounds, lr = np.array([0, 1, 2], np.int32), np.array([0, 3]), 0.2
    kernel.run(s, w0, w1, ids, bounds, seed=0, lr_in=lr, lr_out=lr, cbow=True, cbow_mean=mean)
    for bag, target in (([1], 0), ([0, 2], 1), ([1], 2)):
        h = syn0[bag].mean(0) if mean else syn0[bag].sum(0)
        work = np.zeros(3)
        for t, label in ((target, 1), (3, 0)):
            g = label - sigmoid(h @ syn1[t])
            work += g * syn1[t]
            syn1[t] += lr * g * h
        syn0[bag] += lr * work  # word2vec / gensim (cbow_mean=1): the whole error, not 1/n
    np.testing.assert_allclose(w0.numpy(), syn0, atol=1e-6)
    np.testing.assert_allclose(w1.numpy(), syn1, atol=1e-6)


def test_one_thread_and_a_seed_give_the_same_tables_hogwild_threads_train_alike():
    ids, bounds, counts = toy_corpus(n_sentences=400, vocab=30, seed=2)
    s = word2vec_sampling(counts, 1e-2, window=3, negative=4)

    def trained(threads: int) -> tuple[torch.Tensor, float, int]:
        kernel.set_threads(threads)
        try:
            w0 = torch.rand(30, 8, generator=torch.Generator().manual_seed(0)) - 0.5
            w1 = torch.zeros(30, 8)
            loss, n = 0.0, 0
            for seed in range(5):
                lo, hi = kernel.run(s, w0, w1, ids, bounds, seed, 0.05, 0.05)
                loss, n = loss + lo, n + hi
            return w0, loss, n
        finally:
            kernel.set_threads(1)

    a, b = trained(1), trained(1)
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    hogwild = trained(2)  # the same draws, shared by two threads without locks
    assert hogwild[2] == a[2] and hogwild[1] == pytest.approx(a[1], rel=0.05)


# --------------------------------------------------------------------------- training


def synonym_corpus(
    path: Path, groups: int = 6, size: int = 4, sentences: int = 3000
) -> list[list[str]]:
    """Each group has ``size`` interchangeable words and its own context words."""
    rng = random.Random(0)
    syn = [[f"g{g}w{i}" for i in range(size)] for g in range(groups)]
    ctx = [[f"g{g}c{i}" for i in range(4)] for g in range(groups)]
    lines = []
    for _ in range(sentences):
        g = rng.randrange(groups)
        words = rng.sample(ctx[g], 3)
        words.insert(rng.randrange(4), rng.choice(syn[g]))
        lines.append(" ".join(words))
    path.write_text("\n".join(lines) + "\n")
    return syn


def w2v_cfg(make_cfg, corpus: Path, *extra: str):
    return make_cfg(
        "task=word2vec",
        "model=skipgram",
        "data=text",
        f"data.root={corpus.parent}",
        f"data.train={corpus.name}",
        "data.val=null",
        "data.test=null",
        "task.min_count=1",
        "task.sample=0",
        "task.batch_words=500",
        "embedding.dim=16",
        "trainer.max_epochs=4",
        *FAST,
        *extra,
        tiny=False,
    )


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_synonyms_are_nearest_neighbours_and_export_round_trips(make_cfg, tmp_path, model):
    syn = synonym_corpus(tmp_path / "corpus.txt")
    cfg = w2v_cfg(
        make_cfg, tmp_path / "corpus.txt", f"model={model}", "callbacks.intrinsic.words=[g0w0]"
    )
    metrics = train(cfg)
    run = Path(metrics["output_dir"])
    wv = intrinsic.read_word_vectors(run / "vectors.vec")
    # the export: .vec == .npy + vocab.txt, most frequent first, specials left out
    vocab = [line.split("\t")[0] for line in (run / "vocab.txt").read_text().splitlines()]
    counts = [int(line.split("\t")[1]) for line in (run / "vocab.txt").read_text().splitlines()]
    assert wv.words == vocab and counts == sorted(counts, reverse=True)
    assert "<pad>" not in vocab and "<unk>" not in vocab
    np.testing.assert_allclose(
        wv.vectors.numpy(), np.load(run / "vectors.npy"), rtol=1e-5, atol=1e-6
    )
    # every synonym's nearest synonym is from its own group
    words = [w for group in syn for w in group]
    sub = intrinsic.WordVectors(words, torch.stack([wv.vectors[wv.words.index(w)] for w in words]))
    for group in syn:
        for w in group:
            nearest = intrinsic.neighbors(sub, [w], k=1)[w][0][0]
            assert nearest in group, (w, intrinsic.neighbors(sub, [w], k=3)[w])


def test_vectors_feed_a_classification_run(make_cfg, tmp_path):
    synonym_corpus(tmp_path / "corpus.txt", sentences=600)
    first = train(w2v_cfg(make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=1"))
    vec = Path(first["output_dir"]) / "vectors.vec"
    tsv = tmp_path / "labelled.tsv"
    tsv.write_text(
        "text\tlabel\n" + "".join(f"g{i % 2}w1 g{i % 2}c2 zzz\t{i % 2}\n" for i in range(60))
    )
    cfg = make_cfg(
        "data=files",
        f"data.train={tsv}",
        "embedding=pretrained",
        "pretrained=file",
        f"pretrained.path={vec}",
        "tokenizer.ngrams=1",
        "trainer.max_epochs=1",
        *FAST,
        tiny=False,
    )
    validate(cfg)
    dm, module = TASKS.get("classification").setup(cfg)
    wv = intrinsic.read_word_vectors(vec)
    row = module.embedding.weight[dm.vocab.index("g0w1")].detach()
    assert torch.allclose(row, wv.vectors[wv.words.index("g0w1")], atol=1e-5)
    assert module.embedding_report["coverage_types"] == pytest.approx(100 * 4 / 5)  # zzz is new


def test_word2vec_config_problems_name_the_key(make_cfg):
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        validate(make_cfg("task=word2vec", "model=boe", "task.window=0", "data=synthetic_lm"))
    text = str(exc.value)
    assert "model.name: task=word2vec needs model=skipgram or cbow" in text
    assert "task.window: must be >= 1" in text
    with pytest.raises(
        ConfigError, match=r"model.name: .skipgram. trains word vectors; use task=word2vec"
    ):
        validate(make_cfg("model=skipgram"))


def test_metrics_hold_the_final_intrinsic_scores(make_cfg, tmp_path):
    synonym_corpus(tmp_path / "corpus.txt", sentences=600)
    ev = tmp_path / "eval"
    ev.mkdir()
    with open(tmp_path / "corpus.txt", "a") as f:  # seen once: under min_count 2
        f.write("rare g0c0 g0c1\n")
    (ev / "wordsim353.tsv").write_text(
        "g0w0\tg0w1\t9\ng0w0\tg1w0\t1\ng1w1\tg1w2\t8\ng2w0\tg3w0\t2\nrare\tg0w0\t5\n"
    )
    (ev / "questions-words.txt").write_text(": x\ng0c0 g0w0 g1c0 g1w0\n")
    cfg = w2v_cfg(
        make_cfg,
        tmp_path / "corpus.txt",
        f"callbacks.intrinsic.eval_dir={ev}",
        "trainer.max_epochs=2",
        "task.min_count=2",
    )
    metrics = train(cfg)
    saved = json.loads((Path(metrics["output_dir"]) / "metrics.json").read_text())
    assert saved["intrinsic/ws353_coverage"] == pytest.approx(0.8)  # "rare" was not trained
    assert -1.0 <= saved["intrinsic/ws353"] <= 1.0
    assert "intrinsic/analogy" in saved and "intrinsic/simlex" not in saved  # no simlex file
    # the last validation scored the exported table: embedlab-vectors eval gives the same
    wv = intrinsic.read_word_vectors(Path(metrics["output_dir"]) / "vectors.vec")
    again = intrinsic.evaluate(wv, intrinsic.load_benchmarks(ev))
    assert saved["intrinsic/ws353"] == pytest.approx(again["ws353"], abs=1e-6)
    assert saved["intrinsic/ws353_coverage"] == pytest.approx(again["ws353_coverage"])


def test_kernel_config_problems_name_the_key(make_cfg):
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        validate(
            make_cfg(
                "task=word2vec",
                "model=cbow",
                "data=synthetic_lm",
                "optimizer=adamw",
                "embedding.mode=max",
                "trainer.devices=2",
            )
        )
    text = str(exc.value)
    assert (
        "optimizer.name: task=word2vec trains with word2vec's SGD kernel; use optimizer=sgd" in text
    )
    assert "embedding.mode: CBOW's bag is mean or sum, got max" in text
    assert "trainer.devices: " in text


def test_two_runs_with_one_thread_and_a_seed_write_the_same_vectors(make_cfg, tmp_path):
    from omegaconf import open_dict

    synonym_corpus(tmp_path / "corpus.txt", sentences=600)
    vectors = []
    for name in ("a", "b"):
        cfg = w2v_cfg(make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=2", "seed=3")
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / name)
        vectors.append(np.load(Path(train(cfg)["output_dir"]) / "vectors.npy"))
    np.testing.assert_array_equal(vectors[0], vectors[1])


@dataclass
class CrashArgs:
    at_step: int = -1  # raise when training reaches this optimizer step


class Crash(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.at_step:
            raise RuntimeError("crashed on purpose")


def test_a_resumed_run_writes_the_vectors_of_the_uninterrupted_run(make_cfg, tmp_path):
    """Crash at the start of epoch 2, resume=RUN_DIR: the same vectors as never stopping
    (the lr schedule, the step counter and the random streams travel in the checkpoint)."""
    from omegaconf import OmegaConf, open_dict

    from embedlab.callbacks import CALLBACKS, CallbackSpec

    if "crash" not in CALLBACKS:
        CALLBACKS.register("crash", CrashArgs)(
            CallbackSpec(lambda s, cfg, out: Crash(s.at_step) if s.at_step >= 0 else None)
        )
    synonym_corpus(tmp_path / "corpus.txt", sentences=600)
    full = train(w2v_cfg(make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=3"))
    per_epoch = full["global_steps"] // 3
    cfg = w2v_cfg(make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=3")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "interrupted")
        cfg.callbacks.crash = {"at_step": per_epoch}
    with pytest.raises(RuntimeError, match="crashed on purpose"):
        train(cfg)
    run_dir = tmp_path / "interrupted"
    stored = OmegaConf.load(run_dir / "config.yaml")
    stored.callbacks.crash.at_step = -1
    OmegaConf.save(stored, run_dir / "config.yaml")
    resumed = train(make_cfg(f"resume={run_dir}", tiny=False))
    assert resumed["global_steps"] == full["global_steps"]
    np.testing.assert_array_equal(
        np.load(run_dir / "vectors.npy"), np.load(Path(full["output_dir"]) / "vectors.npy")
    )


def test_max_norm_bounds_the_trained_rows(make_cfg, tmp_path):
    synonym_corpus(tmp_path / "corpus.txt", sentences=600)
    free = train(w2v_cfg(make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=2"))
    assert np.linalg.norm(np.load(Path(free["output_dir"]) / "vectors.npy"), axis=1).max() > 0.5
    cfg = w2v_cfg(
        make_cfg, tmp_path / "corpus.txt", "trainer.max_epochs=2", "embedding.max_norm=0.5"
    )
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "bounded")
    bounded = np.load(Path(train(cfg)["output_dir"]) / "vectors.npy")
    assert np.linalg.norm(bounded, axis=1).max() <= 0.5 + 1e-4
