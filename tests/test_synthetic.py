"""The embedded dataset: deterministic, several classes, signal in class words."""

from __future__ import annotations

from collections import Counter

import numpy as np

from embedlab.data.synthetic import generate


def test_generation_is_deterministic_and_sized():
    a, names = generate({"train": 500, "test": 100}, num_classes=5, seed=3)
    b, _ = generate({"train": 500, "test": 100}, num_classes=5, seed=3)
    c, _ = generate({"train": 500, "test": 100}, num_classes=5, seed=4)
    assert a["train"].texts == b["train"].texts
    assert np.array_equal(a["train"].labels, b["train"].labels)
    assert a["train"].texts != c["train"].texts
    assert (
        len(a["train"]) == 500
        and len(a["test"]) == 100
        and names == [f"topic{k}" for k in range(5)]
    )
    assert set(a["train"].labels.tolist()) == set(range(5))


def test_texts_have_the_configured_lengths():
    splits, _ = generate({"train": 300}, min_len=4, max_words=6, seed=0)
    lengths = [len(t.split()) - 1 for t in splits["train"].texts]  # minus the final "."
    assert min(lengths) >= 4 and max(lengths) <= 6


def test_class_words_carry_the_signal():
    """Naive Bayes on train recovers labels far above chance; words alone are not label-free."""
    splits, _ = generate({"train": 3000, "test": 1000}, num_classes=6, seed=1)
    counts = [Counter() for _ in range(6)]
    for text, y in zip(splits["train"].texts, splits["train"].labels, strict=True):
        counts[y].update(text.lower().split())
    vocab = set().union(*counts)
    totals = [sum(c.values()) for c in counts]

    def predict(text: str) -> int:
        scores = [
            sum(np.log((counts[k][w] + 1) / (totals[k] + len(vocab))) for w in text.lower().split())
            for k in range(6)
        ]
        return int(np.argmax(scores))

    test = splits["test"]
    acc = np.mean([predict(t) == y for t, y in zip(test.texts, test.labels, strict=True)])
    majority = np.bincount(test.labels).max() / len(test)
    assert majority < 0.25
    assert acc > 0.85
