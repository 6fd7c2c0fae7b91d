"""The embedded language-modelling corpus: sentences from a seeded probabilistic grammar.

A hidden finite-state grammar over pseudo-word classes generates every sentence:

    S  -> NP_n VP_n [PP] [CONJ S] .        n = singular | plural (agreement)
    NP -> det_n (adj)* noun_n              VP -> [adv] verb_n NP_m
    PP -> prep NP_m

Nouns and verbs come in a singular and a plural form ("bako" / "bakos"), determiners mark
the number, and a verb agrees with its subject across any adjectives. Within each class,
words follow Zipf frequencies, and each verb prefers a few object nouns (selection). So a
unigram model does poorly, a bigram model better, and a model that tracks agreement and
selection across several words best: a clear, learnable perplexity curve on 2 CPU cores.
Generation is vectorised over sentences (a loop over positions only).
"""

from __future__ import annotations

import numpy as np

from embedlab.data.synthetic import make_words
from embedlab.data.types import TextSplit

_DETS = {"sg": ["the", "a", "this", "every"], "pl": ["the", "some", "these", "many"]}
_PREPS = ["in", "on", "near", "under", "with", "behind"]
_CONJS = ["and", "but", "while"]

# states of the grammar automaton (emit one word each, except END)
(DET_S, DET_P, ADJ_S, ADJ_P, NOUN_S, NOUN_P, ADV_S, ADV_P, VERB_S, VERB_P,
 ODET, OADJ, ONOUN, PREP, PDET, PADJ, PNOUN, CONJ, END) = range(19)  # fmt: skip


def _zipf(n: int, a: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1) ** a
    return p / p.sum()


def _transitions(n_states: int) -> np.ndarray:
    """Row-stochastic matrix of the automaton's state transitions."""
    t = np.zeros((n_states, n_states))
    for det, adj, noun, adv, verb in (
        (DET_S, ADJ_S, NOUN_S, ADV_S, VERB_S),
        (DET_P, ADJ_P, NOUN_P, ADV_P, VERB_P),
    ):
        t[det, adj], t[det, noun] = 0.35, 0.65
        t[adj, adj], t[adj, noun] = 0.2, 0.8
        t[noun, adv], t[noun, verb] = 0.2, 0.8
        t[adv, verb] = 1.0
    for verb in (VERB_S, VERB_P):
        t[verb, ODET] = 1.0
    t[ODET, OADJ], t[ODET, ONOUN] = 0.3, 0.7
    t[OADJ, ONOUN] = 1.0
    t[ONOUN, PREP], t[ONOUN, CONJ], t[ONOUN, END] = 0.3, 0.15, 0.55
    t[PREP, PDET] = 1.0
    t[PDET, PADJ], t[PDET, PNOUN] = 0.3, 0.7
    t[PADJ, PNOUN] = 1.0
    t[PNOUN, CONJ], t[PNOUN, END] = 0.2, 0.8
    t[CONJ, DET_S], t[CONJ, DET_P] = 0.5, 0.5
    t[END, END] = 1.0
    return t


def generate(
    num_sentences: dict[str, int],
    nouns: int = 120,
    verbs: int = 60,
    adjectives: int = 40,
    adverbs: int = 20,
    max_words: int = 40,
    seed: int = 1234,
) -> dict[str, TextSplit]:
    """Sentences for each split named in ``num_sentences`` (unlabelled ``TextSplit``s)."""
    rng = np.random.default_rng(seed)
    reserved = {w for ws in (*_DETS.values(), _PREPS, _CONJS) for w in ws}
    need = nouns + verbs + adjectives + adverbs
    words = [w for w in make_words(need + 50, rng) if w not in reserved][:need]
    noun_sg = np.array(words[:nouns], dtype=object)
    noun_pl = np.array([w + "s" for w in noun_sg], dtype=object)
    verb_pl = np.array(words[nouns : nouns + verbs], dtype=object)
    verb_sg = np.array([w + "t" for w in verb_pl], dtype=object)
    adjs = np.array(words[nouns + verbs : nouns + verbs + adjectives], dtype=object)
    advs = np.array([w + "ly" for w in words[nouns + verbs + adjectives :]], dtype=object)
    # each verb picks its object nouns from a few preferred ones (selectional preference)
    prefs = np.stack([rng.permutation(nouns)[:6] for _ in range(verbs)])  # (verbs, 6)
    pref_p = _zipf(6, 1.2)
    trans = np.cumsum(_transitions(END + 1), axis=1)
    pz = {
        k: np.cumsum(_zipf(n))
        for k, n in (("noun", nouns), ("verb", verbs), ("adj", adjectives), ("adv", adverbs))
    }

    def draw(cum: np.ndarray, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), len(cum) - 1)

    out: dict[str, TextSplit] = {}
    for split, n in num_sentences.items():
        state = np.where(rng.random(n) < 0.5, DET_S, DET_P)
        verb_of = np.zeros(n, dtype=np.int64)  # last verb of each sentence (for selection)
        plural_obj = rng.random(n) < 0.5
        cols: list[np.ndarray] = []
        for _ in range(max_words):
            tok = np.full(n, "", dtype=object)
            for s, vocab in (
                (DET_S, _DETS["sg"]),
                (DET_P, _DETS["pl"]),
                (PREP, _PREPS),
                (CONJ, _CONJS),
            ):
                idx = np.flatnonzero(state == s)
                tok[idx] = np.array(vocab, dtype=object)[rng.integers(len(vocab), size=len(idx))]
            for s in (ODET, PDET):
                idx = np.flatnonzero(state == s)
                plural_obj[idx] = rng.random(len(idx)) < 0.5
                det = np.where(plural_obj[idx], 1, 0)
                choice = rng.integers(4, size=len(idx))
                tok[idx] = np.where(
                    det == 1,
                    np.array(_DETS["pl"], dtype=object)[choice],
                    np.array(_DETS["sg"], dtype=object)[choice],
                )
            for s in (ADJ_S, ADJ_P, OADJ, PADJ):
                idx = np.flatnonzero(state == s)
                tok[idx] = adjs[draw(pz["adj"], len(idx))]
            for s in (ADV_S, ADV_P):
                idx = np.flatnonzero(state == s)
                tok[idx] = advs[draw(pz["adv"], len(idx))]
            for s, forms in ((NOUN_S, noun_sg), (NOUN_P, noun_pl)):
                idx = np.flatnonzero(state == s)
                tok[idx] = forms[draw(pz["noun"], len(idx))]
            for s, forms in ((VERB_S, verb_sg), (VERB_P, verb_pl)):
                idx = np.flatnonzero(state == s)
                v = draw(pz["verb"], len(idx))
                verb_of[idx] = v
                tok[idx] = forms[v]
            idx = np.flatnonzero(state == ONOUN)  # object: one of the verb's preferred nouns
            obj = prefs[verb_of[idx], draw(np.cumsum(pref_p), len(idx))]
            tok[idx] = np.where(plural_obj[idx], noun_pl[obj], noun_sg[obj])
            idx = np.flatnonzero(state == PNOUN)
            nn_ = draw(pz["noun"], len(idx))
            tok[idx] = np.where(plural_obj[idx], noun_pl[nn_], noun_sg[nn_])
            cols.append(tok)
            # next state: inverse-CDF sampling on each row of the cumulative transition matrix
            u = rng.random(n)
            nxt = (trans[state] < u[:, None]).sum(axis=1)
            state = np.minimum(nxt, END)
            if bool((state == END).all()):
                break
        grid = np.stack(cols, axis=1)  # (n, L) words, "" after the end
        texts = [" ".join(w for w in row if w) + " ." for row in grid.tolist()]
        out[split] = TextSplit(texts=texts, labels=None)
    return out
