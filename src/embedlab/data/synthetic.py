"""The embedded default dataset, generated deterministically at run time (no download).

Each text is a short sequence of pseudo-words. A few of them are *class words* owned by the
text's label (sometimes borrowed from another class, the ``confusion``), the rest are *shared*
words every class uses with the same Zipf frequencies, and rare *noise* words. A bag of
embeddings learns which words signal which class; a majority-class guess stays near 1/K.
The generator is vectorised numpy: 16k texts take a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np

from embedlab.data.types import TextSplit, positions_within

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


def make_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pronounceable pseudo-words (2 or 3 syllables), in a seeded random order."""
    s = len(_SYLLABLES)
    two = [a + b for a in _SYLLABLES for b in _SYLLABLES]
    pool = two if n <= len(two) else two + [w + c for w in two for c in _SYLLABLES[: (n // s) + 1]]
    if n > len(pool):
        raise ValueError(f"cannot make {n} distinct synthetic words (at most {len(pool)})")
    order = rng.permutation(len(pool))[:n]
    return [pool[i] for i in order]


def generate(
    num_examples: dict[str, int],
    num_classes: int = 6,
    class_words: int = 40,
    shared_words: int = 400,
    noise_words: int = 2000,
    min_len: int = 8,
    max_words: int = 24,
    signal: float = 0.12,
    confusion: float = 0.25,
    label_noise: float = 0.0,
    seed: int = 1234,
) -> tuple[dict[str, TextSplit], list[str]]:
    """Generate the splits named in ``num_examples`` (e.g. train/val/test) and the label names."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 1 <= min_len <= max_words:
        raise ValueError(f"need 1 <= min_len <= max_words, got {min_len}, {max_words}")
    rng = np.random.default_rng(seed)
    n_class = num_classes * class_words
    vocab = np.array(make_words(n_class + shared_words + noise_words, rng), dtype=object)
    for i in range(0, len(vocab), 7):  # some capitalised words, so lowercasing matters
        vocab[i] = vocab[i].capitalize()
    zipf = 1.0 / np.arange(1, shared_words + 1)
    zipf /= zipf.sum()
    label_names = [f"topic{k}" for k in range(num_classes)]

    splits: dict[str, TextSplit] = {}
    for split, n in num_examples.items():
        labels = rng.integers(num_classes, size=n)
        lengths = rng.integers(min_len, max_words + 1, size=n)
        total = int(lengths.sum())
        owner = np.repeat(np.arange(n), lengths)  # example index of every token
        pos = positions_within(lengths)
        # at least two signal tokens per text (positions 0 and 1 before shuffling), more by chance
        is_signal = (pos < 2) | (rng.random(total) < signal)
        word_class = labels[owner]
        borrowed = rng.random(total) < confusion
        word_class = np.where(borrowed, rng.integers(num_classes, size=total), word_class)
        class_tok = word_class * class_words + rng.integers(class_words, size=total)
        shared_tok = n_class + rng.choice(shared_words, size=total, p=zipf)
        noise_tok = n_class + shared_words + rng.integers(noise_words, size=total)
        other = np.where(rng.random(total) < 0.85, shared_tok, noise_tok)
        tokens = np.where(is_signal, class_tok, other)
        # shuffle words within each text: sort by (owner, random key)
        order = np.lexsort((rng.random(total), owner))
        words = vocab[tokens[order]]
        ends = np.cumsum(lengths)
        texts = [
            " ".join(words[e - k : e]) + " ."
            for e, k in zip(ends.tolist(), lengths.tolist(), strict=True)
        ]
        if label_noise > 0:
            flip = rng.random(n) < label_noise
            labels = np.where(flip, rng.integers(num_classes, size=n), labels)
        splits[split] = TextSplit(texts=texts, labels=labels.astype(np.int64))
    return splits, label_names
