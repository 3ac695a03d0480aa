"""Prepare a held-out evaluation of the risk score on the UCI credit-default data.

The table ("default of credit card clients", UCI id 350) is split by row
order: the first ``--train`` customers are converted with their outcome
events, the rest one year later (``--shift-days``) and without outcomes, so
the model learns from one cohort and scores the next one live. A labels file
(``customer_id,outcome``) for the held-out customers is written next to the
events. Then:

    stream-risk backtest OUT/train.jsonl.gz OUT/holdout.jsonl.gz \\
        --labels OUT/holdout-labels.csv --base-currency TWD

replays both together and reports ROC AUC and PR AUC of the held-out
customers' final ``risk_score``, precision and recall per tier and level.

The converter ``to_events.py`` shipped with the data is run as it is; it is
found next to the table unless ``--converter`` names it.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

DEFAULT_COLUMN = "default payment next month"


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", type=Path, help="the UCI table (tab-separated, with header)")
    p.add_argument("--out", type=Path, required=True, help="directory for the split files")
    p.add_argument("--train", type=int, default=15_000, help="customers with outcomes (15000)")
    p.add_argument(
        "--shift-days", type=int, default=365, help="how much later the held-out cohort runs"
    )
    p.add_argument("--converter", type=Path, help="to_events.py (default: next to the table)")


def run(args: argparse.Namespace) -> int:
    converter = args.converter or args.table.parent / "to_events.py"
    for path, what in ((args.table, "table"), (converter, "converter")):
        if not path.is_file():
            print(f"stream-risk uci-split: no such {what}: {path}", file=sys.stderr)
            return 2
    with args.table.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    if "ID" not in fields or DEFAULT_COLUMN not in fields:
        print(
            f"stream-risk uci-split: {args.table} lacks the ID or {DEFAULT_COLUMN!r} column",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.train < len(rows):
        print(
            f"stream-risk uci-split: --train must be between 1 and {len(rows) - 1}",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    parts = {"train": rows[: args.train], "holdout": rows[args.train :]}
    for name, part in parts.items():
        table = args.out / f"{name}.tsv"
        with table.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fields, delimiter="\t")
            writer.writeheader()
            writer.writerows(part)
        options = ["--outcomes"] if name == "train" else ["--shift-days", str(args.shift_days)]
        events = args.out / f"{name}.jsonl.gz"
        subprocess.run(
            [sys.executable, str(converter), str(table), *options, "-o", str(events)],
            check=True,
        )
        print(f"uci-split: {len(part)} customers -> {events}", file=sys.stderr)
    labels = args.out / "holdout-labels.csv"
    with labels.open("w", newline="") as fh:
        label_writer = csv.writer(fh)
        label_writer.writerow(["customer_id", "outcome"])
        for row in parts["holdout"]:
            adverse = row[DEFAULT_COLUMN].strip() in ("1", "1.0")
            label_writer.writerow(
                [f"uci-{int(float(row['ID']))}", "default" if adverse else "current"]
            )
    print(f"uci-split: labels of the held-out customers -> {labels}", file=sys.stderr)
    return 0
