"""Benchmark: embedlab's bag-of-embeddings classifier side by side with the fastText CLI.

Both tools train on the same ``train.tsv`` and test on the same ``test.tsv`` (``label<TAB>text``,
no header) with the same number of threads, ``--runs`` times each (interleaved), and the table
reports the medians: test accuracy, wall time of the whole command, training throughput in word
tokens per second, start-up time, peak RSS of the process and checkpoint size.

    python scripts/bench_fasttext.py                                  # every shared set + 1M synthetic
    python scripts/bench_fasttext.py --datasets mr,trec --runs 5
    python scripts/bench_fasttext.py --datasets synthetic --synthetic-sizes 10000,100000,1000000 \\
        --scaling                                                     # + scaling table and PNG
    python scripts/bench_fasttext.py --datasets mr --embedlab-args "trainer.max_epochs=5" \\
        --fasttext-args="-dim 50 -epoch 5"

Datasets: mr, sst2, sst5, subj, trec, cr, mpqa from ``--data-dir/<name>/{train,test}.tsv``
(``train.tsv`` for every set, sst2 included, so both tools read the same file; dev.tsv is not
used), and ``synthetic``: texts from ``embedlab.data.synthetic.generate`` with its default
parameters (test set: 10% of train, at most 50,000), cached as TSV under ``--out/data/``.

Fairness: fastText neither lowercases nor splits punctuation, embedlab's word tokenizer does both.
The fastText input files (``__label__<label> <text>`` lines, converted once per file) therefore
hold the text lowercased and with punctuation split off words
(``re.sub(r"([^\\w\\s'])", r" \\1 ", text.lower())``); rows with no tab or an empty text are
dropped, as embedlab's ``data.on_bad_rows=skip`` does.

fastText: ``fasttext supervised -input train.ft -output model -thread N <--fasttext-args>``, then
``fasttext test model.bin test.ft`` (accuracy = P@1). Wall time covers both processes;
checkpoint = model.bin. Tokens/s counts word tokens for both tools. fastText's progress line
(``words/sec/thread``, times the thread count) counts every token it reads, each line's
``__label__`` and its end-of-line token ``</s>`` included (``Dictionary::getLine`` and
``Dictionary::add`` add one per token read): on MPQA's 3-word texts that is 5 tokens a text for 3
words. The fastText column is therefore its printed rate times the share of word tokens among the
tokens of its training file (``fasttext_word_share``: 0.61 on MPQA, 0.84 on TREC, 0.91-0.93 on the
others); the JSON keeps the printed rate as ``printed_tokens_per_second``.
fastText has no start-up phase apart from loading the data, so its start-up is reported as ``-``.

embedlab: ``embedlab-train`` with the default recipe (``model=boe``; ``embedding.dim=100`` as
fastText's ``-dim 100`` unless ``--embedlab-args`` says otherwise) over the same files
(``data=files``, which carves its validation split out of train), a fresh ``hydra.run.dir`` and a
fresh, cold ``paths.cache_dir`` per run (tokenization is timed), plus ``--embedlab-args``; run with
``EMBEDLAB_NUM_THREADS`` and ``OMP_NUM_THREADS`` set to ``--threads``. Accuracy, start-up,
tokens/s and checkpoint size come from the run's metrics.json. After the timed runs one more,
short run (``trainer.max_steps=1 test=false``) reuses the last run's cache: its ``startup_seconds``
is the "start-up (cached)" column.

Peak RSS: ``ru_maxrss`` of each child process from ``os.wait4`` (the larger of fastText's two).
Targets for embedlab's wall time: at most 3x fastText + 4 s on the shared sets, at most 1.5x
fastText on synthetic sets of 1M texts or more (no target for smaller synthetic sets).

Outputs in ``--out``: bench_fasttext.md (the table, headed by the command line),
bench_fasttext.json (every run), and with ``--scaling`` scaling.png (log-log wall time and peak
RSS against the number of training texts, synthetic sizes only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_SETS = ("mr", "sst2", "sst5", "subj", "trec", "cr", "mpqa")
DEFAULT_DATASETS = (*SHARED_SETS, "synthetic")
DEFAULT_FASTTEXT_ARGS = "-dim 100 -wordNgrams 2 -lr 0.5 -epoch 10 -bucket 200000 -minCount 1"
# the same table width as fastText's -dim 100 (the default recipe's dim is 64)
DEFAULT_EMBEDLAB_ARGS = "embedding.dim=100"
FASTTEXT_MISSING = "fastText CLI not found: apt-get install fasttext"
SYNTHETIC_TEST_CAP = 50_000
SYNTHETIC_TARGET_MIN = 1_000_000  # synthetic sets this large get the 1.5x target
# the short extra run that measures start-up with a warm cache
CACHED_RUN_OVERRIDES = ["trainer.max_steps=1", "test=false"]

_PUNCT = re.compile(r"([^\w\s'])")
_PROGRESS = re.compile(r"words/sec/thread:\s*([0-9][0-9.eE+-]*)")
_HYDRA_SAFE = re.compile(r"[\w./+~-]+")
# metrics.json keys (written by embedlab-train)
M_ACC = "test/acc"
M_STARTUP = "startup_seconds"
M_WALL = "wall_seconds"
M_TRAIN = "train_seconds"
M_TOKENS = "train_tokens_per_second"
M_CKPT = "checkpoint_bytes"
TOOLS = ("fasttext", "embedlab")
LABELS = {"fasttext": "fastText", "embedlab": "embedlab"}


@dataclass(frozen=True)
class Dataset:
    """One benchmark row: a train/test TSV pair."""

    name: str
    train: Path
    test: Path
    kind: str  # "shared" | "synthetic"
    size: int | None = None  # synthetic train size


@dataclass
class Child:
    """One finished child process."""

    cmd: list[str]
    rc: int
    wall_seconds: float
    max_rss_kb: int
    stdout: str
    stderr: str


# ---------------------------------------------------------------- data


def fasttext_text(text: str) -> str:
    """``text`` as embedlab's word tokenizer sees it: lowercased, punctuation split off words."""
    return " ".join(_PUNCT.sub(r" \1 ", text.lower()).split())


def fasttext_line(label: str, text: str) -> str | None:
    """A fastText ``__label__<label> <text>`` line, or None for an empty label or text."""
    label = "_".join(label.split())
    words = fasttext_text(text)
    if not label or not words:
        return None
    return f"__label__{label} {words}\n"


def fasttext_word_share(path: Path) -> float | None:
    """Word tokens / all tokens of a fastText training file, as fastText counts tokens: each
    whitespace-separated token (labels included) plus one ``</s>`` a line. None if empty."""
    tokens = words = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            labels = sum(1 for part in parts if part.startswith("__label__"))
            tokens += len(parts) + 1
            words += len(parts) - labels
    return words / tokens if tokens else None


def convert_tsv(src: Path, dst: Path) -> int:
    """Write ``label<TAB>text`` rows of ``src`` as fastText lines to ``dst``; return the count.

    Rows without a tab or with an empty text are dropped (embedlab's ``on_bad_rows=skip``).
    """
    kept = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for row in fin:
            label, tab, text = row.rstrip("\r\n").partition("\t")
            line = fasttext_line(label, text) if tab else None
            if line is not None:
                fout.write(line)
                kept += 1
    return kept


def write_tsv(path: Path, labels: Iterable[str], texts: Iterable[str]) -> None:
    """Write ``label<TAB>text`` lines atomically (a half-written file is never reused)."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for label, text in zip(labels, texts, strict=True):
            f.write(f"{label}\t{text}\n")
    tmp.replace(path)


def synthetic_dataset(size: int, cache: Path) -> Dataset:
    """The synthetic set with ``size`` train texts as TSV files under ``cache`` (reused)."""
    folder = cache / f"synthetic_{size}"
    train, test = folder / "train.tsv", folder / "test.tsv"
    if not (train.is_file() and test.is_file()):
        # in a child process: a child's peak RSS (ru_maxrss) counts the memory of the process
        # it was forked from, so this one must never hold the generated texts
        folder.mkdir(parents=True, exist_ok=True)
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        code += f"import bench_fasttext as b; b.write_synthetic({size}, {str(folder)!r})"
        subprocess.run([sys.executable, "-c", code], check=True)
    return Dataset(f"synthetic-{size}", train, test, "synthetic", size)


def write_synthetic(size: int, folder: str | Path) -> None:
    """Generate the synthetic set (``size`` train texts) into ``folder``/{train,test}.tsv."""
    from embedlab.data.synthetic import generate

    folder = Path(folder)
    num_test = min(max(1, size // 10), SYNTHETIC_TEST_CAP)
    splits, names = generate({"train": size, "test": num_test})
    for split in ("test", "train"):
        data = splits[split]
        write_tsv(folder / f"{split}.tsv", (names[i] for i in data.labels.tolist()), data.texts)


def resolve_datasets(
    names: Sequence[str], data_dir: Path, sizes: Sequence[int], cache: Path
) -> list[Dataset]:
    """The datasets to run, in order; shared sets whose files are missing are skipped."""
    out: list[Dataset] = []
    for name in names:
        if name == "synthetic":
            out += [synthetic_dataset(n, cache) for n in sizes]
            continue
        train, test = data_dir / name / "train.tsv", data_dir / name / "test.tsv"
        if not data_dir.is_dir():
            print(
                f"skip {name}: data dir {data_dir} not found (set --data-dir or EMBEDLAB_DATA_DIR)"
            )
        elif not (train.is_file() and test.is_file()):
            print(f"skip {name}: {train} or {test} not found")
        else:
            out.append(Dataset(name, train.resolve(), test.resolve(), "shared"))
    return out


# ---------------------------------------------------------------- processes


def run_child(cmd: list[str], env: dict[str, str], logs: Path) -> Child:
    """Run ``cmd`` to completion; wall time and peak RSS (``os.wait4``) of that process."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Child(
        cmd=cmd,
        rc=proc.returncode,
        wall_seconds=wall,
        max_rss_kb=usage.ru_maxrss,
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["EMBEDLAB_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def error_text(child: Child, limit: int = 2000) -> str:
    return f"exit {child.rc}: {(child.stderr or child.stdout)[-limit:]}"


# ---------------------------------------------------------------- fastText


def parse_progress(stderr: str) -> float | None:
    """The last ``words/sec/thread`` value of fastText's ``\\r``-separated progress lines."""
    values = _PROGRESS.findall(stderr)
    return float(values[-1]) if values else None


def parse_fasttext_test(stdout: str) -> dict[str, float]:
    """``fasttext test`` output (``N\\t10``, ``P@1\\t0.700``, ``R@1\\t0.700``) as a dict."""
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        key, _, value = line.strip().partition("\t")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def run_fasttext(
    binary: str,
    train: Path,
    test: Path,
    work: Path,
    threads: int,
    args: list[str],
    word_share: float | None = None,
) -> dict[str, Any]:
    """Train and test once; a run record (accuracy as a fraction, None where unknown).

    ``word_share``: :func:`fasttext_word_share` of ``train``; tokens/s counts word tokens only
    where it is given (else the printed rate, labels and ``</s>`` included)."""
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    env = child_env(threads)
    cmd = [binary, "supervised", "-input", str(train), "-output", str(model)]
    fit = run_child([*cmd, "-thread", str(threads), *args], env, work / "train")
    record: dict[str, Any] = {
        "command": shlex.join(fit.cmd),
        "rc": fit.rc,
        "train_seconds": round(fit.wall_seconds, 3),
        "wall_seconds": round(fit.wall_seconds, 3),
        "startup_seconds": None,
        "max_rss_kb": fit.max_rss_kb,
    }
    if fit.rc != 0:
        return {**record, "error": error_text(fit)}
    words = parse_progress(fit.stderr)
    printed = words * threads if words is not None else None
    record["printed_tokens_per_second"] = printed
    record["tokens_per_second"] = (
        printed * word_share if printed is not None and word_share is not None else printed
    )
    bin_path = model.with_suffix(".bin")
    record["checkpoint_bytes"] = bin_path.stat().st_size if bin_path.is_file() else None
    check = run_child([binary, "test", str(bin_path), str(test)], env, work / "test")
    record["wall_seconds"] = round(fit.wall_seconds + check.wall_seconds, 3)
    record["max_rss_kb"] = max(fit.max_rss_kb, check.max_rss_kb)
    record["rc"] = check.rc
    if check.rc != 0:
        return {**record, "error": error_text(check)}
    scores = parse_fasttext_test(check.stdout)
    record["acc"] = scores.get("P@1")
    record["test_examples"] = scores.get("N")
    return record


# ---------------------------------------------------------------- embedlab


def embedlab_command() -> list[str]:
    local = REPO / ".venv" / "bin" / "embedlab-train"
    if local.is_file():
        return [str(local)]
    found = shutil.which("embedlab-train")
    if found is None:
        raise SystemExit("embedlab-train not found: run `make setup` (or pip install -e .)")
    return [found]


def hydra_value(value: str | Path) -> str:
    """A path as a Hydra override value, quoted when it holds characters the grammar reserves."""
    text = str(value)
    if _HYDRA_SAFE.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def embedlab_overrides(
    ds: Dataset, run_dir: Path, cache_dir: Path, extra: Sequence[str]
) -> list[str]:
    """The default recipe over ``ds``'s files, in ``run_dir``, with ``cache_dir`` as the cache."""
    return [
        "data=files",
        f"data.train={hydra_value(ds.train.resolve())}",
        f"data.test={hydra_value(ds.test.resolve())}",
        "data.format=tsv",
        "data.header=false",
        "data.label_column=0",
        "data.text_column=1",
        "data.on_bad_rows=skip",
        f"hydra.run.dir={hydra_value(run_dir)}",
        "print_config=false",
        "trainer.enable_progress_bar=false",
        f"paths.cache_dir={hydra_value(cache_dir)}",
        *extra,
    ]


def checkpoint_bytes(run_dir: Path) -> int | None:
    """Total size of the files under ``run_dir/checkpoints`` (None without that folder)."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_embedlab(
    ds: Dataset, run_dir: Path, cache_dir: Path, threads: int, extra: Sequence[str]
) -> dict[str, Any]:
    """One ``embedlab-train`` run; a run record built from the process and its metrics.json."""
    cmd = embedlab_command() + embedlab_overrides(ds, run_dir, cache_dir, extra)
    child = run_child(cmd, child_env(threads), run_dir.with_name(run_dir.name + "_logs"))
    record: dict[str, Any] = {
        "command": shlex.join(cmd),
        "rc": child.rc,
        "wall_seconds": round(child.wall_seconds, 3),
        "max_rss_kb": child.max_rss_kb,
    }
    metrics_path = run_dir / "metrics.json"
    if child.rc != 0 or not metrics_path.is_file():
        return {**record, "error": error_text(child)}
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    ckpt = metrics.get(M_CKPT)
    return {
        **record,
        "acc": metrics.get(M_ACC),
        "startup_seconds": metrics.get(M_STARTUP),
        "train_seconds": metrics.get(M_TRAIN),
        "tokens_per_second": metrics.get(M_TOKENS),
        "checkpoint_bytes": ckpt if ckpt is not None else checkpoint_bytes(run_dir),
        "metrics_wall_seconds": metrics.get(M_WALL),
    }


# ---------------------------------------------------------------- summaries


def median(values: Iterable[float | None]) -> float | None:
    """Median of the known values; None when there are none."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


MEDIAN_FIELDS = (
    "acc",
    "wall_seconds",
    "train_seconds",
    "startup_seconds",
    "tokens_per_second",
    "max_rss_kb",
    "checkpoint_bytes",
)


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Per-field medians over the successful runs."""
    ok = [r for r in runs if r.get("rc") == 0 and "error" not in r]
    return {key: median(r.get(key) for r in ok) for key in MEDIAN_FIELDS}


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(num: float | None, den: float | None) -> str:
    """``num / den`` as ``2.50x``; ``-`` when either is unknown or ``den`` is zero."""
    if num is None or not den:
        return "-"
    return f"{num / den:.2f}x"


def target_limit(row: dict[str, Any]) -> float | None:
    """The most embedlab's wall time may be: 3x fastText + 4 s (shared), 1.5x (synthetic >= 1M)."""
    ft = row["fasttext"]["median"].get("wall_seconds")
    if ft is None:
        return None
    if row["kind"] == "shared":
        return 3 * ft + 4
    if row["kind"] == "synthetic" and (row.get("size") or 0) >= SYNTHETIC_TARGET_MIN:
        return 1.5 * ft
    return None


def target_cell(row: dict[str, Any]) -> str:
    limit = target_limit(row)
    if limit is None:
        return "-"
    wall = row["embedlab"]["median"].get("wall_seconds")
    if wall is None:
        return f"≤ {limit:.1f} s"
    return f"≤ {limit:.1f} s {'ok' if wall <= limit else 'MISSED'}"


def mb(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale / 1e6


def percent(value: float | None) -> float | None:
    return None if value is None else 100 * value


MAIN_HEADER = [
    "dataset",
    "texts (train)",
    "fastText acc %",
    "embedlab acc %",
    "fastText wall s",
    "embedlab wall s",
    "wall ratio",
    "target",
    "fastText tokens/s",
    "embedlab tokens/s",
    "throughput ratio",
    "fastText start-up s",
    "embedlab start-up s",
    "embedlab start-up (cached) s",
    "fastText peak RSS MB",
    "embedlab peak RSS MB",
    "fastText ckpt MB",
    "embedlab ckpt MB",
]


def main_row(row: dict[str, Any]) -> list[str]:
    ft, el = row["fasttext"]["median"], row["embedlab"]["median"]
    cached = (row["embedlab"].get("cached") or {}).get("startup_seconds")
    return [
        row["name"],
        f"{row['texts']:,}",
        fmt(percent(ft.get("acc"))),
        fmt(percent(el.get("acc"))),
        fmt(ft.get("wall_seconds"), 2),
        fmt(el.get("wall_seconds"), 2),
        ratio(el.get("wall_seconds"), ft.get("wall_seconds")),
        target_cell(row),
        fmt(ft.get("tokens_per_second"), 0),
        fmt(el.get("tokens_per_second"), 0),
        ratio(el.get("tokens_per_second"), ft.get("tokens_per_second")),
        fmt(ft.get("startup_seconds"), 2),
        fmt(el.get("startup_seconds"), 2),
        fmt(cached, 2),
        fmt(mb(ft.get("max_rss_kb"), 1024)),
        fmt(mb(el.get("max_rss_kb"), 1024)),
        fmt(mb(ft.get("checkpoint_bytes"), 1), 2),
        fmt(mb(el.get("checkpoint_bytes"), 1), 2),
    ]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def main_table(rows: Sequence[dict[str, Any]]) -> str:
    return markdown_table(MAIN_HEADER, (main_row(r) for r in rows))


SCALING_HEADER = [
    "texts (train)",
    "fastText wall s",
    "embedlab wall s",
    "fastText peak RSS MB",
    "embedlab peak RSS MB",
]


def scaling_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The synthetic rows, smallest first."""
    return sorted((r for r in rows if r["kind"] == "synthetic"), key=lambda r: r["texts"])


def scaling_table(rows: Sequence[dict[str, Any]]) -> str:
    cells = []
    for r in scaling_rows(rows):
        ft, el = r["fasttext"]["median"], r["embedlab"]["median"]
        cells.append(
            [
                f"{r['texts']:,}",
                fmt(ft.get("wall_seconds"), 2),
                fmt(el.get("wall_seconds"), 2),
                fmt(mb(ft.get("max_rss_kb"), 1024)),
                fmt(mb(el.get("max_rss_kb"), 1024)),
            ]
        )
    return markdown_table(SCALING_HEADER, cells)


def growth_exponent(points: Sequence[tuple[float, float | None]]) -> float | None:
    """Slope of log(y) against log(x) between the smallest and the largest known x."""
    known = sorted((x, y) for x, y in points if y is not None and y > 0 and x > 0)
    if len(known) < 2 or known[0][0] == known[-1][0]:
        return None
    (x0, y0), (x1, y1) = known[0], known[-1]
    return math.log(y1 / y0) / math.log(x1 / x0)


def growth_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    synth = scaling_rows(rows)
    lines = []
    for tool in TOOLS:
        pts = [(float(r["texts"]), r[tool]["median"].get("wall_seconds")) for r in synth]
        k = growth_exponent(pts)
        where = f"{synth[0]['texts']:,} -> {synth[-1]['texts']:,} texts" if synth else "no sizes"
        value = "- (needs two synthetic sizes with results)" if k is None else f"{k:.2f}"
        lines.append(f"{LABELS[tool]} growth exponent (wall ~ texts^k, {where}): k = {value}")
    return lines


def plot_scaling(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Log-log wall time and peak RSS against train texts, one line per tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synth = scaling_rows(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = (("wall_seconds", 1.0, "wall s"), ("max_rss_kb", 1024 / 1e6, "peak RSS MB"))
    for ax, (key, scale, label) in zip(axes, panels, strict=True):
        for tool in TOOLS:
            pts = [(r["texts"], r[tool]["median"].get(key)) for r in synth]
            pts = [(x, y * scale) for x, y in pts if y]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=LABELS[tool])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("train texts")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("embedlab vs fastText (synthetic)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- driver


def bench_dataset(
    ds: Dataset, args: argparse.Namespace, ft_bin: str | None, work: Path
) -> dict[str, Any]:
    """``args.runs`` interleaved runs of both tools on ``ds`` plus the cached start-up run."""
    work = work / ds.name
    work.mkdir(parents=True)
    row: dict[str, Any] = {
        "name": ds.name,
        "kind": ds.kind,
        "size": ds.size,
        "train": str(ds.train),
        "test": str(ds.test),
    }
    ft_runs: list[dict[str, Any]] = []
    el_runs: list[dict[str, Any]] = []
    train_ft, test_ft = work / "train.ft", work / "test.ft"
    row["texts"] = convert_tsv(ds.train, train_ft)
    convert_tsv(ds.test, test_ft)
    row["fasttext_word_share"] = share = fasttext_word_share(train_ft)
    ft_args, el_args = shlex.split(args.fasttext_args), shlex.split(args.embedlab_args)
    cache = work / "cache_0"
    for i in range(args.runs):
        if ft_bin is not None:
            rec = run_fasttext(
                ft_bin, train_ft, test_ft, work / f"fasttext_{i}", args.threads, ft_args, share
            )
            shutil.rmtree(work / f"fasttext_{i}", ignore_errors=True)
            ft_runs.append(rec)
            log_run(f"{ds.name}: fastText run {i + 1}/{args.runs}", rec)
        shutil.rmtree(cache, ignore_errors=True)  # only the last run's cache is kept
        cache = work / f"cache_{i}"
        rec = run_embedlab(ds, work / f"embedlab_{i}", cache, args.threads, el_args)
        shutil.rmtree(work / f"embedlab_{i}", ignore_errors=True)
        el_runs.append(rec)
        log_run(f"{ds.name}: embedlab run {i + 1}/{args.runs}", rec)
    cached = None
    if el_runs and "error" not in el_runs[-1]:
        extra = CACHED_RUN_OVERRIDES + el_args
        cached = run_embedlab(ds, work / "embedlab_cached", cache, args.threads, extra)
        log_run(f"{ds.name}: embedlab warm-cache start-up run", cached)
    shutil.rmtree(work, ignore_errors=True)
    row["fasttext"] = {"runs": ft_runs, "median": summarize(ft_runs)}
    row["embedlab"] = {"runs": el_runs, "median": summarize(el_runs), "cached": cached}
    return row


def log_run(head: str, rec: dict[str, Any]) -> None:
    """One progress line on stderr."""
    head += ":"
    if "error" in rec:
        print(f"{head} FAILED ({rec['error'][-500:]})", file=sys.stderr)
        return
    print(
        f"{head} wall {fmt(rec.get('wall_seconds'), 2)} s, acc {fmt(percent(rec.get('acc')))} %, "
        f"start-up {fmt(rec.get('startup_seconds'), 2)} s",
        file=sys.stderr,
    )


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def comma_ints(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in comma_list(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from err
    if not sizes or min(sizes) < 10:
        raise argparse.ArgumentTypeError(f"synthetic sizes must be >= 10: {text!r}")
    return sizes


def default_data_dir() -> Path:
    env = os.environ.get("EMBEDLAB_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--datasets",
        type=comma_list,
        default=list(DEFAULT_DATASETS),
        help=f"comma list (default: {','.join(DEFAULT_DATASETS)})",
    )
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="folder of <name>/train.tsv, test.tsv (default: $EMBEDLAB_DATA_DIR or ../shared/data)",
    )
    ap.add_argument(
        "--synthetic-sizes",
        type=comma_ints,
        default=[1_000_000],
        help="comma list of synthetic train sizes (default: 1000000)",
    )
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the table shows medians")
    ap.add_argument("--threads", type=int, default=2, help="threads for both tools")
    ap.add_argument(
        "--out", type=Path, default=Path("reports/bench_fasttext"), help="output folder"
    )
    ap.add_argument(
        "--fasttext-args",
        default=DEFAULT_FASTTEXT_ARGS,
        help=f'fasttext supervised options (default: "{DEFAULT_FASTTEXT_ARGS}"); '
        'write --fasttext-args="-dim 50" when it is a single option',
    )
    ap.add_argument(
        "--embedlab-args",
        default=DEFAULT_EMBEDLAB_ARGS,
        help=f"extra Hydra overrides for embedlab-train (default: {DEFAULT_EMBEDLAB_ARGS!r})",
    )
    ap.add_argument(
        "--scaling",
        action="store_true",
        help="also write the scaling table and scaling.png (synthetic sizes)",
    )
    args = ap.parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        ap.error("--runs and --threads must be >= 1")
    return args


def write_report(
    args: argparse.Namespace, rows: list[dict[str, Any]], command: str, ft_bin: str | None
) -> str:
    """Write the Markdown/JSON (and PNG) outputs; return the Markdown text."""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    table = main_table(rows)
    parts = [
        "# embedlab vs fastText",
        "",
        f"Command: `{command}`",
        "",
        f"Threads: {args.threads}; medians of {args.runs} run(s); "
        f"fastText: `{args.fasttext_args}`"
        + ("" if ft_bin else " (fastText CLI not found)")
        + "; embedlab: default recipe (model=boe), "
        + (f"`{args.embedlab_args}`" if args.embedlab_args else "no extra overrides"),
        "",
        share_line(rows),
        "",
        table,
        "",
    ]
    growth: list[str] = []
    if args.scaling:
        growth = growth_lines(rows)
        plot_scaling(rows, out / "scaling.png")
        parts += ["## Scaling (synthetic)", "", scaling_table(rows), "", *growth, ""]
        parts += ["![scaling](scaling.png)", ""]
    text = "\n".join(parts)
    (out / "bench_fasttext.md").write_text(text, encoding="utf-8")
    payload = {
        "command": command,
        "threads": args.threads,
        "runs": args.runs,
        "fasttext": ft_bin,
        "fasttext_args": args.fasttext_args,
        "embedlab_args": args.embedlab_args,
        "datasets": rows,
    }
    (out / "bench_fasttext.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(table)
    if args.scaling:
        print()
        print(scaling_table(rows))
        print("\n".join(growth))
    return text


def share_line(rows: Sequence[dict[str, Any]]) -> str:
    """The report's note on how the fastText tokens/s column counts."""
    shares = ", ".join(
        f"{r['name']} {r['fasttext_word_share']:.3f}"
        for r in rows
        if r.get("fasttext_word_share") is not None
    )
    return (
        "Tokens/s counts word tokens for both tools: fastText's printed words/sec also counts "
        "each line's label and `</s>`, so its column is the printed rate times its training "
        f"file's word share ({shares or 'none measured'})."
    )


def failed(rows: Iterable[dict[str, Any]]) -> bool:
    """Whether any run (the cached start-up run included) failed."""
    runs = (
        run
        for row in rows
        for run in [*row["fasttext"]["runs"], *row["embedlab"]["runs"], row["embedlab"]["cached"]]
    )
    return any(run is not None and "error" in run for run in runs)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, *(sys.argv if argv is None else [__file__, *argv])])
    ft_bin = shutil.which("fasttext")
    if ft_bin is None:
        print(FASTTEXT_MISSING)
    datasets = resolve_datasets(
        args.datasets, args.data_dir, args.synthetic_sizes, args.out / "data"
    )
    if not datasets:
        print("nothing to run")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_fasttext_") as tmp:
        rows = [bench_dataset(ds, args, ft_bin, Path(tmp)) for ds in datasets]
    write_report(args, rows, command, ft_bin)
    print(f"wrote {args.out / 'bench_fasttext.md'} and {args.out / 'bench_fasttext.json'}")
    return 1 if failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
