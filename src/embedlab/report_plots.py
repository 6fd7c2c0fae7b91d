"""The plots of ``embedlab-report`` (matplotlib, the ``report`` extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from embedlab.report import Report, mean_std, rank_key


def plot_report(report: Report, out: Path) -> dict[str, Path]:
    """``val_curves.png`` (the validation curve of every run) and ``final_metric.png`` (the
    metric per configuration: mean and std over seeds, one dot per run) in ``out``."""
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

    curve_tag = report.metric.removesuffix("_best")
    fig, ax = plt.subplots(figsize=(9, 5))
    for r in ok:
        if r.curve:
            steps, values = zip(*r.curve, strict=True)
            ax.plot(steps, values, marker="o", ms=3, lw=1.2, color=color[r.group], label=r.label)
    ax.set(xlabel="optimizer step", ylabel=curve_tag, title=f"{curve_tag} per run")
    ax.grid(alpha=0.3)
    if len(ok) <= 30:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    files["val_curves"] = _save(fig, out / "val_curves.png")

    # final metric per configuration: mean bar, std error bar, one dot per run (seed)
    stats = []
    for g in group_names:
        vals = [r.value(report.metric) for r in ok if r.group == g]
        stats.append((g, *mean_std(vals), vals))
    stats.sort(key=lambda t: rank_key(t[1], report.direction), reverse=True)  # best on top
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(stats) + 1.5))
    for y, (g, mean, std, vals) in enumerate(stats):
        ax.errorbar([mean], [y], xerr=[std], fmt="D", ms=7, capsize=5, color=color[g], zorder=2)
        ax.scatter(vals, [y] * len(vals), color="black", s=10, alpha=0.7, zorder=3)
    ax.set_yticks(range(len(stats)), [s[0] for s in stats], fontsize=8)
    ax.set_xlabel(f"{report.metric}: mean ± std over seeds (diamond, bar); single runs (dots)")
    ax.set_title(f"final {report.metric} per configuration")
    finite = [v for s in stats for v in s[3] if not math.isnan(v)]
    if finite:
        pad = max((max(finite) - min(finite)) * 0.3, 0.01)
        ax.set_xlim(min(finite) - pad, max(finite) + pad)
    ax.grid(axis="x", alpha=0.3)
    files["final_metric"] = _save(fig, out / "final_metric.png")
    return files


def plot_epoch_perplexity(
    rows: list[dict[str, float]],
    path: Path,
    references: dict[str, float] | None = None,
    title: str = "perplexity per epoch",
) -> Path:
    """Train and validation perplexity per epoch (rows of :func:`embedlab.report.epoch_perplexities`)
    with a dashed horizontal line per reference figure (label -> perplexity), log y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5))
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["train_ppl"] for r in rows], marker="o", ms=4, label="train (dropout on)")
    ax.plot(epochs, [r["val_ppl"] for r in rows], marker="o", ms=4, label="valid")
    for i, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{i + 2}", label=f"{label}: {value:g}")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())  # 100, not 10^2
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set(xlabel="epoch", ylabel="perplexity", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
