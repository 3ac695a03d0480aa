"""The effectiveness report of ``stream-risk backtest --report DIR``: one HTML page.

Written for a credit committee: how well the score ranks customers (ROC and PR
curves), whether it reads as a probability (calibration), how early the first
high or critical warning came before each default, how many warnings of each
level the collections team received per month, what every rule costs and earns
(volume and precision), how customers moved between tiers, and, when a
challenger rule set is given, how it differs from the champion.

The page (``index.html``) embeds its pictures, so it opens in a browser from a
file with no server; the same pictures are written beside it as PNG files.
Plots need matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream_risk.backtest import Run, lead_days
from stream_risk.schemas.outputs import LEVEL_ORDER

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The warning levels' colours, as on the dashboard (blue, yellow, orange, red).
LEVEL_COLOURS = {"low": "#3b82f6", "medium": "#eab308", "high": "#f97316", "critical": "#dc2626"}
#: Every section of the page, in order: (anchor, title).
SECTIONS = (
    ("summary", "Summary"),
    ("roc", "ROC curve of the risk score"),
    ("pr", "Precision-recall curve of the risk score"),
    ("calibration", "Calibration of the risk score"),
    ("lead-time", "Lead time of the first high or critical warning before a default"),
    ("warnings-per-month", "Warnings per month by level"),
    ("rules", "Precision and volume per rule"),
    ("tier-migration", "Tier migration"),
    ("challenger", "Champion and challenger"),
)
#: Shown only when the rule pack proposed limit changes (a credit policy).
LIMIT_SECTION = ("limit-decisions", "Limit decisions")


def roc_points(scores: Sequence[float], labels: Sequence[bool]) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0).

    >>> roc_points([0.9, 0.5, 0.1], [True, False, True])
    [(0.0, 0.0), (0.0, 0.5), (1.0, 0.5), (1.0, 1.0)]
    """
    positives = sum(labels)
    negatives = len(labels) - positives
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    points = [(0.0, 0.0)]
    tp = fp = 0
    for n, (score, label) in enumerate(ranked, start=1):
        tp += label
        fp += not label
        if n == len(ranked) or ranked[n][0] != score:
            fpr = fp / negatives if negatives else 0.0
            points.append((fpr, tp / positives if positives else 0.0))
    return points


def pr_points(scores: Sequence[float], labels: Sequence[bool]) -> list[tuple[float, float]]:
    """(recall, precision) at every distinct threshold, highest threshold first.

    >>> pr_points([0.9, 0.5, 0.1], [True, False, True])
    [(0.5, 1.0), (0.5, 0.5), (1.0, 0.6666666666666666)]
    """
    positives = sum(labels)
    ranked = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    points = []
    tp = 0
    for n, (score, label) in enumerate(ranked, start=1):
        tp += label
        if n == len(ranked) or ranked[n][0] != score:
            points.append((tp / positives if positives else 0.0, tp / n))
    return points


def calibration_bins(
    scores: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean score, observed adverse rate, customers) per score decile band of width 1/bins.

    >>> calibration_bins([0.05, 0.15, 0.12, 0.95], [False, True, False, True], bins=10)
    [(0.05, 0.0, 1), (0.135, 0.5, 2), (0.95, 1.0, 1)]
    """
    groups: dict[int, list[tuple[float, bool]]] = {}
    for score, label in zip(scores, labels, strict=True):
        groups.setdefault(min(int(score * bins), bins - 1), []).append((score, label))
    out = []
    for key in sorted(groups):
        members = groups[key]
        mean = sum(s for s, _ in members) / len(members)
        out.append((round(mean, 10), sum(lab for _, lab in members) / len(members), len(members)))
    return out


def _png(fig: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _figures(runs: dict[str, Run], reports: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures: dict[str, bytes] = {}
    first = next(iter(runs))
    data = {
        name: (
            [o.score for o in run.outcomes.values()],
            [o.adverse for o in run.outcomes.values()],
        )
        for name, run in runs.items()
    }

    def new(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        return fig, ax

    def keep(name: str, fig: Figure) -> None:
        pictures[name] = _png(fig)
        plt.close(fig)

    # The score does not depend on the rule set: one curve (the champion's replay).
    scores, labels = data[first]
    fig, ax = new(
        "ROC curve",
        "false positive rate (share of good customers flagged)",
        "true positive rate (share of defaulters flagged)",
    )
    xs, ys = zip(*roc_points(scores, labels), strict=True)
    auc = reports[first]["roc_auc"]
    ax.plot(xs, ys, label=f"risk score (AUC {auc:.3f})" if auc is not None else "risk score")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.legend(loc="lower right")
    keep("roc", fig)

    fig, ax = new(
        "Precision-recall curve",
        "recall (share of defaulters flagged)",
        "precision (share of flagged who default)",
    )
    points = pr_points(scores, labels)
    if points:
        rs, ps = zip(*points, strict=True)
        ax.plot(rs, ps, label="risk score")
    base = reports[first]["base_rate"]
    if base is not None:
        ax.axhline(base, linestyle="--", color="grey", label=f"base rate {base:.3f}")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right")
    keep("pr", fig)

    fig, ax = new("Calibration", "mean risk score in the band", "observed adverse rate")
    bins = calibration_bins(scores, labels)
    if bins:
        mean, rate, _ = zip(*bins, strict=True)
        ax.plot(mean, rate, marker="o", label="risk score")
        for x, y, n in bins:
            ax.annotate(f"{n:,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.legend(loc="upper left")
    keep("calibration", fig)

    fig, ax = new(
        "Lead time of the first high or critical warning", "days before the default", "defaulters"
    )
    for name in runs:
        leads = lead_days(runs[name].outcomes)
        if leads:
            ax.hist(leads, bins=20, alpha=0.6, label=f"{name} ({len(leads):,} warned)")
    ax.legend(loc="upper right")
    keep("lead-time", fig)

    fig, ax = new(f"Warnings per month by level ({first})", "month", "warnings fired")
    months = list(runs[first].monthly)
    bottom = [0] * len(months)
    for level in LEVEL_ORDER:
        per_month = [runs[first].monthly[m].get(level, 0) for m in months]
        ax.bar(months, per_month, bottom=bottom, color=LEVEL_COLOURS[level], label=level)
        bottom = [b + c for b, c in zip(bottom, per_month, strict=True)]
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(loc="upper left")
    keep("warnings-per-month", fig)

    fig, ax = new(
        f"Precision and volume per rule ({first})",
        "firings per 1,000 customers per month",
        "precision",
    )
    for rule, stat in reports[first]["rules"].items():
        per, precision = stat["per_1000_per_month"], stat["precision"]
        if per is None or precision is None:
            continue
        ax.scatter([per], [precision], color=LEVEL_COLOURS[stat["level"]], edgecolor="black")
        ax.annotate(rule, (per, precision), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_ylim(0, 1.05)
    keep("rules", fig)
    return pictures


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(name: str, pictures: dict[str, bytes], alt: str) -> str:
    data = base64.b64encode(pictures[name]).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _rule_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = sorted(report["rules"].items(), key=lambda kv: -(kv[1]["per_1000_per_month"] or 0.0))
    return [
        [
            name,
            s["level"],
            s["customers"],
            s["per_1000_per_month"],
            s["precision"],
            s["median_lead_days"],
        ]
        for name, s in rows
    ]


def _summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    active = report["high_or_critical_active"]
    lead = report["lead_days_first_high_or_critical"]
    return [
        ["customers with an outcome", report["customers"]],
        ["adverse outcomes", report["adverse"]],
        ["base rate", report["base_rate"]],
        ["ROC AUC of the risk score", report["roc_auc"]],
        ["PR AUC of the risk score", report["pr_auc"]],
        ["high or critical warning active at the outcome: precision", active["precision"]],
        ["high or critical warning active at the outcome: recall", active["recall"]],
        ["defaulters warned high or critical before the outcome", lead["warned_defaulters"]],
        ["median lead of the first high or critical warning (days)", lead["median"]],
        ["warnings per 1,000 customers per month", report["warnings_per_1000_customers_per_month"]],
    ]


def _challenger(names: list[str], reports: dict[str, dict[str, Any]]) -> str:
    if len(names) < 2:
        return "<p>One rule set was evaluated; give <code>--challenger DIR</code> to compare.</p>"
    champion, challenger = names[0], names[1]
    a, b = reports[champion], reports[challenger]
    rows = []
    for (label, value_a), (_, value_b) in zip(_summary_rows(a), _summary_rows(b), strict=True):
        delta = (
            value_b - value_a
            if isinstance(value_a, (int, float)) and isinstance(value_b, (int, float))
            else None
        )
        rows.append([label, value_a, value_b, delta])
    rules = sorted(set(a["rules"]) | set(b["rules"]))
    rule_rows = []
    for rule in rules:
        sa, sb = a["rules"].get(rule, {}), b["rules"].get(rule, {})
        rule_rows.append(
            [
                rule,
                sa.get("per_1000_per_month"),
                sb.get("per_1000_per_month"),
                sa.get("precision"),
                sb.get("precision"),
            ]
        )
    return _table(["measure", champion, challenger, "difference"], rows) + _table(
        [
            "rule",
            f"{champion}: per 1,000 per month",
            f"{challenger}: per 1,000 per month",
            f"{champion}: precision",
            f"{challenger}: precision",
        ],
        rule_rows,
    )


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; color: #1f2937; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d1d5db; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f3f4f6; } img { max-width: 100%; } nav a { margin-right: 0.8rem; }
p.note { color: #4b5563; font-size: 0.9rem; }
"""


def _limit_table(decisions: dict[str, Any]) -> str:
    """Proposed increases against who defaulted; exposure at default the reductions avoid."""
    up, down = decisions["increases"], decisions["reductions"]
    return (
        '<p class="note">Increases: proposed before the outcome, and how many went to customers '
        "who did not default. Reductions: for defaulters with a proposed reduction, the open "
        "balance at default and how much of it lies above the proposed limit.</p>"
        + _table(
            ["measure", "value"],
            [
                ["limit increases proposed", up["proposed"]],
                ["customers given an increase", up["customers"]],
                ["increases to customers who did not default", up["to_customers_without_default"]],
                ["share of increases without a default", up["share_without_default"]],
                ["defaulters with a proposed reduction", down["defaulters_with_a_reduction"]],
                ["exposure at default", down["exposure_at_default"]],
                ["exposure avoided at the proposed limits", down["exposure_avoided"]],
                ["share of exposure avoided", down["share_avoided"]],
            ],
        )
    )


def write_report(out_dir: Path, runs: dict[str, Run], title: str = "stream-risk backtest") -> Path:
    """Write ``index.html`` and one PNG per chart into ``out_dir``; return the page's path.

    ``runs`` maps a rule set's name to its backtest, the champion first; a
    second entry is the challenger.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = {name: run.report() for name, run in runs.items()}
    pictures = _figures(runs, reports)
    for name, png in pictures.items():
        (out_dir / f"{name}.png").write_bytes(png)
    names = list(runs)
    first = reports[names[0]]
    body: dict[str, str] = {}
    body["summary"] = _table(["measure", names[0]], _summary_rows(first)) + _table(
        ["operating point", "target", "score threshold", "share flagged", "precision", "recall"],
        [
            [f"target {kind}", p["target"], p["threshold"], p["share"], p["precision"], p["recall"]]
            for kind, points in first["operating_points"].items()
            for p in points
        ],
    )
    body["roc"] = _img("roc", pictures, "ROC curve")
    body["pr"] = _img("pr", pictures, "precision-recall curve")
    body["calibration"] = _img("calibration", pictures, "calibration plot") + (
        '<p class="note">Customers in bands of 0.1 of the score; the number beside each point '
        "is how many customers the band holds.</p>"
    )
    leads = lead_days(runs[names[0]].outcomes)
    body["lead-time"] = _img("lead-time", pictures, "lead-time histogram") + (
        f'<p class="note">{len(leads):,} defaulters were warned at high or critical before '
        f"the outcome, of {first['adverse']:,}.</p>"
    )
    monthly = runs[names[0]].monthly
    body["warnings-per-month"] = _img("warnings-per-month", pictures, "warnings per month")
    body["warnings-per-month"] += _table(
        ["month", *LEVEL_ORDER],
        [[m, *(monthly[m].get(level, 0) for level in LEVEL_ORDER)] for m in monthly],
    )
    body["rules"] = (
        _img("rules", pictures, "precision and volume per rule")
        + (
            '<p class="note">A warned customer is a hit when it defaulted or went 60 or more days '
            "past due after the rule first fired. Lead: median days from the rule's first firing "
            "to the default.</p>"
        )
        + _table(
            [
                "rule",
                "highest level",
                "customers warned",
                "firings per 1,000 per month",
                "precision",
                "median lead (days)",
            ],
            _rule_rows(first),
        )
    )
    tiers = ("low", "medium", "high")
    migrations = runs[names[0]].migrations
    body["tier-migration"] = (
        '<p class="note">Published tier changes over the replay (rows: from, columns: to).</p>'
        + _table(
            ["from \\ to", *tiers],
            [[a, *(migrations.get(f"{a}->{b}", 0) for b in tiers)] for a in tiers],
        )
    )
    body["challenger"] = _challenger(names, reports)
    shown: tuple[tuple[str, str], ...] = SECTIONS
    decisions = first.get("limit_decisions")
    if decisions:
        shown = (*SECTIONS, LIMIT_SECTION)
        body[LIMIT_SECTION[0]] = _limit_table(decisions)
    nav = "".join(f'<a href="#{anchor}">{html.escape(t)}</a>' for anchor, t in shown)
    sections = "".join(
        f'<section id="{anchor}"><h2>{html.escape(t)}</h2>{body[anchor]}</section>'
        for anchor, t in shown
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{html.escape(title)}</h1><p class="note">Rule sets: '
        f"{html.escape(', '.join(names))} (the first is the champion).</p>"
        f"<nav>{nav}</nav>{sections}</body></html>"
    )
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
