"""After training: embedlab-eval, embedlab.load / embedlab-predict, embedlab-export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import embedlab
from embedlab.config import validate
from embedlab.errors import DataError
from embedlab.evaluate import evaluate
from embedlab.export import ExportArgs, export
from embedlab.predict import PredictArgs, predict
from embedlab.train import train
from tests.conftest import QUIET, compose_cfg, compose_eval

LABELS = ["neg", "pos", "meh"]
WORDS = {"neg": "awful dull bad", "pos": "great fine good", "meh": "okay plain so-so"}


def _write_files(folder: Path, rows: int, seed: int) -> dict[str, Path]:
    """Tiny labelled TSV splits: each label owns three words, plus shared filler words."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", rows), ("val", rows // 4), ("test", rows // 4)):
        lines = ["label\ttext"]
        for _ in range(n):
            label = LABELS[rng.integers(3)]
            words = list(rng.choice(WORDS[label].split(), 2)) + list(
                rng.choice(["the", "a", "film", "plot", "actor", "scene"], 4)
            )
            lines.append(f"{label}\t{' '.join(rng.permutation(words))}")
        paths[split] = folder / f"{split}.tsv"
        paths[split].write_text("\n".join(lines) + "\n")
    return paths


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One trained bag-of-embeddings run on tiny files (bigrams, sparse table)."""
    tmp = tmp_path_factory.mktemp("run")
    files = _write_files(tmp / "data", 600, seed=0)
    cfg = compose_cfg(
        QUIET
        + [
            "data=files",
            f"data.train={files['train']}",
            f"data.val={files['val']}",
            f"data.test={files['test']}",
            "trainer.max_epochs=3",
        ],
        tmp,
    )
    metrics = train(validate(cfg))
    return {"metrics": metrics, "ckpt": metrics["best_checkpoint"], "files": files, "tmp": tmp}


def test_eval_reproduces_the_runs_test_metrics_exactly(run, tmp_path):
    metrics = evaluate(compose_eval([f"ckpt={run['ckpt']}"], tmp_path / "eval"))
    assert metrics["test/acc"] == run["metrics"]["test/acc"]
    assert metrics["test/f1"] == run["metrics"]["test/f1"]
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["test/acc"] == run["metrics"]["test/acc"]
    confusion = (tmp_path / "eval" / "confusion_matrix.csv").read_text().splitlines()
    assert confusion[0].split(",")[1:] == ["meh", "neg", "pos"]  # the checkpoint's label order
    counts = [list(map(int, line.split(",")[1:])) for line in confusion[1:]]
    assert sum(map(sum, counts)) == metrics["examples"] == 150
    correct = sum(counts[i][i] for i in range(3))
    assert correct / 150 == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 1000


def test_eval_on_a_lone_file_maps_labels_by_name_and_refuses_unseen_ones(run, tmp_path):
    test = run["files"]["test"]
    # the same rows with the label column last and the classes in another first-seen order
    rows = [line.split("\t") for line in test.read_text().splitlines()[1:]]
    other = tmp_path / "other.tsv"
    other.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for lab, t in reversed(rows)))
    args = [f"ckpt={run['ckpt']}", "data=files", f"+data.test={other}"]
    metrics = evaluate(compose_eval(args, tmp_path / "eval"))
    assert metrics["test/acc"] == pytest.approx(run["metrics"]["test/acc"], abs=1e-6)

    unseen = tmp_path / "unseen.tsv"
    unseen.write_text("label\ttext\nneg\tbad film\nangry\tawful plot\n")
    args = [f"ckpt={run['ckpt']}", "data=files", f"+data.test={unseen}"]
    with pytest.raises(
        DataError, match=r"label\(s\) \['angry'\] that the checkpoint does not know"
    ):
        evaluate(compose_eval(args, tmp_path / "eval2"))


def test_test_only_run_uses_the_checkpoints_tokenizer_not_the_train_file(run, tmp_path):
    """train=false with a changed train file: the old rebuild gave a size mismatch."""
    files = _write_files(tmp_path / "changed", 300, seed=7)
    cfg = compose_cfg(
        QUIET
        + [
            "data=files",
            f"data.train={files['train']}",
            f"data.val={files['val']}",
            f"data.test={run['files']['test']}",
            "train=false",
            f"ckpt_path={run['ckpt']}",
        ],
        tmp_path,
    )
    metrics = train(validate(cfg))
    assert metrics["test/acc"] == run["metrics"]["test/acc"]


def test_load_predicts_like_the_trained_model_without_lightning_or_hydra(run):
    model = embedlab.load(run["ckpt"])
    rows = [line.split("\t") for line in run["files"]["test"].read_text().splitlines()[1:]]
    labels = [lab for lab, _ in rows]
    preds = model.predict([t for _, t in rows], top_k=2)
    acc = np.mean([p["label"] == lab for p, lab in zip(preds, labels, strict=True)])
    assert acc == pytest.approx(run["metrics"]["test/acc"], abs=1e-6)
    assert all(len(p["probs"]) == 2 for p in preds)
    assert list(preds[0]["probs"].values()) == sorted(preds[0]["probs"].values(), reverse=True)
    probs = model.predict_proba(["great good film", "awful bad plot"])
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    assert [model.labels[i] for i in probs.argmax(1)] == ["pos", "neg"]
    emb = model.embed(["great", "no-such-word"])
    good = model.vocab.index("great")
    assert torch.equal(emb[0], model.embedding.weight[good].detach())
    assert torch.equal(emb[1], model.embedding.weight[model.vocab.index("<unk>")].detach())

    code = (
        "import sys, embedlab; m = embedlab.load(sys.argv[1]); m.predict(['good film']); "
        "print(sorted(k for k in ('lightning', 'hydra') if k in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, run["ckpt"]], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_predict_writes_jsonl_and_csv_from_a_tsv_file(run, tmp_path):
    out = tmp_path / "preds.jsonl"
    args = PredictArgs(ckpt=run["ckpt"], input=str(run["files"]["test"]), output=str(out))
    records = predict(args)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(records) == 150
    assert lines[0]["label"] in LABELS and set(lines[0]["probs"]) == set(LABELS)
    out_csv = tmp_path / "preds.csv"
    predict(
        PredictArgs(
            ckpt=run["ckpt"],
            input=str(run["files"]["test"]),
            output=str(out_csv),
            format="csv",
            top_k=1,
        )
    )
    header = out_csv.read_text().splitlines()[0].split(",")
    assert header == ["text", "label", "label_1", "prob_1"]
    predict(
        PredictArgs(
            ckpt=run["ckpt"], input=str(run["files"]["test"]), output=str(out_csv), format="csv"
        )
    )
    header = out_csv.read_text().splitlines()[0].split(",")
    assert header == ["text", "label", "p_meh", "p_neg", "p_pos"]


def test_predict_cli_errors_are_one_line_and_exit_2(run):
    for argv, fragment in (
        ([f"ckpt={run['ckpt']}", "bogus=1"], "bogus: unknown key"),
        (["ckpt=/no/such.ckpt", "input=-"], "/no/such.ckpt: checkpoint file not found"),
        ([f"ckpt={run['ckpt']}", "input=/no/such.txt"], "/no/such.txt: input file not found"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "embedlab.predict", *argv], capture_output=True, text=True
        )
        assert proc.returncode == 2, proc.stderr
        assert fragment in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", ["vec", "word2vec-bin", "npy", "pt"])
def test_export_round_trips_through_the_vector_readers(run, tmp_path, fmt):
    from embedlab.embeddings.vectors import read_vectors

    suffix = {"vec": ".vec", "word2vec-bin": ".bin", "npy": ".npy", "pt": ".pt"}[fmt]
    out = tmp_path / f"v{suffix}"
    files = export(ExportArgs(ckpt=run["ckpt"], format=fmt, out=str(out)))
    assert files[0] == out
    model = embedlab.load(run["ckpt"])
    words = [w for w in model.vocab if not w.startswith("<") and "_" not in w]
    vocab_path = out.with_suffix(".vocab.txt") if fmt in ("npy", "pt") else None
    result = read_vectors(out, None, {w.encode() for w in words}, vocab_path=vocab_path)
    assert len(result.vectors) == len(words)
    for w in words:
        assert np.array_equal(result.vectors[w.encode()], model.embed([w])[0].numpy())


def test_exported_vectors_start_a_frozen_run_bit_identical(run, tmp_path):
    out = tmp_path / "trained.vec"
    export(ExportArgs(ckpt=run["ckpt"], format="vec", out=str(out)))
    from embedlab.tasks import TASKS

    cfg = compose_cfg(
        QUIET
        + [
            "data=files",
            f"data.train={run['files']['train']}",
            f"data.val={run['files']['val']}",
            "embedding=pretrained",
            "pretrained=file",
            f"pretrained.path={out}",
            "embedding.freeze=true",
            "tokenizer.ngrams=1",
        ],
        tmp_path,
    )
    dm, module = TASKS.get("classification").setup(validate(cfg))
    trained = embedlab.load(run["ckpt"])
    words = [w for w in dm.vocab if not w.startswith("<")]
    assert len(words) == 16  # 3 x 3 class words (so-so: "so", "-") + 6 fillers
    for w in words:
        assert torch.equal(module.embedding.weight[dm.vocab.index(w)], trained.embed([w])[0])


def test_gensim_reads_the_exports(run, tmp_path):
    gensim = pytest.importorskip("gensim")
    model = embedlab.load(run["ckpt"])
    for fmt, binary in (("vec", False), ("word2vec-bin", True)):
        out = tmp_path / f"v.{fmt}"
        export(ExportArgs(ckpt=run["ckpt"], format=fmt, out=str(out)))
        kv = gensim.models.KeyedVectors.load_word2vec_format(str(out), binary=binary)
        assert np.array_equal(kv["great"], model.embed(["great"])[0].numpy())


def test_neighbors_and_the_projector_export(run, tmp_path, capsys):
    found = export(ExportArgs(ckpt=run["ckpt"], neighbors=["great", "nope"], k=3))
    assert len(found["great"]) == 3 and found["nope"] == []
    assert "nope: (not in the vocabulary)" in capsys.readouterr().out
    model = embedlab.load(run["ckpt"])
    unit = torch.nn.functional.normalize(model.embed([w for w, _ in found["great"]]), dim=1)
    great = torch.nn.functional.normalize(model.embed(["great"]), dim=1)[0]
    assert [round(float(s), 4) for s in unit @ great] == [s for _, s in found["great"]]
    start = tmp_path / "start.vec"  # "before": the same table, so the same neighbours
    export(ExportArgs(ckpt=run["ckpt"], format="vec", out=str(start)))
    capsys.readouterr()
    export(ExportArgs(ckpt=run["ckpt"], neighbors=["great"], k=3, before=str(start)))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("great: ") and lines[1].strip() == "before: " + lines[0][7:]
    folder = tmp_path / "projector"
    export(ExportArgs(ckpt=run["ckpt"], format="tensorboard", out=str(folder)))
    assert (folder / "projector_config.pbtxt").is_file()
    metadata = next(folder.rglob("metadata.tsv")).read_text().splitlines()
    assert "great" in metadata and "<pad>" not in metadata


def test_lm_checkpoint_evaluates_and_generates(tmp_path):
    cfg = compose_cfg(
        QUIET
        + [
            "experiment=lm_default",
            "data.num_train=300",
            "data.num_val=40",
            "data.num_test=40",
            "trainer.max_epochs=1",
        ],
        tmp_path,
    )
    metrics = train(validate(cfg))
    evaluated = evaluate(compose_eval([f"ckpt={metrics['best_checkpoint']}"], tmp_path / "eval"))
    assert evaluated["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-6)
    lm = embedlab.load(metrics["best_checkpoint"])
    a = lm.generate("", max_new_tokens=8, seed=3)
    assert a == lm.generate("", max_new_tokens=8, seed=3)
    assert 1 <= len(a.split()) <= 8 and "<pad>" not in a  # starts after the eos (no bos here)
    prompt = a.split()[0]
    assert lm.generate(prompt, max_new_tokens=4, seed=1).split()[0] == prompt
    records = predict(
        PredictArgs(
            ckpt=metrics["best_checkpoint"],
            prompt="",
            num_samples=2,
            output=str(tmp_path / "g.jsonl"),
        )
    )
    assert [r["sample"] for r in records] == [0, 1]
