"""Tokenized-data cache (keyed by content) and word n-gram features."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from embedlab.config import TokenizerConfig
from embedlab.data.cache import cache_key, tokenize_splits
from embedlab.data.datamodule import ClassificationDataModule
from embedlab.data.tokenizer import NgramVocab, build_tokenizer, encode
from embedlab.data.types import TextDataset, TextSplit


def _dataset(texts: list[str]) -> TextDataset:
    labels = np.arange(len(texts), dtype=np.int64) % 2
    return TextDataset(
        {"train": TextSplit(texts, labels), "test": TextSplit(texts[:2], labels[:2])}, ["a", "b"]
    )


TEXTS = ["the cat sat", "a dog ran far", "the dog sat down", "cats and dogs"]


def test_second_run_hits_the_cache_and_gives_identical_arrays(tmp_path, caplog):
    tok_cfg = OmegaConf.structured(TokenizerConfig)
    with caplog.at_level(logging.INFO, logger="embedlab.data.cache"):
        tok1, enc1, status1 = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
        tok2, enc2, status2 = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    assert (status1, status2) == ("miss", "hit")
    assert "tokenized cache hit" in caplog.text and "tokenized and cached" in caplog.text
    assert tok1.get_vocab() == tok2.get_vocab()
    for name in enc1:
        assert torch.equal(enc1[name].ids, enc2[name].ids)
        assert torch.equal(enc1[name].offsets, enc2[name].offsets)
        assert torch.equal(enc1[name].labels, enc2[name].labels)
    entries = list((tmp_path / "tokenized").iterdir())
    assert len(entries) == 1 and {p.name for p in entries[0].iterdir()} >= {
        "tokenizer.json",
        "train.ids.npy",
        "meta.json",
    }


def test_key_changes_with_texts_labels_tokenizer_and_max_len():
    base = OmegaConf.structured(TokenizerConfig)
    key = cache_key(_dataset(TEXTS), base, None)
    assert cache_key(_dataset(TEXTS), base, None) == key
    assert cache_key(_dataset([*TEXTS[:-1], "cats and dogs!"]), base, None) != key
    flipped = _dataset(TEXTS)
    flipped.splits["train"].labels = 1 - flipped.splits["train"].labels
    assert cache_key(flipped, base, None) != key
    assert cache_key(_dataset(TEXTS), OmegaConf.merge(base, {"lowercase": False}), None) != key
    assert cache_key(_dataset(TEXTS), base, 2) != key
    # the n-gram options act after the cache, so they share the entry
    assert cache_key(_dataset(TEXTS), OmegaConf.merge(base, {"ngrams": 2}), None) == key


def test_cache_off_and_a_broken_entry_is_rebuilt(tmp_path):
    tok_cfg = OmegaConf.structured(TokenizerConfig)
    *_, status = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path, enabled=False)
    assert status == "off" and not (tmp_path / "tokenized").exists()
    tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    entry = next((tmp_path / "tokenized").iterdir())
    (entry / "train.ids.npy").write_bytes(b"garbage")
    _, enc, status = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    assert status == "hit" or status == "miss"
    assert enc["train"].ids.numel() == 14


def test_datamodule_reports_cache_status_and_saves_label_names(make_cfg, tmp_path: Path):
    train = tmp_path / "train.csv"
    train.write_text(
        "text,label\n" + "".join(f"word{i % 7} common,{'xy'[i % 2]}\n" for i in range(40))
    )
    cfg = make_cfg("data=files", f"data.train={train}", tiny=False)
    dm1 = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, seed=0)
    dm1.setup()
    dm2 = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, seed=0)
    dm2.setup()
    assert (dm1.cache_status, dm2.cache_status) == ("miss", "hit")
    dm2.save(tmp_path / "run")
    assert (tmp_path / "run" / "labels.json").read_text().split() == ["[", '"x",', '"y"', "]"]


def test_ngrams_exact_ids_min_freq_and_no_crossing_texts():
    cfg = OmegaConf.structured(TokenizerConfig)
    texts = ["not good at all", "not good", "good at all", "very good"]
    tok = build_tokenizer(cfg, texts)
    v = tok.get_vocab()
    enc = encode(tok, texts)
    ng = NgramVocab(2, min_freq=2).fit(enc, len(v))
    names = ng.tokens([t for t, _ in sorted(v.items(), key=lambda kv: kv[1])])
    assert sorted(names) == [
        "at_all",
        "good_at",
        "not_good",
    ]  # each seen twice; "all_not" spans two texts
    out = ng.transform(enc)
    first = out.ids[out.offsets[0] : out.offsets[1]].tolist()
    assert first[:4] == enc.ids[:4].tolist()  # words first, then the text's bigrams in order
    assert [names[i - len(v)] for i in first[4:]] == ["not_good", "good_at", "at_all"]
    last = out.ids[out.offsets[3] : out.offsets[4]].tolist()
    assert last == enc.ids[enc.offsets[3] : enc.offsets[4]].tolist()  # "very good" was seen once
    assert ng.transform(encode(tok, ["all not"])).ids.numel() == 2  # unseen bigram dropped
    again = NgramVocab.from_dict(json.loads(json.dumps(ng.to_dict())))
    assert torch.equal(again.transform(enc).ids, out.ids)


def test_trigrams_and_max_size():
    cfg = OmegaConf.structured(TokenizerConfig)
    texts = ["a b c d"] * 3 + ["a b"]
    tok = build_tokenizer(cfg, texts)
    enc = encode(tok, texts)
    ng = NgramVocab(3, min_freq=1).fit(enc, tok.get_vocab_size())
    assert len(ng) == 3 + 2  # ab bc cd + abc bcd
    assert ng.transform(enc).lengths.tolist() == [9, 9, 9, 3]
    capped = NgramVocab(3, min_freq=1, max_size=1).fit(enc, tok.get_vocab_size())
    vocab = sorted(tok.get_vocab(), key=tok.get_vocab().get)
    assert capped.tokens(vocab) == ["a_b"]  # the most frequent (4 times)


def test_ngrams_with_a_vocabulary_extended_by_pretrained_words_is_a_config_error(make_cfg):
    import pytest

    from embedlab.config import validate
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tokenizer\.ngrams: .*restrict_to_vocab"):
        validate(make_cfg("tokenizer.ngrams=2", "pretrained.restrict_to_vocab=false"))
    validate(make_cfg("tokenizer.ngrams=2"))
