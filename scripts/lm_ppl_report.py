"""Per-epoch perplexity of a ``task=lm`` run: a PNG and a markdown table, from its TensorBoard scalars.

Reads the run's ``val/ppl`` and ``train/loss_epoch`` scalars (``embedlab.report.epoch_perplexities``)
and ``metrics.json`` (test perplexity, tokens/s, training time), draws them with reference lines
(``embedlab.report_plots.plot_epoch_perplexity``) and writes ``ppl_per_epoch.png`` and
``README.md`` into ``--out``:

    python scripts/lm_ppl_report.py outputs/lm_ptb --out reports/lm_ptb \\
        --ref "Zaremba small (test)=114.5" --ref "Zaremba medium (test)=82.7" \\
        --command "EMBEDLAB_NUM_THREADS=1 embedlab-train experiment=lm_ptb"
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from embedlab.report import epoch_perplexities
from embedlab.report_plots import plot_epoch_perplexity


def reference(text: str) -> tuple[str, float]:
    label, _, value = text.rpartition("=")
    if not label:
        raise argparse.ArgumentTypeError(f"--ref: expected LABEL=PERPLEXITY, got {text!r}")
    return label, float(value)


def markdown(rows: list[dict[str, float]], metrics: dict, command: str, refs: dict) -> str:
    lines = [
        "# Per-epoch perplexity",
        "",
        f"Command: `{command}`" if command else "",
        "",
        "| epoch | train ppl (dropout on) | valid ppl |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {r['epoch']} | {r['train_ppl']:.1f} | {r['val_ppl']:.1f} |" for r in rows]
    test = metrics.get("test/ppl", math.nan)
    lines += [
        "",
        f"Test perplexity (best validation checkpoint): **{test:.1f}**; best valid "
        f"{metrics.get('val/ppl_best', math.nan):.1f}.",
        f"Training: {metrics.get('train_seconds', math.nan) / 60:.1f} min, "
        f"{metrics.get('global_steps', 0):,} optimizer steps ({len(rows)} validations, one per "
        f"epoch), {metrics.get('train_tokens_per_second', math.nan):,.0f} training tokens/s.",
    ]
    if refs:
        lines += ["", "References: " + "; ".join(f"{k} {v:g}" for k, v in refs.items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="the run folder (event files, metrics.json)")
    parser.add_argument("--out", type=Path, required=True, help="where the PNG and README.md go")
    parser.add_argument("--ref", type=reference, action="append", default=[], help="LABEL=PPL")
    parser.add_argument("--command", default="", help="the command that made the run")
    parser.add_argument("--title", default="perplexity per epoch")
    args = parser.parse_args(argv)
    rows = epoch_perplexities(args.run)
    if not rows:
        parser.error(f"{args.run}: no val/ppl scalars (not a task=lm run folder?)")
    metrics_file = args.run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    refs = dict(args.ref)
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot_epoch_perplexity(rows, args.out / "ppl_per_epoch.png", refs, args.title)
    md = args.out / "README.md"
    md.write_text(markdown(rows, metrics, args.command, refs))
    print(md.read_text())
    return {"png": png, "md": md}


if __name__ == "__main__":
    main()
