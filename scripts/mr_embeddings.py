"""MR (Pang & Lee 2005) with a bag of embeddings: random init vs GloVe 6B 50d frozen vs fine-tuned.

Trains each variant over several seeds through ``embedlab.train.train`` and prints test
accuracy (mean ± std) next to Kim (2014) Table 2's CNN-rand / CNN-static / CNN-non-static.
MR is read with ``data=mr`` from ``--mr`` (``train.tsv``/``test.tsv``, ``label<TAB>text``).

    EMBEDLAB_NUM_THREADS=1 python scripts/mr_embeddings.py --glove-dir /tmp/glove --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from embedlab.report import format_mean_std, mean_std

ROOT = Path(__file__).resolve().parents[1]
KIM = {
    "rand": ("CNN-rand", 76.1),
    "static": ("CNN-static", 81.0),
    "non-static": ("CNN-non-static", 81.5),
}


VARIANTS = {
    "rand": [
        "embedding=uniform",
        "embedding.init_args.a=-0.25",
        "embedding.init_args.b=0.25",
        "embedding.dim=50",
    ],
    "static": ["embedding=pretrained", "pretrained=glove", "embedding.freeze=true"],
    "non-static": ["embedding=pretrained", "pretrained=glove", "embedding.freeze=false"],
}
COMMON = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.rich_progress=false",
    "logger.tensorboard=true",
    "tokenizer.split_punctuation=false",  # MR is already tokenised
    "model.hidden_dims=[100]",
    "model.dropout=0.5",
    "embedding.mode=mean",
    "optimizer=adamw",
    "optimizer.lr=0.003",
    "trainer.max_epochs=15",
]


def run(variant: str, seed: int, args: argparse.Namespace) -> dict:
    from omegaconf import open_dict

    from embedlab.config import compose_config
    from embedlab.train import train

    out = args.out / f"{variant}-seed{seed}"
    overrides = [
        "data=mr",
        f"data.root={args.mr}",
        "data.batch_size=50",
        *COMMON,
        *VARIANTS[variant],
        f"seed={seed}",
        *(["pretrained.download=false"] if variant != "rand" else []),
    ]
    paths = {"output_dir": out, "cache_dir": args.out / "cache", "vector_cache": args.glove_dir}
    cfg = compose_config(overrides, paths)
    with open_dict(cfg):
        if variant != "rand":
            cfg.pretrained.cache_dir = str(args.glove_dir)
        cfg.task_name = f"mr-{variant}"
    return train(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mr", type=Path, default=ROOT.parent / "shared" / "data" / "mr")
    ap.add_argument(
        "--glove-dir",
        type=Path,
        default=Path(os.environ.get("EMBEDLAB_VECTOR_CACHE", ".vector_cache")),
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", type=Path, default=Path("outputs/mr_embeddings"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = ap.parse_args()

    results: dict[str, list[dict]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            m = run(variant, seed, args)
            keep = {
                k: m.get(k)
                for k in (
                    "test/acc",
                    "val/acc_best",
                    "epochs",
                    "wall_seconds",
                    "embedding/coverage_types",
                    "embedding/coverage_tokens",
                )
            }
            results.setdefault(variant, []).append({"seed": seed, **keep})
            print(json.dumps({"variant": variant, **results[variant][-1]}), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    print(
        "\n| embedding (BoE, mean, MLP 100, 15 epochs) | test acc % (mean ± std, seeds "
        + " ".join(map(str, args.seeds))
        + ") | Kim 2014 CNN |"
    )
    print("|---|---|---|")
    names = {
        "rand": "random U(-0.25, 0.25), dim 50",
        "static": "GloVe 6B 50d, frozen",
        "non-static": "GloVe 6B 50d, fine-tuned",
    }
    for variant, rows in results.items():
        ours = format_mean_std(*mean_std(100 * r["test/acc"] for r in rows), digits=1)
        kim_name, kim_acc = KIM[variant]
        print(f"| {names[variant]} | {ours} | {kim_name} {kim_acc} |")
    cov = results.get("static", [{}])[0]
    if cov.get("embedding/coverage_tokens"):
        print(
            f"\nGloVe coverage of MR: {cov['embedding/coverage_types']:.1f}% of vocabulary types, {cov['embedding/coverage_tokens']:.1f}% of training tokens"
        )


if __name__ == "__main__":
    main()
