"""Tokenized-data cache (keyed by content) and word n-gram features."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from embedlab.config import TokenizerConfig
from embedlab.data.cache import cache_key, ngram_splits, tokenize_splits
from embedlab.data.datamodule import ClassificationDataModule
from embedlab.data.tokenizer import NgramVocab, build_tokenizer, encode, tensor_to_list
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
        tok1, enc1, status1, _ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
        tok2, enc2, status2, _ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
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
    *_, status, entry = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path, enabled=False)
    assert status == "off" and entry is None and not (tmp_path / "tokenized").exists()
    tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    entry = next((tmp_path / "tokenized").iterdir())
    (entry / "train.ids.npy").write_bytes(b"garbage")
    _, enc, status, _ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
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
    # ngrams.json (lists) and checkpoints (tensors) restore the same n-grams
    again = NgramVocab.from_dict(json.loads(json.dumps(ng.to_dict(), default=tensor_to_list)))
    assert torch.equal(again.transform(enc).ids, out.ids)
    assert torch.equal(NgramVocab.from_dict(ng.to_dict()).transform(enc).ids, out.ids)


def test_ngrams_counted_and_placed_a_chunk_of_texts_at_a_time_match_one_pass(monkeypatch):
    import embedlab.data.tokenizer as tokenizer_module

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 9))) for _ in range(500)]
    tok = build_tokenizer(OmegaConf.structured(TokenizerConfig), texts)
    enc = encode(tok, texts)
    whole = NgramVocab(3, min_freq=2).fit(enc, tok.get_vocab_size())
    expected = whole.transform(enc)
    monkeypatch.setattr(tokenizer_module, "NGRAM_CHUNK", 37)  # 14 chunks, the last one short
    chunked = NgramVocab(3, min_freq=2).fit(enc, tok.get_vocab_size())
    for order in (2, 3):
        assert np.array_equal(chunked.keys[order], whole.keys[order])
        assert np.array_equal(chunked.ids[order], whole.ids[order])
    out = chunked.transform(enc)
    assert len(whole) > 50 and out.ids.numel() > enc.ids.numel()
    assert torch.equal(out.ids, expected.ids)
    assert torch.equal(out.offsets, expected.offsets)


@pytest.mark.parametrize(("min_freq", "max_size"), [(1, None), (2, None), (1, 40), (3, 7)])
def test_ngram_ids_rank_by_count_then_order_then_key(min_freq, max_size):
    # the rule, as the plain Python sort of (count, order, key) states it
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(12)]  # few words: many n-grams tie on their counts
    texts = [" ".join(rng.choice(words, size=rng.integers(0, 7))) for _ in range(300)]
    tok = build_tokenizer(OmegaConf.structured(TokenizerConfig), texts)
    enc = encode(tok, texts)
    size = tok.get_vocab_size()
    ng = NgramVocab(3, min_freq=min_freq, max_size=max_size).fit(enc, size)
    found = []
    for order in (2, 3):
        keys = np.concatenate([_keys_of(enc, i, order, size) for i in range(len(texts))])
        uniq, counts = np.unique(keys, return_counts=True)
        found += [
            (int(c), order, int(k)) for k, c in zip(uniq, counts, strict=True) if c >= min_freq
        ]
    found.sort(key=lambda x: (-x[0], x[1], x[2]))
    found = found[:max_size]
    assert len(ng) == len(found) and len({c for c, _, _ in found}) < len(found)  # ties
    for rank, (_, order, key) in enumerate(found):
        at = int(np.searchsorted(ng.keys[order], key))
        assert ng.keys[order][at] == key and ng.ids[order][at] == size + rank


def _keys_of(enc, i: int, order: int, size: int) -> np.ndarray:
    ids = enc.ids[enc.offsets[i] : enc.offsets[i + 1]].numpy()
    n = len(ids) - order + 1
    out = np.zeros(max(n, 0), dtype=np.int64)
    for j in range(order):
        out = out * size + ids[j : j + max(n, 0)]
    return out


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


def _entry(tmp_path: Path) -> Path:
    (entry,) = (tmp_path / "tokenized").iterdir()
    return entry


def test_an_altered_entry_is_detected_logged_and_rebuilt(tmp_path, caplog):
    """Labels reordered in place still load as arrays: the checksum catches it."""
    tok_cfg = OmegaConf.structured(TokenizerConfig)
    _, first, *_ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    labels = _entry(tmp_path) / "train.labels.npy"
    np.save(labels, np.load(labels)[::-1].copy())
    with caplog.at_level(logging.WARNING, logger="embedlab.data.cache"):
        _, again, status, _ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    assert status == "miss" and "does not verify" in caplog.text
    assert str(_entry(tmp_path)) in caplog.text  # names the entry
    assert torch.equal(again["train"].labels, first["train"].labels)
    assert tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)[2] == "hit"  # fixed for good


def test_ids_outside_the_vocabulary_are_refused_even_with_a_matching_manifest(tmp_path, caplog):
    from embedlab.checksums import manifest

    tok_cfg = OmegaConf.structured(TokenizerConfig)
    tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    entry = _entry(tmp_path)
    ids = np.load(entry / "train.ids.npy")
    ids[0] = 10**6
    np.save(entry / "train.ids.npy", ids)
    meta = json.loads((entry / "meta.json").read_text())
    meta["splits"]["train"]["arrays"]["train.ids.npy"] = manifest({"x": ids})["x"]
    (entry / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="embedlab.data.cache"):
        _, enc, status, _ = tokenize_splits(_dataset(TEXTS), tok_cfg, None, tmp_path)
    assert status == "miss" and "token ids outside" in caplog.text
    assert int(enc["train"].ids.max()) < 20


def _build(args: tuple[str, int]) -> str:
    cache_dir, _ = args
    tok_cfg = OmegaConf.structured(TokenizerConfig)
    texts = [f"text {i} with words {i % 7} and more {i % 13}" for i in range(20000)]
    return tokenize_splits(_dataset(texts), tok_cfg, None, cache_dir)[2]


def test_two_processes_building_the_same_entry_leave_one_good_entry(tmp_path):
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        statuses = pool.map(_build, [(str(tmp_path), 0), (str(tmp_path), 1)])
    assert set(statuses) <= {"miss", "hit"}
    assert len(list((tmp_path / "tokenized").iterdir())) == 1  # no temporary folders left
    assert _build((str(tmp_path), 2)) == "hit"  # and it verifies


def test_a_vector_cache_entry_of_the_wrong_shape_is_rebuilt(tmp_path, caplog):
    from embedlab.embeddings.vectors.align import load_aligned

    vec = tmp_path / "v.txt"
    vec.write_text("cat 1 2\ndog 3 4\n")
    first = load_aligned(vec, ["cat", "dog", "emu"], cache_dir=tmp_path / "c")
    (entry,) = (tmp_path / "c" / "vectors").iterdir()
    obj = torch.load(entry, weights_only=True)
    obj["vectors"] = torch.zeros(2, 2)  # one row short
    torch.save(obj, entry)
    with caplog.at_level(logging.WARNING, logger="embedlab.embeddings.vectors.align"):
        again = load_aligned(vec, ["cat", "dog", "emu"], cache_dir=tmp_path / "c")
    assert again["stats"]["cached"] is False and "ignoring vector cache" in caplog.text
    assert torch.equal(again["vectors"], first["vectors"])
    assert load_aligned(vec, ["cat", "dog", "emu"], cache_dir=tmp_path / "c")["stats"]["cached"]


NGRAM_TEXTS = TEXTS * 3 + TEXTS[:1]  # "the cat sat" 4 times, the others 3


def _ngram_run(tmp_path: Path, min_freq: int = 1) -> tuple[NgramVocab, dict, Path]:
    tok_cfg = OmegaConf.structured(TokenizerConfig)
    tok, enc, _, entry = tokenize_splits(_dataset(NGRAM_TEXTS), tok_cfg, None, tmp_path)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    ngrams, out = ngram_splits(enc, vocab, 3, min_freq, None, entry)
    return ngrams, out, entry


def _same_ngrams(a: tuple[NgramVocab, dict], b: tuple[NgramVocab, dict]) -> None:
    assert a[0].to_dict().keys() == b[0].to_dict().keys()
    for part in ("keys", "ids"):
        for order, values in a[0].to_dict()[part].items():
            assert torch.equal(values, b[0].to_dict()[part][order])
    assert a[1].keys() == b[1].keys()
    for name, split in a[1].items():
        other = b[1][name]
        assert torch.equal(split.ids, other.ids) and torch.equal(split.offsets, other.offsets)
        assert torch.equal(split.labels, other.labels)


def test_ngrams_are_kept_with_the_tokenized_entry_and_served_verified(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="embedlab.data.cache"):
        first = _ngram_run(tmp_path)
        assert "n-gram cache hit" not in caplog.text
        second = _ngram_run(tmp_path)
    assert "n-gram cache hit" in caplog.text
    _same_ngrams(first, second)
    entry = first[2]
    assert len(list(entry.glob("ngrams-*"))) == 1
    assert len(first[0]) > 0 and first[1]["train"].ids.max() >= len(first[0])  # n-gram ids in
    # another setting: an entry of its own, its own n-grams
    fewer = _ngram_run(tmp_path, min_freq=4)
    assert len(list(entry.glob("ngrams-*"))) == 2 and len(fewer[0]) < len(first[0])
    # not cached: the same result, nothing written
    tok, enc, *_ = tokenize_splits(
        _dataset(NGRAM_TEXTS), OmegaConf.structured(TokenizerConfig), None, None
    )
    vocab = tok.get_vocab_size(with_added_tokens=True)
    alone = ngram_splits(enc, vocab, 3, 1, None, None)
    assert len(alone[0]) == len(first[0])
    assert torch.equal(alone[1]["train"].ids, first[1]["train"].ids)


def test_an_altered_ngram_entry_is_rebuilt(tmp_path, caplog):
    first = _ngram_run(tmp_path)
    (sub,) = first[2].glob("ngrams-*")
    ids = np.load(sub / "train.ids.npy")
    np.save(sub / "train.ids.npy", ids[::-1].copy())  # same shape and dtype, other content
    with caplog.at_level(logging.WARNING, logger="embedlab.data.cache"):
        again = _ngram_run(tmp_path)
    assert "n-gram cache" in caplog.text and "does not verify" in caplog.text
    assert str(sub) in caplog.text
    _same_ngrams(first, again)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="embedlab.data.cache"):
        _ngram_run(tmp_path)
    assert "n-gram cache hit" in caplog.text  # fixed for good


def _files_module(make_cfg, train: Path, *extra: str) -> ClassificationDataModule:
    from embedlab.config import validate

    cfg = validate(make_cfg("data=files", f"data.train={train}", *extra, tiny=False))
    assert cfg.tokenizer.ngrams == 2  # model=boe: word n-grams, so no raw text is needed later
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, seed=cfg.seed)
    dm.setup()
    return dm


def _write_train(path: Path, rows: int) -> None:
    lines = "".join(f"word{i % 7} common thing{i % 3},{'xy'[i % 2]}\n" for i in range(rows))
    path.write_text("text,label\n" + lines)


def test_a_second_run_takes_the_files_from_the_cache_by_their_bytes(make_cfg, tmp_path, caplog):
    train = tmp_path / "train.csv"
    _write_train(train, 60)
    first = _files_module(make_cfg, train)
    with caplog.at_level(logging.INFO, logger="embedlab.data.cache"):
        second = _files_module(make_cfg, train)
    assert (first.cache_status, second.cache_status) == ("miss", "hit (the files' bytes)")
    assert "files and tokens from the cache" in caplog.text
    assert second.vocab == first.vocab and second.label_names == first.label_names == ["x", "y"]
    assert second.dataset.info["name"] == first.dataset.info["name"] == "train"
    for name, split in first.encoded.items():
        other = second.encoded[name]
        assert torch.equal(split.ids, other.ids) and torch.equal(split.offsets, other.offsets)
        assert torch.equal(split.labels, other.labels)
    # other bytes in the file: read again (one more row)
    _write_train(train, 61)
    third = _files_module(make_cfg, train)
    assert (
        third.cache_status == "miss"
        and len(third.encoded["train"]) + len(third.encoded["val"])
        == len(first.encoded["train"]) + len(first.encoded["val"]) + 1
    )
    # another seed carves another val split: not the same note
    assert _files_module(make_cfg, train, "seed=7").cache_status == "miss"


def test_a_note_that_disagrees_with_its_entry_is_ignored(make_cfg, tmp_path, caplog):
    train = tmp_path / "train.csv"
    _write_train(train, 60)
    first = _files_module(make_cfg, train)
    (note,) = (tmp_path / "cache" / "sources").glob("*.json")
    meta = json.loads(note.read_text())
    meta["sizes"]["train"] += 1
    note.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="embedlab.data.cache"):
        again = _files_module(make_cfg, train)
    assert again.cache_status == "hit" and "ignoring the cached read" in caplog.text
    assert str(note) in caplog.text
    assert torch.equal(again.encoded["train"].ids, first.encoded["train"].ids)
    assert _files_module(make_cfg, train).cache_status == "hit (the files' bytes)"  # noted anew
