"""Language modelling: the embedded corpus, text files, windows/sentences, perplexity, train()."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from embedlab.config import TokenizerConfig
from embedlab.data import synthetic_lm
from embedlab.data.lm import IGNORE, LanguageModelDataModule
from embedlab.data.sources import SyntheticLMConfig, TextFilesLMConfig, load_text_files
from embedlab.errors import DataError
from embedlab.models.transformer import TransformerEncoder, TransformerLM
from embedlab.train import train

# tiny models: one intra-op thread is faster than two on a shared 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


def datamodule(chunking: str = "stream", block_size: int = 16, **data) -> LanguageModelDataModule:
    d = OmegaConf.structured(SyntheticLMConfig(block_size=block_size, chunking=chunking, **data))
    tok = OmegaConf.structured(TokenizerConfig(bos_token="<bos>", eos_token="<eos>"))
    dm = LanguageModelDataModule(d, tok, None, seed=0)
    dm.setup()
    return dm


def test_synthetic_corpus_is_seeded_and_has_structure():
    a = synthetic_lm.generate({"train": 300}, seed=1)["train"].texts
    b = synthetic_lm.generate({"train": 300}, seed=1)["train"].texts
    c = synthetic_lm.generate({"train": 300}, seed=2)["train"].texts
    assert a == b and a != c
    assert all(t.endswith(" .") for t in a)
    first = Counter(t.split()[0] for t in a)
    assert set(first) <= {"the", "a", "this", "every", "some", "these", "many"}
    # agreement: a plural determiner is never followed directly by a singular noun form
    nouns_sg = {w[:-1] for t in a for w in t.split() if w.endswith("s")}
    for t in a:
        words = t.split()
        if words[0] in ("these", "many", "some") and words[1] in nouns_sg:
            pytest.fail(f"plural determiner before a singular noun: {t}")


def test_stream_windows_predict_every_token_once():
    dm = datamodule("stream", block_size=16, num_train=200, num_val=50, num_test=50)
    ds = dm.datasets["val"]
    stream = dm.encoded["val"].ids
    batch = ds.__getitems__(list(range(len(ds))))
    assert batch["ids"].shape == (len(ds), 16) and batch["targets"].shape == (len(ds), 16)
    targets = batch["targets"].reshape(-1)
    assert torch.equal(targets[targets != IGNORE], stream[1:])
    assert int((targets != IGNORE).sum()) == ds.num_tokens == len(stream) - 1
    # every text ends in <eos>, which the stream keeps between texts
    assert int((stream == dm.eos_id).sum()) == len(dm.dataset.splits["val"])


def test_sentence_batches_wrap_in_bos_eos_and_ignore_pads():
    dm = datamodule("sentence", block_size=8, num_train=200, num_val=40, num_test=40)
    ds = dm.datasets["val"]
    batch = ds.__getitems__([0, 1, 2, 3])
    ids, targets = batch["ids"], batch["targets"]
    assert (ids[:, 0] == dm.bos_id).all() and ids.shape[1] <= 8
    assert torch.equal(
        ids[:, 1:][targets[:, :-1] != IGNORE], targets[:, :-1][targets[:, :-1] != IGNORE]
    )
    assert (ids[targets == IGNORE] == dm.pad_id).all() or ids.shape[1] == 8
    lengths = dm.encoded["val"].lengths[:4]
    assert torch.equal((targets != IGNORE).sum(1), lengths - 1)
    train_batches = list(iter(dm.train_dataloader()))
    assert sum(len(b["ids"]) for b in train_batches) == len(dm.datasets["train"])


def test_text_files_source(tmp_path):
    (tmp_path / "tr.txt").write_text(" the cat sat \n\n a dog ran \n")
    (tmp_path / "va.txt").write_text("the dog sat\n")
    cfg = OmegaConf.structured(
        TextFilesLMConfig(root=str(tmp_path), train="tr.txt", val="va.txt", test=None)
    )
    ds = load_text_files(cfg, None)
    assert ds.splits["train"].texts == ["the cat sat", "a dog ran"]
    assert ds.splits["val"].texts == ["the dog sat"] and "test" not in ds.splits
    assert ds.splits["train"].labels is None
    cfg.val = "missing.txt"
    with pytest.raises(DataError, match=r"data\.val: file not found"):
        load_text_files(cfg, None)
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    cfg.val, cfg.train = None, "bad.txt"
    with pytest.raises(DataError, match=r"bad\.txt:2"):
        load_text_files(cfg, None)
    cfg.on_bad_rows = "skip"  # the same reader and policy as data=files: drop and count
    assert load_text_files(cfg, None).splits["train"].texts == ["ok"]


def _perplexity(model: nn.Module, loader) -> float:
    nll, n = 0.0, 0
    model.eval()
    with torch.no_grad():
        for b in loader:
            logits = model(b["ids"])
            nll += float(
                F.cross_entropy(
                    logits.flatten(0, 1),
                    b["targets"].flatten(),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
            )
            n += int((b["targets"] != IGNORE).sum())
    model.train()
    return math.exp(nll / n)


def _train_lm(
    dm: LanguageModelDataModule, positional: str, steps: int, lr: float = 1e-2
) -> tuple[float, float]:
    """Train a tiny tied LM for ``steps`` steps; (val perplexity before, after)."""
    torch.manual_seed(0)
    emb = nn.Embedding(len(dm.vocab), 32, padding_idx=dm.pad_id)
    nn.init.normal_(emb.weight, std=0.02)
    # unit-amplitude sin/cos would drown std-0.02 token vectors: scale them as Vaswani et al. do
    enc = TransformerEncoder(
        emb,
        32,
        4,
        1,
        64,
        0.0,
        positional=positional,
        max_positions=64,
        scale_embedding=positional == "sinusoidal",
    )
    model = TransformerLM(enc, tie_weights=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    before = _perplexity(model, dm.val_dataloader())
    step = 0
    while step < steps:
        for b in dm.train_dataloader():
            logits = model(b["ids"])
            loss = F.cross_entropy(
                logits.flatten(0, 1), b["targets"].flatten(), ignore_index=IGNORE
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    return before, _perplexity(model, dm.val_dataloader())


def _unigram_perplexity(dm: LanguageModelDataModule) -> float:
    counts = torch.bincount(dm.encoded["train"].ids, minlength=len(dm.vocab)).double() + 1
    logp = (counts / counts.sum()).log()
    val = dm.encoded["val"].ids[1:]
    return math.exp(-float(logp[val].mean()))


@pytest.fixture(scope="module")
def corpus() -> LanguageModelDataModule:
    return datamodule(
        "stream", block_size=32, num_train=3000, num_val=200, num_test=50, batch_size=16
    )


def test_perplexity_beats_unigram_within_a_few_hundred_steps(corpus):
    unigram = _unigram_perplexity(corpus)
    before, after = _train_lm(corpus, "learned", steps=150)
    assert before > 0.8 * len(corpus.vocab)  # an untrained model is near-uniform
    # the bar: well below what word frequencies alone give (the grammar is learned, not just counts)
    assert after < 0.6 * unigram, (before, after, unigram)


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_every_positional_encoding_trains(corpus, positional):
    before, after = _train_lm(corpus, positional, steps=60)
    assert after < 0.5 * before, (before, after)


def test_train_lm_end_to_end(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    cfg = make_cfg(
        "experiment=lm_default",
        "data.num_train=600",
        "data.num_val=60",
        "data.num_test=60",
        "data.block_size=32",
        "model.num_layers=1",
        "model.max_positions=32",
    )
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    vocab = len(json.loads((run / "tokenizer.json").read_text())["model"]["vocab"])
    for key in ("val/ppl", "val/ppl_best", "test/ppl"):
        assert 1.0 < saved[key] < vocab, key  # better than a uniform guess
    assert saved["test/ppl"] == pytest.approx(metrics["test/ppl"])
    assert saved["val/ppl_best"] <= saved["val/ppl"] + 1e-6
    assert math.isclose(saved["test/ppl"], math.exp(saved["test/loss"]), rel_tol=1e-4)
    assert saved["examples_per_second"] > 0  # training tokens per second, kept through testing
    # an LM example is one predicted token: tokens/s is the same figure (experiment=lm_ptb too)
    assert saved["train_tokens_per_second"] == saved["examples_per_second"]
    # samples were logged as text each validation epoch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run), size_guidance={"tensors": 0})
    ea.Reload()
    samples = ea.Tensors("samples/text_summary")
    assert len(samples) == len(ea.Scalars("val/ppl")) >= 2  # one set per validation
    assert "<eos>" in samples[-1].tensor_proto.string_val[0].decode()


def test_lm_samples_are_seeded(make_cfg):
    from embedlab.tasks import TASKS

    cfg = make_cfg(
        "experiment=lm_default", "data.num_train=100", "data.num_val=20", "data.num_test=20"
    )
    _, module = TASKS.get("lm").setup(cfg)
    first = module.samples()
    assert len(first) == 3 and all(s.startswith("<eos>") for s in first)
    assert module.samples() == first
    cfg.task.generate.seed = 1
    module.generate_cfg = cfg.task.generate
    assert module.samples() != first


def test_bpe_tokenizer_sentence_chunking():
    d = OmegaConf.structured(
        SyntheticLMConfig(
            block_size=12, chunking="sentence", num_train=300, num_val=30, num_test=30
        )
    )
    tok = OmegaConf.structured(
        TokenizerConfig(kind="bpe", max_size=120, min_freq=2, bos_token="<bos>", eos_token="<eos>")
    )
    dm = LanguageModelDataModule(d, tok, None, seed=0)
    dm.setup()
    assert len(dm.vocab) <= 120
    enc = dm.encoded["val"]
    assert (enc.ids[enc.offsets[:-1]] == dm.bos_id).all()
    assert int(enc.lengths.max()) <= 13  # block_size inputs + 1 target
    full = enc.lengths < 13  # untruncated sentences end in <eos>
    assert (enc.ids[enc.offsets[1:][full] - 1] == dm.eos_id).all()


@pytest.mark.slow
def test_ptb_token_counts_match_the_reference(make_cfg, shared_data, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_DATA_DIR", str(shared_data))
    cfg = make_cfg("experiment=lm_ptb", tiny=False)
    dm = LanguageModelDataModule(cfg.data, cfg.tokenizer, cfg.paths, cfg.seed)
    dm.setup()
    # the PTB README: 929,589 / 73,760 / 82,430 tokens incl. <eos>; 10k types incl. <eos>
    assert {k: v.num_tokens + 1 for k, v in dm.datasets.items()} == {
        "train": 929589,
        "val": 73760,
        "test": 82430,
    }
    used = torch.unique(dm.encoded["train"].ids)
    assert len(used) == 10000


def test_lm_shares_the_embedding_policy_unfreeze_and_pretrained(make_cfg, tmp_path, monkeypatch):
    """task=lm gets the same embedding machinery as classification: pretrained rows with
    coverage, a frozen table that unfreezes at the configured epoch."""
    import torch

    from embedlab.config import validate
    from embedlab.errors import ConfigError
    from embedlab.tasks import TASKS

    monkeypatch.setenv("EMBEDLAB_NUM_THREADS", "1")
    base = [
        "experiment=lm_default",
        "data.num_train=300",
        "data.num_val=40",
        "data.num_test=40",
        "data.block_size=16",
        "model.num_layers=1",
        "model.max_positions=16",
        "trainer.max_epochs=2",
        "trainer.val_check_interval=1.0",
    ]
    # vectors for a few words of the corpus, written by the test in word2vec text format
    probe = make_cfg(*base)
    dm, _ = TASKS.get("lm").setup(probe)
    words = [w for w in dm.vocab if not w.startswith("<")][:5]
    dim = probe.embedding.dim
    vec_file = tmp_path / "vecs.txt"
    vec_file.write_text(
        f"{len(words)} {dim}\n" + "".join(f"{w} " + " ".join(["0.5"] * dim) + "\n" for w in words)
    )
    cfg = make_cfg(
        *base,
        "pretrained=file",
        f"pretrained.path={vec_file}",
        "embedding.unfreeze_at_epoch=1",
        "callbacks.checkpoint.save_last=true",
    )
    cfg.paths.output_dir = str(tmp_path / "lm_run")
    _, module = TASKS.get("lm").setup(cfg)
    assert module.embedding_report["coverage_types"] > 0
    table = module.embedding.weight
    row = dm.vocab.index(words[0])
    assert torch.allclose(table[row], torch.full((dim,), 0.5))
    assert not table.requires_grad  # frozen until epoch 1
    metrics = train(cfg)
    assert metrics["embedding/coverage_types"] == pytest.approx(
        module.embedding_report["coverage_types"]
    )
    last = tmp_path / "lm_run" / "checkpoints" / "last.ckpt"  # the weights after epoch 1
    trained = torch.load(last, map_location="cpu", weights_only=False)["state_dict"][
        "model.encoder.embedding.weight"
    ]
    assert not torch.allclose(trained[row], torch.full((dim,), 0.5))  # trained after unfreezing

    with pytest.raises(ConfigError, match="restrict_to_vocab"):
        validate(
            make_cfg(
                *base,
                "pretrained=file",
                f"pretrained.path={vec_file}",
                "pretrained.restrict_to_vocab=false",
            )
        )
