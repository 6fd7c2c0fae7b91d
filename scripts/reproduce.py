"""Run the reproduction experiments over several seeds and write a markdown table.

For every dataset in ../shared/data (MR, SST-1/5, SST-2, Subj, TREC, CR, MPQA) this trains
the ``experiment=<model>_<dataset>`` recipes with :func:`embedlab.train.train` (the same
function ``embedlab-train`` calls), ``--seeds`` times each, and writes

- ``<out>.md``: dataset, model, init, our test accuracy (mean ± std over seeds) next to the
  published reference numbers parsed from each dataset's README.md (Kim 2014, Table 2, and
  the harvardnlp/sent-conv-torch re-implementation), and
- ``<out>.json``: every run's metrics.

    EMBEDLAB_DATA_DIR=../shared/data EMBEDLAB_NUM_THREADS=1 \\
        python scripts/reproduce.py --seeds 3 --out reports/reproduce

Each run's folder (checkpoints, TensorBoard) is under ``outputs/reproduce/<experiment>/seed<N>``.
Run again with the same arguments, a stopped reproduce.py reuses the runs it had finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from embedlab.report import format_mean_std, mean_std

# dataset config name -> (folder in the data dir, the column name in Kim's Table 2)
DATASETS = {
    "mr": ("mr", "MR"),
    "sst5": ("sst5", "SST-1"),
    "sst2": ("sst2", "SST-2"),
    "subj": ("subj", "Subj"),
    "trec": ("trec", "TREC"),
    "cr": ("cr", "CR"),
    "mpqa": ("mpqa", "MPQA"),
}
# --inits: how the embedding table starts, as overrides on top of each experiment (static =
# glove_frozen, non-static = glove_tuned, multichannel = both as embedding.channels=2). The GloVe
# ones need pretrained=glove (issue 3) and glove.6B.50d.txt in $EMBEDLAB_VECTOR_CACHE
# (offline: ../shared/tools/glove-6b-50d $EMBEDLAB_VECTOR_CACHE).
GLOVE = [
    "embedding=pretrained",
    "pretrained=glove",
    "pretrained.name=6B",
    "pretrained.dim=50",
    "embedding.dim=50",
]
INITS = {
    "rand": [],
    "glove_frozen": [*GLOVE, "embedding.freeze=true"],
    "glove_tuned": [*GLOVE, "embedding.freeze=false"],
    "glove_multichannel": [*GLOVE, "embedding.freeze=false", "embedding.channels=2"],
}
# the row of Kim's Table 2 (and each dataset README) with the same embedding variant
KIM_VARIANT = {
    "rand": "CNN-rand",
    "glove_frozen": "CNN-static",
    "glove_tuned": "CNN-non-static",
    "glove_multichannel": "CNN-multichannel",
}
QUIET = [
    "print_config=false",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.rich_progress=false",
    "callbacks.lr_monitor=false",
]
_ROW = re.compile(r"^\|\s*(CNN-[\w-]+)[^|]*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|")


def published(data_dir: Path, folder: str) -> dict[str, dict[str, float]]:
    """``{"CNN-rand": {"kim": 76.1, "sent-conv-torch": 75.9}, ...}`` from the dataset README."""
    out: dict[str, dict[str, float]] = {}
    readme = data_dir / folder / "README.md"
    if not readme.is_file():
        return out
    for line in readme.read_text().splitlines():
        m = _ROW.match(line)
        if m:
            out[m.group(1)] = {"kim": float(m.group(2)), "sent-conv-torch": float(m.group(3))}
    return out


OVERRIDES_FILE = "reproduce_overrides.json"  # in each run folder: what the run was asked


def finished_run(out_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The metrics of the run already finished in ``out_dir`` with the same ``overrides``.

    A reproduce.py that was stopped picks up where it was when run again with the same
    command: finished runs are read back, not trained again. None when ``out_dir`` has no
    finished run; a SystemExit naming the folder when it holds another command's run.
    """
    metrics, asked = out_dir / "metrics.json", out_dir / OVERRIDES_FILE
    if not metrics.is_file():
        return None
    if not asked.is_file() or json.loads(asked.read_text()) != overrides:
        raise SystemExit(
            f"{out_dir}: holds a finished run of other overrides (see {OVERRIDES_FILE}); "
            "use another --runs-dir"
        )
    print(f"{out_dir}: finished before, its metrics.json is reused", flush=True)
    return json.loads(metrics.read_text())


def compose(overrides: list[str], out_dir: Path) -> Any:
    from embedlab.config import compose_config

    return compose_config(overrides, {"output_dir": out_dir})


def init_name(cfg: Any) -> str:
    if cfg.pretrained.source == "none":
        return f"rand ({cfg.embedding.init})"
    if cfg.embedding.channels == 2:
        return f"{cfg.pretrained.source} (multichannel)"
    return f"{cfg.pretrained.source} ({'frozen' if cfg.embedding.freeze else 'fine-tuned'})"


def fmt(values: list[float]) -> str:
    """Accuracies as percent, ``"81.2 ± 0.4"`` (mean ± sample std over seeds)."""
    return format_mean_std(*mean_std(100 * v for v in values), digits=1) or "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated dataset configs"
    )
    parser.add_argument(
        "--models",
        default="boe",
        help="comma-separated experiment prefixes (experiment=<model>_<dataset>)",
    )
    parser.add_argument("--inits", default="rand", help=f"comma-separated, from {sorted(INITS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per experiment")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="start at this seed (more seeds for a table: --combine pools parts whose seeds differ)",
    )
    parser.add_argument("--out", default="reports/reproduce", help="writes <out>.md and <out>.json")
    parser.add_argument("--runs-dir", default="outputs/reproduce", help="run folders go here")
    parser.add_argument(
        "--combine", nargs="+", type=Path, help="only merge these <out>.json files into --out"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = parser.parse_args(argv)
    if args.combine:
        combine(Path(args.out), args.combine)
        return 0

    os.environ.setdefault("EMBEDLAB_NUM_THREADS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore")
    import lightning.pytorch  # noqa: F401  (sets its loggers to INFO on import; quiet them after)

    from embedlab.train import train

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    data_dir = None
    for dataset in args.datasets.split(","):
        for model, init in [(m, i) for m in args.models.split(",") for i in args.inits.split(",")]:
            experiment = f"{model}_{dataset}"
            run_name = experiment if init == "rand" else f"{experiment}_{init}"
            accs: list[float] = []
            vals: list[float] = []  # val/acc_best: what recipes are chosen on
            seconds: list[float] = []
            cfg = None
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                out_dir = Path(args.runs_dir) / run_name / f"seed{seed}"
                overrides = [
                    f"experiment={experiment}",
                    f"seed={seed}",
                    *INITS[init],
                    *QUIET,
                    *args.overrides,
                ]
                cfg = compose(overrides, out_dir)
                t0 = time.perf_counter()
                metrics = finished_run(out_dir, overrides)
                if metrics is None:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    (out_dir / OVERRIDES_FILE).write_text(json.dumps(overrides) + "\n")
                    metrics = train(cfg)
                    seconds.append(time.perf_counter() - t0)
                else:
                    seconds.append(float(metrics["wall_seconds"]))
                accs.append(float(metrics["test/acc"]))
                vals.append(float(metrics["val/acc_best"]))
                results.append(
                    {
                        "experiment": experiment,
                        "init": init,
                        "seed": seed,
                        "seconds": seconds[-1],
                        **metrics,
                    }
                )
                print(
                    f"{run_name} seed {seed}: test/acc {accs[-1]:.4f} ({seconds[-1]:.0f} s)",
                    flush=True,
                )
            data_dir = Path(str(cfg.paths.data_dir))
            folder, column = DATASETS.get(dataset, (dataset, dataset))
            ref = published(data_dir, folder)
            rand = ref.get("CNN-rand", {}).get("kim")
            variant = ref.get(KIM_VARIANT[init], {}).get("kim")
            mean = 100 * mean_std(accs)[0]
            rows.append(
                {
                    "dataset": column,
                    "model": model,
                    "init": init_name(cfg),
                    "init_key": init,
                    "train": Path(str(cfg.data.train)).name,
                    "ours": fmt(accs),
                    "val": fmt(vals),
                    "mean": mean,
                    "kim_variant": variant,
                    "kim_rand": rand,
                    "kim_nonstatic": ref.get("CNN-non-static", {}).get("kim"),
                    "sct_rand": ref.get("CNN-rand", {}).get("sent-conv-torch"),
                    "delta": None if rand is None else mean - rand,
                    "seconds": statistics.fmean(seconds),
                }
            )
    wall = time.perf_counter() - started
    command = (
        f"python scripts/reproduce.py --seeds {args.seeds} --datasets {args.datasets} "
        + (f"--first-seed {args.first_seed} " if args.first_seed else "")
        + f"--models {args.models} --inits {args.inits}"
        + (" " + " ".join(args.overrides) if args.overrides else "")
    )
    info = {
        "wall_seconds": wall,
        "commands": [command],
        "seeds": args.seeds,
        "data_dir": str(data_dir),
    }
    write_report(Path(args.out), rows, results, info)
    return 0


def _num(x: float | None, signed: bool = False) -> str:
    return "n/a" if x is None else (f"{x:+.1f}" if signed else f"{x:.1f}")


def write_report(
    out: Path, rows: list[dict[str, Any]], runs: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    """Write ``out.md`` (the table) and ``out.json`` (rows, every run, commands, wall time)."""
    order = [column for _, column in DATASETS.values()]
    rows = sorted(
        rows,
        key=lambda r: order.index(r["dataset"]) if r["dataset"] in order else len(order),
    )
    lines = [
        f"| dataset | model | init | train file | ours: test acc % (mean ± std, {info['seeds']} seeds) "
        "| ours: val acc % | Kim CNN, same init | Kim CNN-rand | Kim CNN-non-static "
        "| sent-conv-torch CNN-rand | ours - Kim CNN-rand | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['init']} | {r['train']} | {r['ours']} "
            f"| {r.get('val', 'n/a')} | {_num(r.get('kim_variant'))} | {_num(r['kim_rand'])} "
            f"| {_num(r['kim_nonstatic'])} | {_num(r['sct_rand'])} | {_num(r['delta'], True)} | {r['seconds']:.0f} |"
        )
    wall = info["wall_seconds"]
    lines += [
        "",
        f"Published numbers parsed from `{info['data_dir']}/<dataset>/README.md` (Kim 2014, Table 2; "
        'harvardnlp/sent-conv-torch README); "Kim CNN, same init" is his row with the same '
        "embedding variant (rand, static, non-static, multichannel; his vectors are 300-d word2vec). "
        "Kim used 10-fold CV for MR, Subj, CR and MPQA; we use "
        "the single fixed 90/10 split shipped with the data (±1-2 points split-to-split).",
        *[f"Command: `{c}`" for c in info["commands"]],
        f"Wall time {wall / 60:.1f} min in all ({len(runs)} runs, "
        f"EMBEDLAB_NUM_THREADS={os.environ.get('EMBEDLAB_NUM_THREADS', '1')}).",
    ]
    table = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table)
    payload = {**info, "rows": rows, "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(table)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return table


def _same_row(run: dict[str, Any], row: dict[str, Any]) -> bool:
    model, _, dataset = run["experiment"].partition("_")
    same_init = "init_key" not in row or run.get("init") == row["init_key"]
    return (
        model == row["model"]
        and DATASETS.get(dataset, ("", dataset))[1] == row["dataset"]
        and same_init
    )


def combine(out: Path, parts: list[Path]) -> str:
    """One table from several reproduce.py outputs.

    A row of a later part replaces the same (dataset, model, init) row of an earlier one,
    unless their runs have different seeds (``--first-seed``): then the runs are pooled and
    the row is recomputed over all of them.
    """
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    info: dict[str, Any] = {"wall_seconds": 0.0, "commands": [], "seeds": 0, "data_dir": ""}
    for part in parts:
        data = json.loads(part.read_text())
        for r in data["rows"]:
            key = (r["dataset"], r["model"], r["init"])
            new = [x for x in data["runs"] if _same_row(x, r)]
            if key in rows:
                old = [x for x in runs if _same_row(x, r)]
                if old and new and not {x["seed"] for x in old} & {x["seed"] for x in new}:
                    r = _pooled(r, old + new)
                else:
                    runs = [x for x in runs if not _same_row(x, r)]
            rows[key] = r
        runs += data["runs"]
        info["wall_seconds"] += data["wall_seconds"]
        info["commands"] += data.get("commands", [])
        info["data_dir"] = data.get("data_dir", info["data_dir"])
    counts = [len({x["seed"] for x in runs if _same_row(x, r)}) for r in rows.values()]
    info["seeds"] = max(counts, default=0)
    return write_report(out, list(rows.values()), runs, info)


def _pooled(row: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``row`` recomputed over ``runs`` (every seed of its experiment)."""
    accs = [float(x["test/acc"]) for x in runs]
    vals = [float(x["val/acc_best"]) for x in runs]
    mean = 100 * mean_std(accs)[0]
    rand = row.get("kim_rand")
    seconds = [float(x["seconds"]) for x in runs if "seconds" in x]
    return {
        **row,
        "ours": fmt(accs),
        "val": fmt(vals),
        "mean": mean,
        "delta": None if rand is None else mean - rand,
        "seconds": statistics.fmean(seconds) if seconds else row["seconds"],
    }


if __name__ == "__main__":
    sys.exit(main())
