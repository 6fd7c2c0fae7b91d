"""Tokenizer: trained on train only, specials, normalisation, min_freq/max_size, round trip."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from embedlab.data.tokenizer import ascii_twin, build_tokenizer, encode, vocabulary


def tok_cfg(**kw):
    base = dict(
        kind="word",
        lowercase=True,
        normalization="nfkc",
        strip_accents=False,
        split_punctuation=True,
        min_freq=1,
        max_size=None,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token=None,
        eos_token=None,
        path=None,
    )
    base.update(kw)
    return SimpleNamespace(**base)


TRAIN = ["The cat sat.", "the dog sat on the mat", "A cat, a dog!"]


def test_specials_come_first_and_unknown_words_map_to_unk():
    tok = build_tokenizer(tok_cfg(), TRAIN)
    vocab = vocabulary(tok)
    assert vocab[:2] == ["<pad>", "<unk>"]
    ids = tok.encode("the zebra sat", add_special_tokens=False).ids
    assert ids[1] == 1  # zebra was never seen in train
    assert vocab[ids[0]] == "the" and vocab[ids[2]] == "sat"


def test_bos_eos_specials_get_the_next_ids():
    vocab = vocabulary(build_tokenizer(tok_cfg(bos_token="<bos>", eos_token="<eos>"), TRAIN))
    assert vocab[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]


def test_round_trip_reproduces_normalised_text():
    tok = build_tokenizer(tok_cfg(), TRAIN)
    text = "the cat sat on the mat ."
    assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text


def test_lowercase_and_punctuation_options():
    low = vocabulary(build_tokenizer(tok_cfg(), TRAIN))
    assert "The" not in low and "the" in low
    assert "," in low and "." in low  # punctuation split off
    cased = vocabulary(build_tokenizer(tok_cfg(lowercase=False, split_punctuation=False), TRAIN))
    assert "The" in cased and "sat." in cased and "cat," in cased


def test_unicode_normalisation_and_accents():
    vocab = vocabulary(build_tokenizer(tok_cfg(), ["ﬁne Ｃafé"]))  # noqa: RUF001 - ligature, full-width C
    assert {"fine", "café"} <= set(vocab)
    stripped = vocabulary(build_tokenizer(tok_cfg(strip_accents=True), ["café"]))
    assert "cafe" in stripped


def test_min_freq_and_max_size():
    texts = ["a a a b b c"]
    assert set(vocabulary(build_tokenizer(tok_cfg(min_freq=2), texts))) == {
        "<pad>",
        "<unk>",
        "a",
        "b",
    }
    assert vocabulary(build_tokenizer(tok_cfg(max_size=3), texts)) == ["<pad>", "<unk>", "a"]


def test_bpe_round_trip():
    tok = build_tokenizer(tok_cfg(kind="bpe", max_size=60, min_freq=1), TRAIN * 5)
    ids = tok.encode("the cat sat", add_special_tokens=False).ids
    assert tok.decode(ids) == "the cat sat"


def test_encode_gives_csr_layout_and_truncates():
    tok = build_tokenizer(tok_cfg(), TRAIN)
    split = encode(tok, ["the cat", "", "a dog sat on the mat"], np.array([0, 1, 0]), max_len=4)
    assert split.offsets.tolist() == [0, 2, 2, 6]
    assert split.lengths.tolist() == [2, 0, 4]
    assert split.labels.tolist() == [0, 1, 0]
    vocab = vocabulary(tok)
    assert [vocab[i] for i in split.ids[2:6].tolist()] == ["a", "dog", "sat", "on"]


def test_saved_tokenizer_loads_back(tmp_path):
    tok = build_tokenizer(tok_cfg(), TRAIN)
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = build_tokenizer(tok_cfg(path=str(tmp_path / "tokenizer.json")), ["ignored"])
    assert vocabulary(loaded) == vocabulary(tok)


@pytest.mark.parametrize("norm", ["none", "nfc", "nfd", "nfkc", "nfkd"])
def test_every_normalisation_builds(norm):
    assert "cat" in vocabulary(build_tokenizer(tok_cfg(normalization=norm), TRAIN))


def test_ascii_texts_skip_unicode_normalisation_with_the_same_ids():
    tok = build_tokenizer(tok_cfg(strip_accents=True), TRAIN)  # ASCII train: trained by the twin
    # the tokenizer it returns still normalises what is not ASCII
    assert tok.normalizer.normalize_str("ﬁne Ｃafé") == "fine cafe"  # noqa: RUF001
    twin = ascii_twin(tok)
    assert twin.normalizer.normalize_str("The ﬁ") == "the ﬁ"  # lowercases, no NFKC
    # not ASCII, so trained without the twin; its one text adds to the most frequent word
    full = build_tokenizer(tok_cfg(strip_accents=True), [*TRAIN, "Ｔhe"])  # noqa: RUF001
    assert vocabulary(full) == vocabulary(tok)
    texts = ["The CAT sat on the mat.", "a ﬁne dog", "A cat, a dog!", "Ｃat café"]  # noqa: RUF001
    got = encode(tok, texts, chunk=1)  # chunks of one: ASCII ones go through the twin
    want = [full.encode(t, add_special_tokens=False).ids for t in texts]
    assert [
        got.ids[a:b].tolist() for a, b in zip(got.offsets[:-1], got.offsets[1:], strict=True)
    ] == want
    vocab = vocabulary(tok)
    assert [vocab[i] for i in want[3]] == ["cat", "<unk>"]  # full-width C folded by NFKC


def test_ascii_twin_only_for_steps_it_can_vouch_for():
    from tokenizers import normalizers

    assert (
        ascii_twin(build_tokenizer(tok_cfg(normalization="none", lowercase=False), TRAIN)) is None
    )
    assert ascii_twin(build_tokenizer(tok_cfg(normalization="none"), TRAIN)) is None  # lowercase
    tok = build_tokenizer(tok_cfg(), TRAIN)
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("a", "b")])
    assert ascii_twin(tok) is None  # Replace changes ASCII text
    tok.normalizer = normalizers.NFKC()
    assert ascii_twin(tok).normalizer is None


def test_encode_sees_tokens_added_after_an_earlier_encode():
    tok = build_tokenizer(tok_cfg(), TRAIN)
    assert encode(tok, ["the zebra"]).ids.tolist()[1] == 1  # <unk>, through the ASCII twin
    tok.add_tokens(["zebra"])  # as pretrained words extend a vocabulary
    zebra = tok.token_to_id("zebra")
    assert encode(tok, ["the zebra"]).ids.tolist()[1] == zebra != 1


def _hf_ids(tok, texts, max_len=None):
    """The tokenizer's own encode (no twin, no Python word path): flat ids and lengths."""
    lists = [e.ids[:max_len] for e in tok.encode_batch(texts, add_special_tokens=False)]
    return [i for ids in lists for i in ids], [len(ids) for ids in lists]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"lowercase": False},
        {"split_punctuation": False},
        {"normalization": "none", "lowercase": False, "split_punctuation": False},
        {"strip_accents": True, "bos_token": "<bos>", "eos_token": "<eos>"},
    ],
)
def test_the_python_word_path_gives_the_tokenizers_ids_on_every_ascii_character(kw):
    from embedlab.data.tokenizer import _encode_words, word_lookup

    rng = np.random.default_rng(0)
    alphabet = [chr(c) for c in range(1, 128)]  # every ASCII character but NUL
    words = ["cat", "Dog", "the", "a_b", "x1", "don't", "<unkx", "..."]
    pieces = alphabet + words + [" ", "  "] * 20

    def text(n):
        return "".join(rng.choice(pieces, size=n))

    train = [text(40) for _ in range(300)]
    tok = build_tokenizer(tok_cfg(min_freq=2, **kw), train)
    texts = [text(int(rng.integers(0, 60))) for _ in range(700)] + ["", "   ", "\x1c\x1f"]
    ids, lengths = _encode_words(word_lookup(tok), texts)  # the path under test, all of them
    want_ids, want_lengths = _hf_ids(tok, texts)
    assert ids.tolist() == want_ids and lengths.tolist() == want_lengths
    for max_len in (None, 7):  # and through encode(), chunk by chunk, truncated
        split = encode(tok, texts, max_len=max_len, chunk=128)
        want_ids, want_lengths = _hf_ids(tok, texts, max_len)
        assert split.ids.tolist() == want_ids
        assert np.diff(split.offsets.numpy()).tolist() == want_lengths
        assert 1 in want_ids  # unknown words too


def test_texts_with_nul_or_an_added_token_take_the_tokenizers_own_pass():
    tok = build_tokenizer(tok_cfg(), TRAIN)
    texts = ["the cat <unk> sat", "a\x00dog", "The <PAD> mat"]
    split = encode(tok, texts)
    want_ids, want_lengths = _hf_ids(tok, texts)
    assert split.ids.tolist() == want_ids and np.diff(split.offsets).tolist() == want_lengths
    assert want_ids[2] == 1  # "<unk>" is the special token here, one id, not "<", "unk", ">"


def test_the_python_word_path_is_only_for_word_level_whitespace_tokenizers():
    from embedlab.data.tokenizer import word_lookup

    tok = build_tokenizer(tok_cfg(), TRAIN)
    assert word_lookup(tok) is not None
    assert word_lookup(build_tokenizer(tok_cfg(kind="bpe"), TRAIN * 20)) is None
    tok.enable_truncation(2)  # a tokenizer that truncates itself keeps its own pass
    assert word_lookup(tok) is None


def test_a_chunk_of_mixed_texts_encodes_its_ascii_texts_in_python_and_keeps_their_order(
    monkeypatch,
):
    import embedlab.data.tokenizer as tokenizer_module

    calls = []
    encode_words = tokenizer_module._encode_words

    def counted(lookup, texts):
        calls.append(len(texts))
        return encode_words(lookup, texts)

    monkeypatch.setattr(tokenizer_module, "_encode_words", counted)
    tok = build_tokenizer(tok_cfg(), TRAIN + ["Café crème, naïve Straße"])
    fullwidth = "\uff21\uff22\uff23"  # NFKC makes it "ABC"
    others = ["Café crème!", f"{fullwidth} the cat", "naïve dog 🐱.", "Straße"]
    texts = [t for pair in zip(TRAIN * 2, others + others[:2], strict=True) for t in pair]
    for max_len in (None, 2):
        split = encode(tok, texts, max_len=max_len, chunk=5)
        want_ids, want_lengths = _hf_ids(tok, texts, max_len)
        assert split.ids.tolist() == want_ids
        assert np.diff(split.offsets.numpy()).tolist() == want_lengths
    assert calls and sum(calls) == 2 * len(TRAIN * 2)  # every ASCII text, both passes
