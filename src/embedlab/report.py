"""``embedlab-report PATH``: a table and plots of a run or a sweep folder, without a browser.

:func:`build_report` reads every run under ``PATH`` (``metrics.json``, ``failed.json``,
``.hydra/overrides.yaml`` and the TensorBoard event files for the validation curve) and writes

- ``report.csv``: one row per run (overrides, best validation metric, test metric, epochs,
  wall time, parameter count, status), sorted by the optimized metric;
- ``report_by_config.csv`` and a section of ``report.md``: mean ± std per configuration when
  runs differ only by seed;
- ``report.md``: the table, the failed jobs, and the plots;
- ``val_curves.png`` (validation curve per run) and ``final_metric.png`` (the optimized metric
  per configuration, error bars = std over seeds, dots = single runs).

The tables are pandas DataFrames (``groupby().agg()``, ``to_csv``, ``to_markdown``); the
console script prints them with Rich. :func:`mean_std` is the one mean ± std of the project
(the benchmark scripts use it too).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from embedlab.sweep import FAILED_FILE, METRICS_FILE, metric_direction, override_items

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
        return float(v) if isinstance(v, int | float) else math.nan


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


# --------------------------------------------------------------------------- statistics


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for one value) of the non-NaN values;
    (NaN, NaN) for none."""
    s = pd.Series(list(values), dtype=float).dropna()
    if s.empty:
        return math.nan, math.nan
    return float(s.mean()), float(s.std()) if len(s) > 1 else 0.0


def sample_std(values: Iterable[float]) -> float:
    """The std of :func:`mean_std` (for ``groupby().agg``)."""
    return mean_std(values)[1]


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``"0.8123 ± 0.0040"``; empty for NaN."""
    return "" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


# --------------------------------------------------------------------------- reading


def find_runs(path: str | Path) -> list[Path]:
    """Run folders under ``path`` (itself included): those with metrics.json, failed.json or
    Hydra's .hydra/overrides.yaml."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"embedlab-report: {root} does not exist")
    found = {p.parent for pattern in (METRICS_FILE, FAILED_FILE) for p in root.rglob(pattern)}
    found |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


def _natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _read_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None


def _overrides(run: Path) -> dict[str, str]:
    """``{key: value}`` of the run's Hydra overrides (cosmetic/path keys Hydra excludes dropped)."""
    hydra_cfg = _read_yaml(run / ".hydra" / "hydra.yaml") or {}
    try:
        exclude = set(hydra_cfg["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"])
    except (KeyError, TypeError):
        exclude = set()
    items = override_items(_read_yaml(run / ".hydra" / "overrides.yaml") or [])
    return {k: v for k, v in items if k not in exclude}


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


def epoch_perplexities(run: Path) -> list[dict[str, float]]:
    """Per epoch of a ``task=lm`` run (one validation per epoch): ``epoch``, ``step``,
    ``train_ppl`` (exp of ``train/loss_epoch``, dropout on) and ``val_ppl``, from its TensorBoard
    scalars."""
    val = read_scalars(run, "val/ppl")
    train = dict(read_scalars(run, "train/loss_epoch"))  # step -> mean training loss
    return [
        {
            "epoch": i + 1,
            "step": step,
            "train_ppl": math.exp(train[step]) if step in train else math.nan,
            "val_ppl": value,
        }
        for i, (step, value) in enumerate(val)
    ]


def load_run(run: Path, root: Path, curve_tag: str | None = None) -> RunRecord:
    config = _read_yaml(run / "config.yaml") or _read_yaml(run / ".hydra" / "config.yaml") or {}
    name = run.relative_to(root).as_posix() if run != root else run.name
    rec = RunRecord(run, name, _overrides(run), "unfinished", config=config)
    if (run / FAILED_FILE).is_file():
        info = json.loads((run / FAILED_FILE).read_text())
        rec.status = "failed"
        rec.error = " ".join(f"{info.get('error')}: {info.get('message')}".split())
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


def rank_key(value: float, direction: str) -> float:
    """Sort key: best first in ``direction``, NaN last."""
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
    if metric is None:
        configs = (load_run(d, root).config for d in run_dirs)
        metric = next(
            (str(c["optimized_metric"]) for c in configs if c.get("optimized_metric")),
            "val/acc_best",
        )
    runs = [load_run(d, root, metric.removesuffix("_best")) for d in run_dirs]
    direction = metric_direction(metric)
    _label_runs(runs)
    runs.sort(
        key=lambda r: (
            r.status != "ok",
            rank_key(r.value(metric), direction),
            _natural_key(r.name),
        )
    )
    report = Report(root, metric, test_metric_for(metric), direction, runs, [], files={})
    table = runs_table(report)
    ok = table[table["status"] == "ok"]
    if ok["group"].duplicated().any():  # some configuration ran with several seeds
        cols = [report.metric, report.test_metric]
        stats = ok.groupby("group", sort=False)[cols].agg(["mean", sample_std])
        for g, row in stats.iterrows():
            members = [r for r in report.ok_runs if r.group == g]
            report.groups.append(GroupRow(str(g), members, *map(float, row)))
        report.groups.sort(key=lambda g: rank_key(g.mean, direction))

    out = Path(out_dir).absolute() if out_dir else (root if root.is_dir() else root.parent)
    out.mkdir(parents=True, exist_ok=True)
    report.files["csv"] = out / "report.csv"
    table.drop(columns=["label", "group"]).to_csv(
        report.files["csv"], index=False, float_format="%.6f"
    )
    if report.groups:
        report.files["groups_csv"] = out / "report_by_config.csv"
        groups_table(report).to_csv(report.files["groups_csv"], index=False, float_format="%.6f")
    if plots:
        from embedlab.report_plots import plot_report

        report.files.update(plot_report(report, out))
    report.files["md"] = _write_md(report, out / "report.md")
    return report


def runs_table(report: Report) -> pd.DataFrame:
    """One row per run (best first, failed last): run, overrides, status, the metric, the test
    metric, epochs, wall_seconds, num_parameters (report.csv's columns), then label, group."""
    table = pd.DataFrame(
        [
            {
                "run": r.name,
                "overrides": r.label
                if r.label != r.name
                else ",".join(f"{k}={v}" for k, v in r.overrides.items()),
                "status": r.status if r.status == "ok" else f"{r.status}: {r.error or ''}".strip(),
                report.metric: r.value(report.metric),
                report.test_metric: r.value(report.test_metric),
                "epochs": r.metrics.get("epochs"),
                "wall_seconds": r.metrics.get("wall_seconds"),
                "num_parameters": r.metrics.get("num_parameters"),
                "label": r.label,
                "group": r.group,
            }
            for r in report.runs
        ]
    )
    return table.astype({"epochs": "Int64", "num_parameters": "Int64", "wall_seconds": float})


def groups_table(report: Report) -> pd.DataFrame:
    """report_by_config.csv: configuration, runs, ``<metric>_{mean,std}``, ``<test>_{mean,std}``."""
    m, t = report.metric, report.test_metric
    return pd.DataFrame(
        [(g.group, len(g.runs), g.mean, g.std, g.test_mean, g.test_std) for g in report.groups],
        columns=["configuration", "runs", f"{m}_mean", f"{m}_std", f"{t}_mean", f"{t}_std"],
    )


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _display_tables(report: Report) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The successful runs and the per-configuration rows as strings, for report.md and Rich."""
    t = runs_table(report).iloc[: len(report.ok_runs)]
    runs = pd.DataFrame(
        {
            "#": [str(i + 1) for i in range(len(t))],
            "run": t["run"],
            "overrides": t["overrides"],
            report.metric: t[report.metric].map(_fmt),
            report.test_metric: t[report.test_metric].map(_fmt),
            "epochs": t["epochs"].map(_fmt),
            "wall s": t["wall_seconds"].map(lambda v: _fmt(v, 1)),
            "parameters": t["num_parameters"].map(_fmt),
        }
    )
    groups = pd.DataFrame(
        {
            "configuration": [g.group for g in report.groups],
            "runs": [str(len(g.runs)) for g in report.groups],
            report.metric: [format_mean_std(g.mean, g.std) for g in report.groups],
            report.test_metric: [format_mean_std(g.test_mean, g.test_std) for g in report.groups],
        }
    )
    return runs, groups


def _markdown(table: pd.DataFrame, left: Sequence[str]) -> str:
    align = ["left" if c in left else "right" for c in table.columns]
    cells = table.map(lambda v: str(v).replace("|", "\\|"))
    return cells.to_markdown(index=False, colalign=align, disable_numparse=True)


def _write_md(report: Report, path: Path) -> Path:
    runs, groups = _display_tables(report)
    lines = [
        f"# embedlab report: {report.root.name}",
        "",
        f"{len(report.runs)} runs in `{report.root}`, sorted by `{report.metric}` ({report.direction}).",
        "",
        _markdown(runs, ["run", "overrides"]) if len(runs) else "(no successful runs)",
    ]
    if report.groups:
        lines += ["", "## Per configuration (mean ± std over seeds)", ""]
        lines.append(_markdown(groups, ["configuration"]))
    if report.failed_runs:
        lines += ["", "## Failed or unfinished runs", ""]
        lines += [
            f"- `{r.name}`: {r.status}: {r.error or 'no metrics.json'}" for r in report.failed_runs
        ]
    for key, title in (
        ("val_curves", "Validation curves"),
        ("final_metric", "Final metric per configuration"),
    ):
        if key in report.files:
            lines += ["", f"## {title}", "", f"![{title}]({report.files[key].name})"]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- console


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)  # files/pipes: no folding
    runs, groups = _display_tables(report)
    runs = runs.drop(columns=["run"]).rename(columns={"overrides": "run"})
    runs["run"] = [r.label or r.name for r in report.ok_runs]
    titles = [f"{report.root.name}: sorted by {report.metric} ({report.direction})"]
    titles.append("per configuration: mean ± std over seeds")
    for frame, title in zip((runs, groups), titles, strict=True):
        if len(frame):
            table = Table(title=title)
            for col in frame.columns:
                left = col in ("run", "configuration")
                table.add_column(col, justify="left" if left else "right", overflow="fold")
            for row in frame.itertuples(index=False):
                table.add_row(*row)
            console.print(table)
    for r in report.failed_runs:
        console.print(f"[red]{r.status}[/red] {r.name}: {r.error or 'no metrics.json'}")
    for f in report.files.values():
        console.print(f"wrote {f}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``embedlab-report``)."""
    parser = argparse.ArgumentParser(prog="embedlab-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a run folder or a sweep folder (searched recursively)")
    parser.add_argument("--metric", help="sort and plot by this metric (default: optimized_metric)")
    parser.add_argument("--out", help="where to write report.md/.csv and plots (default: PATH)")
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
