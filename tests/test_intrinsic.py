"""Intrinsic evaluation: similarity, analogies, neighbours and embedlab-vectors, on hand-made files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from embedlab.embeddings import intrinsic
from embedlab.vectors import main

# frequency order; 3-d vectors chosen so the answers below can be worked out by hand
TINY = {
    "man": (1, 0, 0),
    "woman": (0, 1, 0),
    "king": (1, 0, 1),
    "queen": (0, 1, 1),
    "apple": (0, 0, 1),
    "King": (5, 5, 5),  # a rarer case variant: "king" stands for the first row
}
# cos: man/king .707, man/woman 0, woman/apple 0, queen/apple .707, king/queen .5
PAIRS = "# comment\n# word1\tword2\tscore\nman\tking\t1.0\nking\tqueen\t3.0\nwoman\tapple\t2.0\nman\tzzz\t4.0\n"
# gold ranks (1, 3, 2), cosine ranks (3, 2, 1) over the 3 in-vocabulary pairs:
# d = (-2, 1, 1), rho = 1 - 6 * 6 / (3 * 8) = -0.5; coverage 3/4
ANALOGIES = (
    ": royal\n"
    "man king woman queen\n"  # king - man + woman = (-.29, 1, .71): queen (cos .96) -> right
    "Man Woman King Queen\n"  # woman - man + king: the same target (and lower-cased) -> right
    "king queen man apple\n"  # queen - king + man = (.29, .71, 0): woman (.92) -> wrong
    ": other\n"
    "man king zzz queen\n"  # zzz is out of vocabulary
)


def write_tiny(tmp_path: Path) -> dict[str, Path]:
    vec = tmp_path / "tiny.vec"
    rows = [f"{w} " + " ".join(str(x) for x in v) for w, v in TINY.items()]
    vec.write_text(f"{len(rows)} 3\n" + "\n".join(rows) + "\n")
    (tmp_path / "pairs.tsv").write_text(PAIRS)
    (tmp_path / "q.txt").write_text(ANALOGIES)
    return {"vec": vec, "pairs": tmp_path / "pairs.tsv", "analogy": tmp_path / "q.txt"}


def test_similarity_and_analogy_match_hand_computed_values(tmp_path: Path) -> None:
    f = write_tiny(tmp_path)
    wv = intrinsic.read_word_vectors(f["vec"])
    assert wv.words == list(TINY)
    sim = intrinsic.word_similarity(wv, intrinsic.read_pairs(f["pairs"]))
    assert sim["rho"] == pytest.approx(-0.5)
    assert sim["coverage"] == pytest.approx(0.75)
    ana = intrinsic.analogy_accuracy(wv, intrinsic.read_analogies(f["analogy"]))
    assert ana["accuracy"] == pytest.approx(2 / 3)
    assert ana["coverage"] == pytest.approx(0.75)
    # restricted to the first 3 rows, "queen" and "apple" are out: no question is answerable
    small = intrinsic.analogy_accuracy(wv, intrinsic.read_analogies(f["analogy"]), restrict=3)
    assert small["coverage"] == 0 and math.isnan(small["accuracy"])


def test_analogy_excludes_case_variants_of_the_question_words(tmp_path: Path) -> None:
    # "King" (5, 5, 5) is nearest to any target, but it is the question word "king"
    words = ["man", "woman", "king", "queen", "King"]
    vecs = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [5, 5, 5]], dtype=np.float32)
    import torch

    wv = intrinsic.WordVectors(words, torch.from_numpy(vecs))
    qs = intrinsic.Analogies("a", [("man", "king", "woman", "queen")], ["s"])
    assert intrinsic.analogy_accuracy(wv, qs)["accuracy"] == 1.0


def test_neighbors_rank_by_cosine(tmp_path: Path) -> None:
    wv = intrinsic.read_word_vectors(write_tiny(tmp_path)["vec"])
    near = intrinsic.neighbors(wv, ["queen", "nope"], k=2)
    assert list(near) == ["queen"]
    # queen (0, 1, 1): woman .707, apple .707, then King .816 is first
    assert [w for w, _ in near["queen"]] == ["King", "woman"]
    assert near["queen"][0][1] == pytest.approx(2 / math.sqrt(6), abs=1e-6)


def test_load_benchmarks_skips_absent_defaults_and_names_a_missing_explicit_file(
    tmp_path: Path,
) -> None:
    assert intrinsic.load_benchmarks(tmp_path / "nothing") == {}
    with pytest.raises(intrinsic.DataError, match="ws353 evaluation file not found"):
        intrinsic.load_benchmarks(tmp_path, {"ws353": str(tmp_path / "missing.tsv")})
    (tmp_path / "bad.tsv").write_text("a\tb\tx\n")
    with pytest.raises(intrinsic.DataError, match=r"bad.tsv:1: score 'x'"):
        intrinsic.read_pairs(tmp_path / "bad.tsv")


def test_cli_eval_json_and_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = write_tiny(tmp_path)
    args = ["eval", str(f["vec"]), "--eval-dir", str(tmp_path / "none")]
    args += [
        "--ws353",
        str(f["pairs"]),
        "--simlex",
        str(f["pairs"]),
        "--analogy",
        str(f["analogy"]),
    ]
    main(args + ["--json"])
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {
        "ws353",
        "simlex",
        "analogy",
        "ws353_coverage",
        "simlex_coverage",
        "analogy_coverage",
    }
    assert out["ws353"] == pytest.approx(-0.5) and out["analogy"] == pytest.approx(2 / 3)
    main(args)
    assert "analogy" in capsys.readouterr().out
    main(["neighbors", str(f["vec"]), "queen", "-k", "1"])
    assert capsys.readouterr().out.strip() == "queen: King 0.816"


@pytest.mark.parametrize("content", [None, "2 3\nman 1 0\nwoman 0 1 0\n"])
def test_cli_bad_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str | None
) -> None:
    f = write_tiny(tmp_path)
    path = tmp_path / "bad.vec"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(path), "--ws353", str(f["pairs"])])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err


GLOVE = Path("/tmp/glove/glove.6B.50d.txt")


@pytest.mark.slow
def test_eval_agrees_with_gensim_on_glove_6b_50d(capsys: pytest.CaptureFixture) -> None:
    """embedlab-vectors eval vs gensim's evaluate_word_pairs / evaluate_word_analogies."""
    gensim = pytest.importorskip("gensim")
    from tests.conftest import SHARED_DATA

    path = Path(__import__("os").environ.get("EMBEDLAB_GLOVE_50D", GLOVE))
    eval_dir = SHARED_DATA / "eval"
    if not path.is_file() or not eval_dir.is_dir():
        pytest.skip(f"needs {path} (shared/tools/glove-6b-50d) and {eval_dir}")
    main(["eval", str(path), "--eval-dir", str(eval_dir), "--json"])
    ours = json.loads(capsys.readouterr().out)
    kv = gensim.models.KeyedVectors.load_word2vec_format(
        str(path), no_header=True, limit=intrinsic.PAIRS_RESTRICT
    )
    for name, file in (("ws353", "wordsim353.tsv"), ("simlex", "simlex999.txt")):
        _, spearman, oov = kv.evaluate_word_pairs(str(eval_dir / file))
        assert abs(ours[name] - spearman.statistic) < 0.005, name
        assert abs(ours[f"{name}_coverage"] - (1 - oov / 100)) < 1e-9, name
    acc, _ = kv.evaluate_word_analogies(
        str(eval_dir / "questions-words.txt"), restrict_vocab=intrinsic.ANALOGY_RESTRICT
    )
    assert abs(ours["analogy"] - acc) < 0.005
