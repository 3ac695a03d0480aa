"""``stream-risk backtest``: how good were the scores and warnings, against outcomes.

The events are replayed through the same core as ``stream-risk replay``. For
every customer with a labelled outcome (an ``outcome`` event in the stream, or
a line of ``--labels``), the prediction is the customer's ``risk_score`` and
``tier`` just before the outcome became known, and the warnings are those that
fired before it. ``default`` and ``written_off`` are adverse outcomes;
``current`` and ``recovered`` are not.

Reported: ROC AUC and PR AUC of the score; precision and recall per tier and
per warning level; and how many days before the outcome the first high or
critical warning came (median, p25, p75). When the rule pack proposed limit
changes: the share of increases given to customers who did not default
afterwards, and the exposure at default the reductions would have avoided
(:mod:`stream_risk.limit_effectiveness`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stream_risk.config import load_settings
from stream_risk.core import Context, CustomerState
from stream_risk.core.trainer import Trainer
from stream_risk.limit_effectiveness import LimitDecisions
from stream_risk.limit_effectiveness import render as render_limits
from stream_risk.replay import BadLine, Replayer, open_lines, read_events
from stream_risk.schemas.outputs import LEVEL_ORDER

ADVERSE = frozenset({"default", "written_off"})
DAY = 86_400.0


@dataclass(slots=True)
class Outcome:
    """What was predicted for one customer, and what happened."""

    adverse: bool
    score: float
    tier: str
    at: float | None
    levels: set[str] = field(default_factory=set)
    first_severe_at: float | None = None
    #: A high or critical warning was still firing when the outcome became known
    #: (or, with ``--labels``, at the end of the replay).
    severe_active: bool = False
    #: Warnings fired (escalations not counted again) and months observed until then.
    firings: int = 0
    months: float = 0.0


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve (ties count half), or ``None`` with one class only.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    pairs = sorted(zip(scores, labels, strict=True))
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += average_rank * sum(1 for k in range(i, j) if pairs[k][1])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def pr_auc(scores: list[float], labels: list[bool]) -> float | None:
    """Average precision: the mean precision at each adverse outcome, best scores first.

    >>> pr_auc([0.9, 0.8, 0.1], [True, False, True])
    0.8333333333333333
    """
    positives = sum(labels)
    if positives == 0:
        return None
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    hits = 0
    total = 0.0
    for n, (_, label) in enumerate(ranked, start=1):
        if label:
            hits += 1
            total += hits / n
    return total / positives


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def evaluate(outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """Every metric of the report, as a JSON-ready dict."""
    scores = [o.score for o in outcomes.values()]
    labels = [o.adverse for o in outcomes.values()]
    adverse_total = sum(labels)

    def row(members: list[Outcome]) -> dict[str, Any]:
        hits = sum(o.adverse for o in members)
        return {
            "customers": len(members),
            "adverse": hits,
            "precision": _share(hits, len(members)),
            "recall": _share(hits, adverse_total),
        }

    tiers = {
        tier: row([o for o in outcomes.values() if o.tier == tier])
        for tier in ("low", "medium", "high")
    }
    # A customer counts at a level when a warning of that level or above fired.
    levels = {
        level: row(
            [
                o
                for o in outcomes.values()
                if any(LEVEL_ORDER[v] >= LEVEL_ORDER[level] for v in o.levels)
            ]
        )
        for level in LEVEL_ORDER
    }
    months = sum(o.months for o in outcomes.values())
    leads = [
        (o.at - o.first_severe_at) / DAY
        for o in outcomes.values()
        if o.adverse and o.at is not None and o.first_severe_at is not None
    ]
    return {
        "customers": len(outcomes),
        "adverse": adverse_total,
        "base_rate": _share(adverse_total, len(outcomes)),
        "roc_auc": roc_auc(scores, labels),
        "pr_auc": pr_auc(scores, labels),
        "tiers": tiers,
        "levels": levels,
        "lead_days_first_high_or_critical": {
            "warned_defaulters": len(leads),
            "median": _quantile(leads, 0.5),
            "p25": _quantile(leads, 0.25),
            "p75": _quantile(leads, 0.75),
        },
        "high_or_critical_active": row([o for o in outcomes.values() if o.severe_active]),
        "warnings_per_1000_customers_per_month": (
            1000.0 * sum(o.firings for o in outcomes.values()) / months if months > 0 else None
        ),
    }


def backtest(
    paths: list[Path], ctx: Context, labels: dict[str, str] | None, on_bad: Any
) -> dict[str, Any]:
    warnings: dict[str, list[dict[str, Any]]] = {}

    def collect(warning: dict[str, Any]) -> None:
        if warning["status"] == "firing":
            warnings.setdefault(warning["customer_id"], []).append(warning)

    limits = LimitDecisions()  # effectiveness of limit decisions (credit actions)
    driver = Replayer(ctx, collect, trainer=Trainer(), on_credit_action=limits.add)
    predictions: dict[str, Outcome] = {}
    for ts, file_no, line_no, event in read_events(paths, on_bad):
        if event.type == "outcome" and labels is None:
            driver.advance_to(ts)
            state = driver.states.get(event.customer_id)
            if state is not None and event.customer_id not in predictions:
                predictions[event.customer_id] = Outcome(
                    event.outcome in ADVERSE,
                    state.risk_score,
                    state.tier,
                    ts,
                    severe_active=_severe_active(state),
                    months=_months(state, ts),
                )
                limits.settle_state(event.customer_id, event.outcome in ADVERSE, ts, state)
        driver.apply(event, str(paths[file_no]), line_no, on_bad)
    if labels is not None:
        for customer_id, label in labels.items():
            state = driver.states.get(customer_id)
            if state is not None:
                predictions[customer_id] = Outcome(
                    label in ADVERSE,
                    state.risk_score,
                    state.tier,
                    None,
                    severe_active=_severe_active(state),
                    months=_months(state, state.clock),
                )
                limits.settle_state(customer_id, label in ADVERSE, None, state)
    for customer_id, prediction in predictions.items():
        for w in warnings.get(customer_id, []):
            at = datetime.fromisoformat(w["occurred_at"]).timestamp()
            if prediction.at is not None and at > prediction.at:
                continue
            prediction.levels.add(w["level"])
            prediction.firings += not w.get("escalated", False)
            if w["level"] in ("high", "critical") and (
                prediction.first_severe_at is None or at < prediction.first_severe_at
            ):
                prediction.first_severe_at = at
    report = evaluate(predictions)
    decisions = limits.report()
    if decisions is not None:
        report["limit_decisions"] = decisions
    return report


def _severe_active(state: CustomerState) -> bool:
    return any(alert[1] in ("high", "critical") for alert in state.alerts.values())


def _months(state: CustomerState, until: float | None) -> float:
    """Months the customer was observed (first event to ``until``), 30-day months."""
    if state.first_seen is None or until is None:
        return 0.0
    return max(until - state.first_seen, 0.0) / (30 * DAY)


def read_labels(path: Path) -> dict[str, str]:
    """``customer_id,outcome`` CSV (with a header) or JSON lines with those two fields."""
    labels: dict[str, str] = {}
    with open_lines(path) as fh:
        text = fh.read().decode()
    if path.suffix in (".csv", ".tsv") or path.name.endswith((".csv.gz", ".tsv.gz")):
        dialect = "excel-tab" if ".tsv" in path.name else "excel"
        for row in csv.DictReader(text.splitlines(), dialect=dialect):
            labels[row["customer_id"]] = row["outcome"]
    else:
        for line in text.splitlines():
            if line.strip():
                item = json.loads(line)
                labels[item["customer_id"]] = item["outcome"]
    return labels


def render(report: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [
        f"customers with an outcome: {report['customers']} "
        f"({report['adverse']} adverse, base rate {pct(report['base_rate'])})",
        f"ROC AUC {pct(report['roc_auc'])}   PR AUC {pct(report['pr_auc'])}",
        "",
        f"{'tier':<10}{'customers':>10}{'adverse':>9}{'precision':>11}{'recall':>8}",
    ]
    for tier, row in report["tiers"].items():
        lines.append(
            f"{tier:<10}{row['customers']:>10}{row['adverse']:>9}"
            f"{pct(row['precision']):>11}{pct(row['recall']):>8}"
        )
    lines += ["", f"{'warned at':<10}{'customers':>10}{'adverse':>9}{'precision':>11}{'recall':>8}"]
    for level, row in report["levels"].items():
        lines.append(
            f"{level + '+':<10}{row['customers']:>10}{row['adverse']:>9}"
            f"{pct(row['precision']):>11}{pct(row['recall']):>8}"
        )
    lead = report["lead_days_first_high_or_critical"]
    lines += [
        "",
        f"first high/critical warning before a default: {lead['warned_defaulters']} "
        f"defaulters warned; days ahead median {pct(lead['median'])}, "
        f"p25 {pct(lead['p25'])}, p75 {pct(lead['p75'])}",
    ]
    active = report["high_or_critical_active"]
    rate = report["warnings_per_1000_customers_per_month"]
    lines += [
        f"high/critical warning still active at the outcome: {active['customers']} customers, "
        f"{active['adverse']} adverse; precision {pct(active['precision'])}, "
        f"recall {pct(active['recall'])}",
        f"warnings per 1,000 customers per month: {'-' if rate is None else f'{rate:.1f}'}",
    ]
    lines += render_limits(report.get("limit_decisions"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stream_risk.cli import _rules_or_exit

    settings = load_settings()
    missing = [p for p in [*args.files, *([args.labels] if args.labels else [])] if not p.is_file()]
    if missing:
        print(
            "stream-risk backtest: no such file: " + ", ".join(map(str, missing)), file=sys.stderr
        )
        return 2
    ctx = Context.from_settings(
        settings,
        rules=_rules_or_exit(args.rules, "backtest") if args.rules is not None else None,
        base_currency=args.base_currency,
    )
    bad = 0

    def on_bad(line: BadLine) -> None:
        nonlocal bad
        bad += 1
        if bad <= 20:
            print(f"{line.source}:{line.line}: bad event: {line.reason}", file=sys.stderr)

    labels = read_labels(args.labels) if args.labels else None
    report = backtest(args.files, ctx, labels, on_bad)
    if report["customers"] == 0:
        print(
            "stream-risk backtest: no customer has an outcome (add outcome events or --labels)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="EVENTS", help="event files")
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="outcomes as CSV (customer_id,outcome) or JSON lines, instead of "
        "outcome events; scores are then the final ones",
    )
    p.add_argument("--base-currency", metavar="CUR", help="base currency (default: settings)")
    p.add_argument(
        "--rules", type=Path, metavar="DIR", help="rule set to evaluate (default: the default pack)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
