"""``embedlab-vectors``: intrinsic evaluation and nearest neighbours of any word-vector file.

``embedlab-vectors eval PATH`` prints Spearman rho on WordSim-353 and SimLex-999 and 3CosAdd
accuracy on the Google analogies, each with its coverage (``--json``: one JSON object);
``embedlab-vectors neighbors PATH WORD...`` prints each word's nearest neighbours. PATH is any
file the pretrained readers open (GloVe / word2vec / fastText text, word2vec binary, a
``.npy``/``.pt`` matrix with ``--vocab``, an embedlab run's ``vectors.vec``). The protocol is
in :mod:`embedlab.embeddings.intrinsic`. A bad file or path is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from embedlab.embeddings import intrinsic
from embedlab.errors import EmbedlabError


def _read(args: argparse.Namespace, limit: int | None) -> intrinsic.WordVectors:
    return intrinsic.read_word_vectors(args.path, args.format, args.vocab, limit=limit)


def _eval(args: argparse.Namespace) -> None:
    files = {
        name: value
        for name, value in (
            ("ws353", args.ws353),
            ("simlex", args.simlex),
            ("analogy", args.analogy),
        )
        if value is not None
    }
    benchmarks = intrinsic.load_benchmarks(args.eval_dir, files)
    if not benchmarks:
        where = args.eval_dir or intrinsic.default_eval_dir()
        raise EmbedlabError(
            f"no evaluation files found in {where} (set --eval-dir or EMBEDLAB_EVAL_DIR)"
        )
    wv = _read(args, max(args.pairs_restrict, args.analogy_restrict))
    results = intrinsic.evaluate(wv, benchmarks, args.pairs_restrict, args.analogy_restrict)
    if args.json:
        print(json.dumps({k: (None if v != v else v) for k, v in results.items()}, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.path} ({len(wv.words)} words read, dim {wv.vectors.shape[1]})")
    for col in ("benchmark", "score", "coverage"):
        table.add_column(col)
    for row in intrinsic.results_table(results):
        table.add_row(*row)
    Console().print(table)


def _neighbors(args: argparse.Namespace) -> None:
    wv = _read(args, args.limit)
    table = intrinsic.neighbors(wv, args.words, args.k)
    for word in args.words:
        if word not in table:
            print(f"{word}: not in the first {len(wv.words)} words")
            continue
        print(f"{word}: " + ", ".join(f"{w} {s:.3f}" for w, s in table[word]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="embedlab-vectors", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help="vector file (GloVe/word2vec/fastText text, .bin, .npy/.pt)")
        p.add_argument(
            "--format",
            default=None,
            help="text | word2vec_bin | fasttext | pt | npy (default: from the extension)",
        )
        p.add_argument("--vocab", default=None, help="one word per line, for .npy/.pt matrices")

    ev = sub.add_parser("eval", help="word similarity and analogy scores with their coverage")
    common(ev)
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument(
        "--eval-dir",
        default=None,
        help=f"folder of the evaluation sets (default: $EMBEDLAB_EVAL_DIR or {intrinsic.DEFAULT_EVAL_DIR})",
    )
    ev.add_argument(
        "--ws353", default=None, help="WordSim-353-format file (word1 TAB word2 TAB score)"
    )
    ev.add_argument("--simlex", default=None, help="SimLex-999-format file")
    ev.add_argument("--analogy", default=None, help="questions-words.txt-format file")
    ev.add_argument(
        "--pairs-restrict",
        type=int,
        default=intrinsic.PAIRS_RESTRICT,
        help="pairs: only the first N words (gensim: 300000)",
    )
    ev.add_argument(
        "--analogy-restrict",
        type=int,
        default=intrinsic.ANALOGY_RESTRICT,
        help="analogies: only the first N words (30000)",
    )
    ev.set_defaults(func=_eval)

    nb = sub.add_parser("neighbors", help="nearest neighbours by cosine")
    common(nb)
    nb.add_argument("words", nargs="+", help="query words")
    nb.add_argument("-k", type=int, default=10, help="neighbours per word")
    nb.add_argument(
        "--limit", type=int, default=intrinsic.PAIRS_RESTRICT, help="search the first N words"
    )
    nb.set_defaults(func=_neighbors)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (EmbedlabError, OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"embedlab-vectors: {exc}\n".replace("\n", " ").rstrip() + "\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
