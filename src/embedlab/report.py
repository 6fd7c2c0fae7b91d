"""``embedlab-report PATH``: a table and plots of a run or a sweep folder, without a browser.

:func:`build_report` reads every run under ``PATH`` (``metrics.json``, ``failed.json``,
``.hydra/overrides.yaml`` and the TensorBoard event files for the validation curve) and writes

- ``report.csv``: one row per run (overrides, best validation metric, test metric, epochs,
  wall time, parameter count, status), sorted by the optimized metric;
- ``report.md``: the same table, mean ± std per configuration when runs differ only by seed,
  the failed jobs, and the plots;
- ``val_curves.png`` (validation curve per run) and ``final_metric.png`` (the optimized metric
  per configuration, error bars = std over seeds, dots = single runs).

The console script prints the table with Rich.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.sweep import FAILED_FILE, METRICS_FILE, metric_direction

SEED_KEY = "seed"


@dataclass
class RunRecord:
    """One run folder as the report sees it."""

    path: Path
    name: str  # folder, relative to the report root
    overrides: dict[str, str]  # key -> value, from .hydra/overrides.yaml
    status: str  # ok | failed | unfinished
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, value) of the val metric
    label: str = ""  # the overrides that vary across the report's runs
    group: str = ""  # label without the seed: runs with the same group differ only by seed

    def value(self, key: str) -> float:
        v = self.metrics.get(key)
        return float(v) if isinstance(v, int | float) and v is not None else math.nan


@dataclass
class GroupRow:
    group: str
    runs: list[RunRecord]
    mean: float
    std: float
    test_mean: float
    test_std: float


@dataclass
class Report:
    root: Path
    metric: str
    test_metric: str
    direction: str
    runs: list[RunRecord]  # sorted: best first, failed last
    groups: list[GroupRow]  # only when some configuration has several seeds
    files: dict[str, Path]

    @property
    def ok_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "ok"]

    @property
    def failed_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status != "ok"]


# --------------------------------------------------------------------------- reading


def find_runs(path: str | Path) -> list[Path]:
    """Run folders under ``path`` (itself included): those with metrics.json, failed.json or
    Hydra's .hydra/overrides.yaml."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"embedlab-report: {root} does not exist")
    found: set[Path] = set()
    for pattern in (METRICS_FILE, FAILED_FILE):
        found |= {p.parent for p in root.rglob(pattern)}
    found |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


def _natural_key(text: str) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _read_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None


def _overrides(run: Path) -> dict[str, str]:
    """``{key: value}`` of the run's Hydra overrides (cosmetic/path keys Hydra excludes dropped)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    raw = _read_yaml(run / ".hydra" / "overrides.yaml") or []
    hydra_cfg = _read_yaml(run / ".hydra" / "hydra.yaml") or {}
    try:
        exclude = set(hydra_cfg["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"])
    except (KeyError, TypeError):
        exclude = set()
    out: dict[str, str] = {}
    for o in OverridesParser.create().parse_overrides([str(x) for x in raw]):
        key = o.get_key_element()
        if key not in exclude:
            out[key] = o.get_value_element_as_str()
    return out


def read_scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of scalar ``tag`` from the event files directly in ``run``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not any(run.glob("events.out.tfevents.*")):
        return []
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        return []
    return [(e.step, float(e.value)) for e in acc.Scalars(tag)]


def load_run(run: Path, root: Path, curve_tag: str | None = None) -> RunRecord:
    config = _read_yaml(run / "config.yaml") or _read_yaml(run / ".hydra" / "config.yaml") or {}
    name = run.relative_to(root).as_posix() if run != root else run.name
    rec = RunRecord(
        path=run, name=name, overrides=_overrides(run), status="unfinished", config=config
    )
    if (run / FAILED_FILE).is_file():
        info = json.loads((run / FAILED_FILE).read_text())
        rec.status, rec.error = (
            "failed",
            " ".join(f"{info.get('error')}: {info.get('message')}".split()),
        )
    elif (run / METRICS_FILE).is_file():
        rec.status = "ok"
        rec.metrics = json.loads((run / METRICS_FILE).read_text())
    if curve_tag and rec.status == "ok":
        rec.curve = read_scalars(run, curve_tag)
    return rec


def test_metric_for(metric: str) -> str:
    """The test counterpart of a validation metric: ``val/acc_best`` -> ``test/acc``."""
    name = metric.removesuffix("_best")
    return "test/" + name.split("/", 1)[1] if name.startswith("val/") else name


def _curve_tag(metric: str) -> str:
    return metric.removesuffix("_best")


# --------------------------------------------------------------------------- grouping


def _label_runs(runs: list[RunRecord]) -> None:
    """Label each run by the overrides that vary across ``runs``; group = label minus seed."""
    keys = sorted({k for r in runs for k in r.overrides})
    varying = (
        [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1] if len(runs) > 1 else keys
    )
    for r in runs:
        seed = r.overrides.get(SEED_KEY, str(r.config.get(SEED_KEY, "")))
        parts = [f"{k}={r.overrides[k]}" for k in varying if k in r.overrides]
        rest = [f"{k}={r.overrides[k]}" for k in varying if k in r.overrides and k != SEED_KEY]
        r.label = ",".join(parts) or r.name
        r.group = ",".join(rest) or ("(all runs)" if len(runs) > 1 and seed else r.label)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def _sort_key(value: float, direction: str) -> float:
    if math.isnan(value):
        return math.inf
    return -value if direction == "maximize" else value


# --------------------------------------------------------------------------- building


def build_report(
    path: str | Path,
    metric: str | None = None,
    out_dir: str | Path | None = None,
    plots: bool = True,
) -> Report:
    """Read the runs under ``path``; write report.csv, report.md and PNG plots into ``out_dir``
    (default: ``path``); return the :class:`Report`."""
    root = Path(path).absolute()
    run_dirs = find_runs(root)
    if not run_dirs:
        raise FileNotFoundError(
            f"embedlab-report: no run folders (metrics.json / .hydra) under {root}"
        )
    probe = [load_run(d, root) for d in run_dirs]
    if metric is None:
        metric = next(
            (str(r.config["optimized_metric"]) for r in probe if r.config.get("optimized_metric")),
            "val/acc_best",
        )
    runs = [load_run(d, root, _curve_tag(metric)) for d in run_dirs]
    direction = metric_direction(metric)
    test_metric = test_metric_for(metric)
    _label_runs(runs)
    runs.sort(
        key=lambda r: (
            r.status != "ok",
            _sort_key(r.value(metric), direction),
            _natural_key(r.name),
        )
    )

    groups: list[GroupRow] = []
    by_group: dict[str, list[RunRecord]] = {}
    for r in runs:
        if r.status == "ok":
            by_group.setdefault(r.group, []).append(r)
    if any(len(v) > 1 for v in by_group.values()):
        for g, members in by_group.items():
            m, s = _mean_std([r.value(metric) for r in members])
            tm, ts = _mean_std([r.value(test_metric) for r in members])
            groups.append(GroupRow(g, members, m, s, tm, ts))
        groups.sort(key=lambda g: _sort_key(g.mean, direction))

    out = Path(out_dir).absolute() if out_dir else (root if root.is_dir() else root.parent)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(root, metric, test_metric, direction, runs, groups, files={})
    report.files["csv"] = _write_csv(report, out / "report.csv")
    if groups:
        report.files["groups_csv"] = _write_group_csv(report, out / "report_by_config.csv")
    if plots:
        report.files.update(_plots(report, out))
    report.files["md"] = _write_md(report, out / "report.md")
    return report


COLUMNS = (
    "run",
    "overrides",
    "status",
    "best_val",
    "test",
    "epochs",
    "wall_seconds",
    "num_parameters",
)


def _row(r: RunRecord, report: Report) -> dict[str, Any]:
    m = r.metrics
    return {
        "run": r.name,
        "overrides": r.label
        if r.label != r.name
        else ",".join(f"{k}={v}" for k, v in r.overrides.items()),
        "status": r.status if r.status == "ok" else f"{r.status}: {r.error or ''}".strip(),
        "best_val": r.value(report.metric),
        "test": r.value(report.test_metric),
        "epochs": m.get("epochs"),
        "wall_seconds": m.get("wall_seconds"),
        "num_parameters": m.get("num_parameters"),
    }


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _write_csv(report: Report, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS[:3], report.metric, report.test_metric, *COLUMNS[5:]])
        for r in report.runs:
            row = _row(r, report)
            w.writerow(
                [
                    _fmt(row[c], 6)
                    if isinstance(row[c], float)
                    else ("" if row[c] is None else row[c])
                    for c in COLUMNS
                ]
            )
    return path


def _write_group_csv(report: Report, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "configuration",
                "runs",
                f"{report.metric}_mean",
                f"{report.metric}_std",
                f"{report.test_metric}_mean",
                f"{report.test_metric}_std",
            ]
        )
        for g in report.groups:
            w.writerow(
                [
                    g.group,
                    len(g.runs),
                    _fmt(g.mean, 6),
                    _fmt(g.std, 6),
                    _fmt(g.test_mean, 6),
                    _fmt(g.test_std, 6),
                ]
            )
    return path


def _pm(mean: float, std: float) -> str:
    return "" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _write_md(report: Report, path: Path) -> Path:
    lines = [
        f"# embedlab report: {report.root.name}",
        "",
        f"{len(report.runs)} runs in `{report.root}`, sorted by `{report.metric}` ({report.direction}).",
        "",
        f"| # | run | overrides | {report.metric} | {report.test_metric} | epochs | wall s | parameters |",
        "|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(report.ok_runs, 1):
        row = _row(r, report)
        lines.append(
            f"| {i} | {_md_cell(r.name)} | {_md_cell(row['overrides'])} | {_fmt(row['best_val'])} | {_fmt(row['test'])} "
            f"| {_fmt(row['epochs'])} | {_fmt(row['wall_seconds'], 1)} | {_fmt(row['num_parameters'])} |"
        )
    if report.groups:
        lines += [
            "",
            "## Per configuration (mean ± std over seeds)",
            "",
            f"| configuration | runs | {report.metric} | {report.test_metric} |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {_md_cell(g.group)} | {len(g.runs)} | {_pm(g.mean, g.std)} | {_pm(g.test_mean, g.test_std)} |"
            for g in report.groups
        ]
    if report.failed_runs:
        lines += ["", "## Failed or unfinished runs", ""]
        lines += [
            f"- `{r.name}`: {r.status}{': ' + r.error if r.error else ''}"
            for r in report.failed_runs
        ]
    for key, title in (
        ("val_curves", "Validation curves"),
        ("final_metric", "Final metric per configuration"),
    ):
        if key in report.files:
            lines += ["", f"## {title}", "", f"![{title}]({report.files[key].name})"]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- plots


def _plots(report: Report, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, Path] = {}
    ok = report.ok_runs
    if not ok:
        return files
    group_names = list(dict.fromkeys(r.group for r in ok))
    cmap = plt.get_cmap("tab10" if len(group_names) <= 10 else "tab20")
    color = {g: cmap(i % cmap.N) for i, g in enumerate(group_names)}

    curve_tag = _curve_tag(report.metric)
    fig, ax = plt.subplots(figsize=(9, 5))
    for r in ok:
        if r.curve:
            steps, values = zip(*r.curve, strict=True)
            ax.plot(
                steps, values, marker="o", markersize=3, lw=1.2, color=color[r.group], label=r.label
            )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(curve_tag)
    ax.set_title(f"{curve_tag} per run")
    ax.grid(alpha=0.3)
    if len(ok) <= 30:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    files["val_curves"] = out / "val_curves.png"
    fig.savefig(files["val_curves"], dpi=110, bbox_inches="tight")
    plt.close(fig)

    # final metric per configuration: mean bar, std error bar, one dot per run (seed)
    stats = []
    for g in group_names:
        vals = [r.value(report.metric) for r in ok if r.group == g]
        mean, std = _mean_std(vals)
        stats.append((g, mean, std, vals))
    stats.sort(key=lambda t: _sort_key(t[1], report.direction), reverse=True)  # best on top
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(stats) + 1.5))
    ys = range(len(stats))
    for y, (g, mean, std, vals) in zip(ys, stats, strict=True):
        ax.errorbar([mean], [y], xerr=[std], fmt="D", ms=7, capsize=5, color=color[g], zorder=2)
        ax.scatter(vals, [y] * len(vals), color="black", s=10, alpha=0.7, zorder=3)
    ax.set_yticks(list(ys), [s[0] for s in stats], fontsize=8)
    ax.set_xlabel(f"{report.metric}: mean ± std over seeds (diamond, bar); single runs (dots)")
    ax.set_title(f"final {report.metric} per configuration")
    finite = [v for s in stats for v in s[3] if not math.isnan(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max((hi - lo) * 0.3, 0.01)
        ax.set_xlim(lo - pad, hi + pad)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    files["final_metric"] = out / "final_metric.png"
    fig.savefig(files["final_metric"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return files


# --------------------------------------------------------------------------- console


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)  # files/pipes: no folding
    table = Table(title=f"{report.root.name}: sorted by {report.metric} ({report.direction})")
    for col, justify in (
        ("#", "right"),
        ("run", "left"),
        (report.metric, "right"),
        (report.test_metric, "right"),
        ("epochs", "right"),
        ("wall s", "right"),
        ("params", "right"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    for i, r in enumerate(report.ok_runs, 1):
        row = _row(r, report)
        table.add_row(
            str(i),
            r.label or r.name,
            _fmt(row["best_val"]),
            _fmt(row["test"]),
            _fmt(row["epochs"]),
            _fmt(row["wall_seconds"], 1),
            _fmt(row["num_parameters"]),
        )
    console.print(table)
    if report.groups:
        gt = Table(title="per configuration: mean ± std over seeds")
        for col in ("configuration", "runs", report.metric, report.test_metric):
            gt.add_column(col)
        for g in report.groups:
            gt.add_row(g.group, str(len(g.runs)), _pm(g.mean, g.std), _pm(g.test_mean, g.test_std))
        console.print(gt)
    for r in report.failed_runs:
        console.print(f"[red]{r.status}[/red] {r.name}: {r.error or 'no metrics.json'}")
    for f in report.files.values():
        console.print(f"wrote {f}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``embedlab-report``)."""
    parser = argparse.ArgumentParser(prog="embedlab-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run folder or a sweep folder (searched recursively)")
    parser.add_argument(
        "--metric",
        default=None,
        help="sort and plot by this metric (default: the runs' optimized_metric)",
    )
    parser.add_argument(
        "--out", default=None, help="where to write report.md/.csv and plots (default: PATH)"
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args(argv)
    try:
        report = build_report(
            args.path, metric=args.metric, out_dir=args.out, plots=not args.no_plots
        )
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    print_report(report)


if __name__ == "__main__":
    main()
