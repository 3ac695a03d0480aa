"""``stream-risk backtest``: how good were the scores and warnings, against outcomes.

The events are replayed through the same core as ``stream-risk replay``. For
every customer with a labelled outcome (an ``outcome`` event in the stream, or
a line of ``--labels``), the prediction is the customer's ``risk_score`` and
``tier`` just before the outcome became known, and the warnings are those that
fired before it. ``default`` and ``written_off`` are adverse outcomes;
``current`` and ``recovered`` are not.

Reported: ROC AUC and PR AUC of the score; precision and recall per tier and
per warning level; how many days before the outcome the first high or
critical warning came (median, p25, p75); the alert budget per rule (firings
per 1,000 customers per month, precision, median lead); operating points of
the score (the threshold that reaches a target precision or flags a target
share of the portfolio); and, when the rule pack proposed limit changes, the
share of increases given to customers who did not default afterwards and the
exposure at default the reductions would have avoided
(:mod:`stream_risk.limit_effectiveness`).

A rule's precision counts a warned customer as a hit when its outcome is
adverse or when it went 60 or more days past due at or after the rule first
fired (seen after each of its events and at the outcome). Leads are measured to
the outcome, or with ``--labels`` (which carry no date) to the customer's last
event.
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
from stream_risk.core.features import compute, groups_of
from stream_risk.core.ruleset import RuleSet
from stream_risk.core.trainer import Trainer
from stream_risk.core.units import DAY as DAY
from stream_risk.limit_effectiveness import LimitDecisions
from stream_risk.limit_effectiveness import render as render_limits
from stream_risk.replay import BadLine, Replayer, open_lines, read_events
from stream_risk.schemas.outputs import LEVEL_ORDER

ADVERSE = frozenset({"default", "written_off"})
#: Days past due from which a customer counts as seriously delinquent for a rule's precision.
SERIOUS_DPD = 60
_AGING = groups_of(["days_past_due"])
#: Operating points reported for the score: target precisions and portfolio shares.
TARGET_PRECISIONS = (0.5, 0.66, 0.8)
TARGET_SHARES = (0.02, 0.05, 0.10, 0.20)
#: The rule label that sets a rule's risk-score threshold by what it buys.
OPERATING_LABEL = "operating_point"
#: Default targets of the tiers: high buys the likely-default precision, medium watches
#: the riskiest fifth of the portfolio.
TIER_TARGETS = {"high": "precision 0.7", "medium": "share 0.2"}


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
    #: rule -> [firings, first fired at, highest level] before the outcome.
    rules: dict[str, list[Any]] = field(default_factory=dict)
    #: First time the customer was seen 60 or more days past due.
    serious_at: float | None = None
    #: When the lead of a warning is measured to: the outcome, else the last event.
    ends_at: float | None = None


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
    leads = lead_days(outcomes)
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
        "rules": rule_budget(outcomes),
        "operating_points": operating_points(scores, labels),
    }


def _lead(o: Outcome, since: float) -> float | None:
    end = o.at if o.at is not None else o.ends_at
    return None if end is None else (end - since) / DAY


def lead_days(outcomes: dict[str, Outcome]) -> list[float]:
    """Days from the first high or critical warning to the outcome, per warned defaulter.

    Measured to the customer's last event when the outcome has no date (``--labels``),
    as the rule budget's leads are.
    """
    leads = []
    for o in outcomes.values():
        if o.adverse and o.first_severe_at is not None:
            lead = _lead(o, o.first_severe_at)
            if lead is not None:
                leads.append(lead)
    return leads


def rule_budget(outcomes: dict[str, Outcome]) -> dict[str, dict[str, Any]]:
    """Per rule: firings per 1,000 customers per month, precision and median lead.

    A warned customer is a hit when its outcome is adverse or it went 60+ days
    past due at or after the rule first fired; the lead is taken for adverse
    customers only, from the rule's first firing.

    >>> o = Outcome(True, 0.9, "high", 30 * DAY, months=1.0, rules={"late": [2, 0.0, "high"]})
    >>> p = Outcome(False, 0.1, "low", 30 * DAY, months=1.0, rules={"late": [1, 0.0, "low"]})
    >>> budget = rule_budget({"a": o, "b": p})["late"]
    >>> budget["per_1000_per_month"], budget["precision"], budget["median_lead_days"]
    (1500.0, 0.5, 30.0)
    """
    months = sum(o.months for o in outcomes.values())
    names = sorted({name for o in outcomes.values() for name in o.rules})
    budget: dict[str, dict[str, Any]] = {}
    for name in names:
        firings = 0
        warned = hits = 0
        leads: list[float] = []
        level = "low"
        for o in outcomes.values():
            stat = o.rules.get(name)
            if stat is None:
                continue
            count, first_at, top = stat
            firings += count
            warned += 1
            if LEVEL_ORDER[top] > LEVEL_ORDER[level]:
                level = top
            hit = o.adverse or (o.serious_at is not None and o.serious_at >= first_at)
            hits += hit
            if o.adverse:
                lead = _lead(o, first_at)
                if lead is not None:
                    leads.append(lead)
        budget[name] = {
            "level": level,
            "firings": firings,
            "customers": warned,
            "per_1000_per_month": 1000.0 * firings / months if months > 0 else None,
            "precision": _share(hits, warned),
            "median_lead_days": _quantile(leads, 0.5),
        }
    return budget


def operating_points(scores: list[float], labels: list[bool]) -> dict[str, list[dict[str, Any]]]:
    """Score thresholds for a target precision and for a target share of the portfolio.

    For a precision: the lowest threshold whose flagged customers (score at or
    above it) reach the target, so recall is as high as that precision allows.
    For a share: the threshold that flags that share of the customers.

    >>> points = operating_points([0.9, 0.8, 0.7, 0.2], [True, True, False, False])
    >>> points["precision"][1]["threshold"], points["precision"][1]["recall"]
    (0.7, 1.0)
    >>> points["share"][3]
    {'target': 0.2, 'threshold': 0.9, 'share': 0.25, 'precision': 1.0, 'recall': 0.5}
    """
    cuts = _cuts(scores, labels)
    return {
        "precision": [_point(cuts, "precision", t, labels) for t in TARGET_PRECISIONS],
        "share": [_point(cuts, "share", t, labels) for t in TARGET_SHARES],
    }


def _cuts(scores: list[float], labels: list[bool]) -> list[tuple[float, int, int]]:
    """One cut per distinct score, highest first: (score, flagged at or above it, hits)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    total = len(ranked)
    cuts: list[tuple[float, int, int]] = []
    hits = 0
    for n, (score, label) in enumerate(ranked, start=1):
        hits += label
        if n == total or ranked[n][0] != score:
            cuts.append((score, n, hits))
    return cuts


def _point(
    cuts: list[tuple[float, int, int]], kind: str, target: float, labels: list[bool]
) -> dict[str, Any]:
    """The operating point of one target: ``kind`` is ``precision`` or ``share``."""
    total, positives = len(labels), sum(labels)
    if kind == "precision":
        # The lowest threshold that still reaches the precision: recall as high as it allows.
        cut = next((c for c in reversed(cuts) if c[2] / c[1] >= target), None)
    else:
        cut = next((c for c in cuts if c[1] >= target * total), cuts[-1] if cuts else None)
    if cut is None:
        return {
            "target": target,
            "threshold": None,
            "share": None,
            "precision": None,
            "recall": None,
        }
    threshold, flagged, hit = cut
    return {
        "target": target,
        "threshold": threshold,
        "share": flagged / total,
        "precision": hit / flagged,
        "recall": _share(hit, positives),
    }


def parse_target(text: str) -> tuple[str, float]:
    """``"precision 0.66"`` or ``"share 5%"`` as (kind, target); ``ValueError`` otherwise.

    >>> parse_target("precision 0.66"), parse_target("share 5%")
    (('precision', 0.66), ('share', 0.05))
    """
    kind, _, value = text.strip().partition(" ")
    value = value.strip()
    number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    if kind not in ("precision", "share") or not 0 < number <= 1:
        raise ValueError(f"an operating point is 'precision P' or 'share S' in (0, 1]: {text!r}")
    return kind, number


def calibrate(
    rules: RuleSet,
    scores: list[float],
    labels: list[bool],
    tier_targets: dict[str, tuple[str, float]],
) -> dict[str, Any]:
    """Score thresholds of the pack's operating points, from the learned model's scores.

    A rule labelled ``operating_point: "precision 0.66"`` (or ``"share 0.05"``)
    compares ``risk_score`` with a threshold; calibrated, the threshold is the
    one that buys that precision (or flags that share of the portfolio) on
    these customers. The tiers' thresholds likewise, from ``tier_targets``
    (``STREAM_RISK_TIER_THRESHOLDS``).
    """
    cuts = _cuts(scores, labels)
    found: list[dict[str, Any]] = []
    for rule in rules.rules:
        spec = rule.labels.get(OPERATING_LABEL)
        if not spec:
            continue
        kind, target = parse_target(spec)
        current = next(
            (
                lit
                for name, op, lit in rule.condition.comparisons
                if name == "risk_score" and op in (">=", ">") and isinstance(lit, float)
            ),
            None,
        )
        point = _point(cuts, kind, target, labels)
        found.append({"rule": rule.name, "kind": kind, "current": current, **point})
    tiers = {
        tier: {"kind": kind, **_point(cuts, kind, target, labels)}
        for tier, (kind, target) in tier_targets.items()
    }
    thresholds = {tier: point["threshold"] for tier, point in tiers.items()}
    setting = None
    if all(isinstance(v, float) for v in thresholds.values()) and set(thresholds) == {
        "medium",
        "high",
    }:
        medium, high = float(thresholds["medium"]), float(thresholds["high"])
        setting = {"default": {"medium": round(min(medium, high), 4), "high": round(high, 4)}}
    return {"rules": found, "tiers": tiers, "tier_thresholds": setting}


@dataclass(slots=True)
class Run:
    """What one backtest replay saw: the outcomes and the warning traffic over time."""

    outcomes: dict[str, Outcome]
    #: "YYYY-MM" -> level -> warnings fired that month (all customers, escalations apart).
    monthly: dict[str, dict[str, int]]
    #: "before->after" -> published tier changes.
    migrations: dict[str, int]
    #: The proposed limit decisions and what became of the customers.
    limits: LimitDecisions = field(default_factory=LimitDecisions)

    def report(self) -> dict[str, Any]:
        report = evaluate(self.outcomes)
        report["warnings_per_month"] = self.monthly
        report["tier_migration"] = self.migrations
        decisions = self.limits.report()
        if decisions is not None:
            report["limit_decisions"] = decisions
        return report


def _serious(state: CustomerState, now: float) -> bool:
    return int(compute(state, now, _AGING).get("days_past_due") or 0) >= SERIOUS_DPD


def replay_outcomes(
    paths: list[Path], ctx: Context, labels: dict[str, str] | None, on_bad: Any
) -> Run:
    """Replay the events and collect, per customer with an outcome, what was predicted."""
    warnings: dict[str, list[dict[str, Any]]] = {}
    monthly: dict[str, dict[str, int]] = {}
    migrations: dict[str, int] = {}

    fired: set[str] = set()

    def collect(warning: dict[str, Any]) -> None:
        if warning["status"] == "firing":
            # One warning counts once: escalations and watch-list updates re-use its id.
            new = warning["warning_id"] not in fired and not warning.get("escalated", False)
            fired.add(warning["warning_id"])
            warning = {**warning, "new": new}
            warnings.setdefault(warning["customer_id"], []).append(warning)
            if new:
                month = monthly.setdefault(str(warning["occurred_at"])[:7], {})
                month[warning["level"]] = month.get(warning["level"], 0) + 1

    def migrate(change: dict[str, Any]) -> None:
        key = f"{change['before']}->{change['after']}"
        migrations[key] = migrations.get(key, 0) + 1

    limits = LimitDecisions()  # effectiveness of limit decisions (credit actions)
    driver = Replayer(
        ctx, collect, trainer=Trainer(), on_tier_change=migrate, on_credit_action=limits.add
    )
    predictions: dict[str, Outcome] = {}
    serious_at: dict[str, float] = {}
    for ts, file_no, line_no, event in read_events(paths, on_bad):
        customer_id = event.customer_id
        if event.type == "outcome" and labels is None:
            driver.advance_to(ts)
            state = driver.states.get(customer_id)
            if state is not None and customer_id not in predictions:
                if customer_id not in serious_at and _serious(state, ts):
                    serious_at[customer_id] = ts
                predictions[customer_id] = Outcome(
                    event.outcome in ADVERSE,
                    state.risk_score,
                    state.tier,
                    ts,
                    severe_active=_severe_active(state),
                    months=_months(state, ts),
                    ends_at=ts,
                )
                limits.settle_state(event.customer_id, event.outcome in ADVERSE, ts, state)
        driver.apply(event, str(paths[file_no]), line_no, on_bad)
        if customer_id not in serious_at and customer_id not in predictions:
            state = driver.states.get(customer_id)
            if state is not None and _serious(state, ts):
                serious_at[customer_id] = ts
    if labels is not None:
        for customer_id, label in labels.items():
            state = driver.states.get(customer_id)
            if state is not None:
                end = state.clock
                if customer_id not in serious_at and end is not None and _serious(state, end):
                    serious_at[customer_id] = end
                predictions[customer_id] = Outcome(
                    label in ADVERSE,
                    state.risk_score,
                    state.tier,
                    None,
                    severe_active=_severe_active(state),
                    months=_months(state, end),
                    ends_at=end,
                )
                limits.settle_state(customer_id, label in ADVERSE, None, state)
    for customer_id, prediction in predictions.items():
        prediction.serious_at = serious_at.get(customer_id)
        members: dict[str, set[str]] = {}  # watch-list warning id -> its rules so far
        for w in warnings.get(customer_id, []):
            at = datetime.fromisoformat(w["occurred_at"]).timestamp()
            if prediction.at is not None and at > prediction.at:
                continue
            prediction.levels.add(w["level"])
            new = bool(w["new"])
            prediction.firings += new
            _count(prediction, w["rule"], int(new), at, w["level"])
            if w.get("group"):
                # A watch list is one warning; each rule joining it is budgeted apart
                # (not added to the warning count) so the list's members can be judged.
                seen = members.setdefault(w["warning_id"], set())
                for rule in str(w["labels"].get("rules", "")).split(","):
                    if rule and rule not in seen:
                        seen.add(rule)
                        _count(prediction, f"{w['group']}/{rule}", 1, at, w["level"])
            if w["level"] in ("high", "critical") and (
                prediction.first_severe_at is None or at < prediction.first_severe_at
            ):
                prediction.first_severe_at = at
    return Run(predictions, dict(sorted(monthly.items())), migrations, limits)


def _count(prediction: Outcome, rule: str, firings: int, at: float, level: str) -> None:
    """Add warnings of one rule to a customer's budget: count, first time, highest level."""
    stat = prediction.rules.setdefault(rule, [0, at, level])
    stat[0] += firings
    stat[1] = min(stat[1], at)
    if LEVEL_ORDER[level] > LEVEL_ORDER[stat[2]]:
        stat[2] = level


def backtest(
    paths: list[Path], ctx: Context, labels: dict[str, str] | None, on_bad: Any
) -> dict[str, Any]:
    """Replay the events and report every metric (see :func:`evaluate`)."""
    return replay_outcomes(paths, ctx, labels, on_bad).report()


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
        "",
        "alert budget per rule (hit: adverse outcome or 60+ days past due after the warning)",
        f"{'rule':<32}{'level':<9}{'customers':>10}{'/1000/month':>12}{'precision':>11}"
        f"{'lead days':>10}",
    ]
    for name, stat in sorted(
        report["rules"].items(), key=lambda kv: -(kv[1]["per_1000_per_month"] or 0.0)
    ):
        per = stat["per_1000_per_month"]
        median_lead = stat["median_lead_days"]
        lines.append(
            f"{name:<32}{stat['level']:<9}{stat['customers']:>10}"
            f"{'-' if per is None else f'{per:.1f}':>12}{pct(stat['precision']):>11}"
            f"{'-' if median_lead is None else f'{median_lead:.0f}':>10}"
        )
    lines += ["", "operating points of the risk score (flagged: score at or above the threshold)"]
    lines.append(f"{'target':<18}{'threshold':>10}{'share':>8}{'precision':>11}{'recall':>8}")
    for kind, points in report["operating_points"].items():
        for point in points:
            lines.append(
                f"{kind + ' ' + format(point['target'], '.2f'):<18}{pct(point['threshold']):>10}"
                f"{pct(point['share']):>8}{pct(point['precision']):>11}{pct(point['recall']):>8}"
            )
    lines += render_calibration(report.get("calibration"))
    lines += render_limits(report.get("limit_decisions"))
    return "\n".join(lines)


def render_calibration(calibration: dict[str, Any] | None) -> list[str]:
    """The pack's operating points, calibrated: what each threshold should be."""
    if not calibration:
        return []

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [
        "",
        "operating points of the pack, calibrated on these customers "
        "(rules labelled operating_point; tiers by --tier-high/--tier-medium)",
        f"{'':<24}{'target':<18}{'now':>8}{'calibrated':>12}{'share':>8}"
        f"{'precision':>11}{'recall':>8}",
    ]
    rows = [(f"rule {r['rule']}", r, r["current"]) for r in calibration["rules"]]
    rows += [(f"tier {tier}", t, None) for tier, t in calibration["tiers"].items()]
    for name, point, now in rows:
        lines.append(
            f"{name:<24}{point['kind'] + ' ' + format(point['target'], '.2f'):<18}{num(now):>8}"
            f"{num(point['threshold']):>12}{num(point['share']):>8}"
            f"{num(point['precision']):>11}{num(point['recall']):>8}"
        )
    setting = calibration.get("tier_thresholds")
    if setting is not None:
        lines.append(f"STREAM_RISK_TIER_THRESHOLDS='{json.dumps(setting)}'")
    return lines


def run(args: argparse.Namespace) -> int:
    from stream_risk.cli.common import rules_or_exit

    settings = load_settings()
    missing = [p for p in [*args.files, *([args.labels] if args.labels else [])] if not p.is_file()]
    if missing:
        print(
            "stream-risk backtest: no such file: " + ", ".join(map(str, missing)), file=sys.stderr
        )
        return 2
    if args.challenger is not None and args.report is None:
        print("stream-risk backtest: --challenger needs --report DIR", file=sys.stderr)
        return 2

    def context(rules: Path | None) -> Context:
        return Context.from_settings(
            settings,
            rules=rules_or_exit(rules, "backtest") if rules is not None else None,
            base_currency=args.base_currency,
        )

    bad = 0

    def on_bad(line: BadLine) -> None:
        nonlocal bad
        bad += 1
        if bad <= 20:
            print(f"{line.source}:{line.line}: bad event: {line.reason}", file=sys.stderr)

    try:
        tier_targets = {
            "high": parse_target(args.tier_high),
            "medium": parse_target(args.tier_medium),
        }
    except ValueError as exc:
        print(f"stream-risk backtest: {exc}", file=sys.stderr)
        return 2
    labels = read_labels(args.labels) if args.labels else None
    ctx = context(args.rules)
    champion = replay_outcomes(args.files, ctx, labels, on_bad)
    report = champion.report()
    outcomes = list(champion.outcomes.values())
    try:
        report["calibration"] = calibrate(
            ctx.rules, [o.score for o in outcomes], [o.adverse for o in outcomes], tier_targets
        )
    except ValueError as exc:  # a rule's operating_point label that is not a target
        print(f"stream-risk backtest: {exc}", file=sys.stderr)
        return 2
    if report["customers"] == 0:
        print(
            "stream-risk backtest: no customer has an outcome (add outcome events or --labels)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    if args.report is not None:
        try:
            from stream_risk.report import write_report
        except ImportError as exc:  # matplotlib is an optional extra
            print(
                f"stream-risk backtest: --report needs the 'report' extra ({exc})", file=sys.stderr
            )
            return 2
        runs = {str(args.rules or "default pack"): champion}
        if args.challenger is not None:
            bad = 21  # the same bad lines again: already reported
            runs[str(args.challenger)] = replay_outcomes(
                args.files, context(args.challenger), labels, on_bad
            )
        page = write_report(args.report, runs)
        print(f"report: {page}", file=sys.stderr)
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
    p.add_argument(
        "--tier-high",
        default=TIER_TARGETS["high"],
        metavar="TARGET",
        help="what the high tier should buy: 'precision P' or 'share S' of the portfolio "
        f"(default: {TIER_TARGETS['high']!r}); the report gives the score thresholds "
        "(STREAM_RISK_TIER_THRESHOLDS) that reach it",
    )
    p.add_argument(
        "--tier-medium",
        default=TIER_TARGETS["medium"],
        metavar="TARGET",
        help=f"the same for the medium tier (default: {TIER_TARGETS['medium']!r})",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write an HTML effectiveness report (index.html and PNGs) into DIR",
    )
    p.add_argument(
        "--challenger",
        type=Path,
        metavar="DIR",
        help="a second rule set replayed for the report's champion/challenger comparison",
    )
