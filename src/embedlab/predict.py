"""``embedlab-predict``: label raw texts (or continue a prompt) with a trained checkpoint."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedlab.cli_args import run
from embedlab.errors import DataError


@dataclass
class PredictArgs:
    """Label texts with a checkpoint: one text per line of a file (or stdin: input=-), or any
    file format data=files reads (csv, tsv, jsonl, fastText; text_column picks the column).
    For a task=lm checkpoint, prompt="..." generates instead."""

    ckpt: str = "???"  # the checkpoint file
    input: str | None = None  # PATH, or - for stdin (one text per line)
    output: str | None = None  # PATH (None: stdout)
    format: str = "jsonl"  # jsonl | csv
    top_k: int | None = None  # keep the k likeliest classes (None: all); LM: sampling top-k
    batch_size: int = 4096
    input_format: str | None = None  # csv | tsv | jsonl | fasttext | text (None: extension)
    text_column: str = "text"  # csv/tsv/jsonl: the column holding the text
    prompt: str | None = None  # task=lm: the text to continue
    max_new_tokens: int = 40
    temperature: float = 0.8
    seed: int = 0
    num_samples: int = 1


def read_texts(args: PredictArgs) -> list[str]:
    """The texts to label: stdin lines, or the rows of a file read like ``data=files`` does."""
    if args.input in (None, "-"):
        return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    from omegaconf import OmegaConf

    from embedlab.data.files import BadRows, read_rows
    from embedlab.data.sources import FilesDataConfig

    path = Path(args.input).expanduser()
    if not path.is_file():
        raise DataError("input file not found", str(path))
    column: Any = int(args.text_column) if args.text_column.isdigit() else args.text_column
    cfg = OmegaConf.structured(
        FilesDataConfig(train=str(path), format=args.input_format, text_column=column)
    )
    cfg.label_column = None
    _, rows = read_rows(path, cfg, BadRows("error"))
    return [r.text for r in rows]


def predict(args: PredictArgs) -> list[dict[str, Any]]:
    from embedlab.inference import load

    model = load(args.ckpt)
    if model.layout == "causal":
        if args.prompt is None and args.input is None:
            args.prompt = ""
        prompts = [args.prompt] if args.prompt is not None else read_texts(args)
        records = [
            {
                "prompt": p,
                "sample": i,
                "text": model.generate(
                    p, args.max_new_tokens, args.temperature, args.top_k, args.seed + i
                ),
            }
            for p in prompts
            for i in range(args.num_samples)
        ]
    else:
        texts = read_texts(args)
        records = [
            {"text": t, **r}
            for t, r in zip(texts, model.predict(texts, args.top_k, args.batch_size), strict=True)
        ]
    _write(records, args, model.labels)
    return records


def _write(
    records: list[dict[str, Any]], args: PredictArgs, labels: list[str] | None = None
) -> None:
    order = {name: i for i, name in enumerate(labels or [])}

    def _label_order(item: tuple[str, float]) -> int:
        return order.get(item[0], 0)

    if args.format not in ("jsonl", "csv"):
        from embedlab.errors import ConfigError

        raise ConfigError([f"format: choose jsonl or csv, got {args.format!r}"])
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "jsonl":
            for r in records:
                out.write(json.dumps(r, ensure_ascii=False) + "\n")
        else:
            flat = []
            for r in records:
                row = {k: v for k, v in r.items() if k != "probs"}
                ranked = list(r.get("probs", {}).items())
                if args.top_k:  # the k likeliest, in rank order: label_1, prob_1, ...
                    for i, (name, p) in enumerate(ranked, 1):
                        row |= {f"label_{i}": name, f"prob_{i}": p}
                else:  # every class, in the checkpoint's label order
                    row |= {f"p_{name}": p for name, p in sorted(ranked, key=_label_order)}
                flat.append(row)
            columns = list(dict.fromkeys(k for r in flat for k in r))
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows(flat)
    finally:
        if out is not sys.stdout:
            out.close()


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``embedlab-predict ckpt=PATH input=PATH|- ...``)."""
    run("embedlab-predict", predict, PredictArgs, argv)


if __name__ == "__main__":
    main()
