"""task=word2vec: the pair sampler against Python references, training, export and feeding back."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from embedlab.config import validate
from embedlab.data.types import EncodedSplit
from embedlab.data.word2vec import (
    NegativeSampler,
    Word2VecBatches,
    keep_probabilities,
    window_pairs,
)
from embedlab.embeddings import intrinsic
from embedlab.tasks import TASKS
from embedlab.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = [
    "callbacks.projector.enabled=false",
    "callbacks.drift.enabled=false",
    "callbacks.embedding_histograms.enabled=false",
    "logger.tensorboard=false",
]


# --------------------------------------------------------------------------- sampler


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


def reference_pairs(sentence: list[int], reach: list[int]) -> Counter:
    """Python loops: centre i pairs with every j of its sentence with 0 < |i - j| <= reach[i]."""
    pairs: Counter = Counter()
    for i in range(len(sentence)):
        for j in range(i - reach[i], i + reach[i] + 1):
            if j != i and 0 <= j < len(sentence) and sentence[j] == sentence[i]:
                pairs[(i, j)] += 1
    return pairs


def test_window_pairs_equal_the_python_reference():
    sentence = torch.tensor([0] * 7 + [1] * 2 + [2] + [3] * 12)
    window = 4
    centre, context = window_pairs(sentence, window, torch.Generator().manual_seed(3))
    # the same draws of b_i as window_pairs makes (its first use of the generator)
    reach = torch.randint(
        1, window + 1, (len(sentence),), generator=torch.Generator().manual_seed(3)
    )
    ours = Counter(zip(centre.tolist(), context.tolist(), strict=True))
    assert ours == reference_pairs(sentence.tolist(), reach.tolist())
    assert 9 not in centre.tolist() + context.tolist()  # a one-word sentence has no pairs


def test_dynamic_window_weights_distance_d_by_window_minus_d_plus_one():
    n, window = 200_000, 5
    centre, context = window_pairs(
        torch.zeros(n, dtype=torch.long), window, torch.Generator().manual_seed(0)
    )
    dist = Counter((context - centre).abs().tolist())
    for d in range(1, window + 1):  # P(b >= d) = (window - d + 1) / window, both sides
        expected = 2 * n * (window - d + 1) / window
        assert dist[d] == pytest.approx(expected, rel=0.02)
    assert max(dist) == window


def test_negatives_follow_the_unigram_distribution_to_the_075():
    counts = torch.tensor([0, 1, 5, 20, 100, 1000])
    sampler = NegativeSampler(counts, 0.75, table_size=2**20)
    draws = sampler.sample((400_000,), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=len(counts)).double() / len(draws)
    ref = np.array([c**0.75 for c in counts.tolist()])
    ref = ref / ref.sum()
    assert freq[0] == 0  # a dropped word is never a negative
    np.testing.assert_allclose(freq.numpy(), ref, atol=3e-3)


def batches(cbow: bool, sample: float = 0.0) -> Word2VecBatches:
    # 30 sentences of 10 words over a vocabulary of 20; word 0 very frequent
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 20, (300,), generator=gen)
    ids[::2] = 0
    split = EncodedSplit(ids=ids, offsets=torch.arange(0, 301, 10))
    counts = torch.bincount(ids, minlength=20)
    cfg = OmegaConf.create({"window": 3, "negative": 4, "batch_words": 100})
    keep = keep_probabilities(counts, sample)
    return Word2VecBatches(split, keep, NegativeSampler(counts), cfg, cbow, gen, fixed_seed=7)


def test_batches_subsample_and_pair_within_sentences():
    ds = batches(cbow=False, sample=0.01)
    assert len(ds) == 3 and [ds.words_in(b) for b in range(3)] == [100, 100, 100]
    b = ds[0]
    assert b["negatives"].shape == (len(b["targets"]), 4)
    # the fixed seed (val/test) gives the same batch twice
    assert torch.equal(ds[0]["inputs"], b["inputs"])
    # subsampling: word 0 (half the text) keeps p of its occurrences; every pair shows it less
    p0 = float(ds.keep[0])
    assert p0 < 0.5
    share = float((torch.cat([ds[i]["targets"] for i in range(3)]) == 0).float().mean())
    assert share < 0.5


def test_cbow_bags_are_the_skipgram_contexts_of_each_centre():
    sg, cb = batches(cbow=False)[1], batches(cbow=True)[1]
    # same generator draws: CBOW's bag of centre t = the inputs of skip-gram pairs targeting t
    sg_pairs = Counter(zip(sg["targets"].tolist(), sg["inputs"].tolist(), strict=True))
    bounds = cb["offsets"].tolist() + [len(cb["inputs"])]
    cb_pairs: Counter = Counter()
    for k, t in enumerate(cb["targets"].tolist()):
        for c in cb["inputs"][bounds[k] : bounds[k + 1]].tolist():
            cb_pairs[(t, c)] += 1
    assert cb_pairs == sg_pairs


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
        "task.batch_words=100",  # summed updates: few hits of a row per batch
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


def test_cbow_mean_gives_every_context_word_the_whole_error():
    from torch import nn

    from embedlab.models.word2vec import CBOW

    bag = nn.EmbeddingBag(10, 3, mode="mean")
    model = CBOW(bag, sparse=False)
    inputs, offsets = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 3])  # bags of 3 and 1
    h = model.encode(inputs, offsets)
    expected = torch.stack([bag.weight[[1, 2, 3]].mean(0), bag.weight[4]])
    assert torch.allclose(h, expected)  # the forward value is the mean
    h.sum().backward()
    # word2vec / gensim (cbow_mean=1): d/dv_i is the bag's error, not 1/3 of it
    assert torch.allclose(bag.weight.grad[[1, 2, 3, 4]], torch.ones(4, 3))
