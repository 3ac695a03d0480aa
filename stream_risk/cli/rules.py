"""Early-warning rule sets: check them, publish them to the running workers, test them.

  stream-risk rules check DIR             validate every rule file in DIR; list all errors
  stream-risk rules publish DIR           validate, then publish as the next version to the
                                          rules topic; every worker switches at once
  stream-risk rules test DIR EVENTS...    replay EVENTS under DIR (challenger) and under the
                                          active rule set (champion); show the difference

Rule files are YAML shaped like Prometheus rule files (see the default pack in
rules/): groups of rules with name, expr (CEL over features, scores and
customer fields), for, level, segments, labels, annotations, actions and
escalate, and an optional tiers section. Errors print as
FILE:LINE:COL: GROUP/RULE: message; check and publish exit 1 on any error, and a
rule set with errors is never published.

check and publish also time every expression on a sample of inputs: one that
takes longer than the per-evaluation budget (--budget-ms, default 2 ms) is an
error, as are expressions beyond the size and macro-nesting limits and template
formats wider than 64 characters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stream_risk.config import load_settings
from stream_risk.core.rulefmt import RuleError, Where, parse_file
from stream_risk.core.ruleset import (
    RuleSet,
    default_rules,
    digest_of,
    load_files,
    read_dir,
    variable_kind,
)
from stream_risk.core.units import DAY

#: Default per-evaluation budget of one expression (milliseconds).
BUDGET_MS = 2.0
#: Feature values the budget is measured on: numbers across their usual range.
SAMPLE_NUMBERS = (0.0, 1.0, 45.0, 1e6)


def sample_inputs(variables: Iterable[str]) -> list[dict[str, Any]]:
    """Inputs an expression is timed on: each number of :data:`SAMPLE_NUMBERS`, labels as text.

    >>> [s["days_past_due"] for s in sample_inputs(["days_past_due", "tier"])]
    [0.0, 1.0, 45.0, 1000000.0]
    >>> sample_inputs(["tier"])[0]["tier"]
    'medium'
    """
    out = []
    for number in SAMPLE_NUMBERS:
        sample: dict[str, Any] = {}
        for name in variables:
            kind = variable_kind(name)
            sample[name] = "medium" if kind in ("label", "either") else number
        out.append(sample)
    return out


def _evaluation_ms(program: Any, samples: list[dict[str, Any]], repeat: int = 3) -> float:
    """The slowest sample's time of one evaluation (best of ``repeat``: noise only adds)."""
    slowest = 0.0
    for sample in samples:
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            # A missing or mistyped value raises: the engine treats that as false.
            with contextlib.suppress(Exception):
                program.execute(sample)
            best = min(best, time.perf_counter() - started)
            if best * 1000 > BUDGET_MS * 50:
                break  # far over any budget: do not spend seconds measuring it exactly
        slowest = max(slowest, best)
    return slowest * 1000


def budget_errors(rules: RuleSet, files: dict[str, str], budget_ms: float) -> list[RuleError]:
    """Every expression whose evaluation on a sample takes longer than ``budget_ms``."""
    where: dict[str, tuple[Where, list[Where]]] = {}
    for name, text in files.items():
        for group in parse_file(text, name)[0].groups:
            for spec in group.rules:
                where[spec.name] = (spec.expr_at, [e.expr_at for e in spec.escalate])
    errors = []
    for rule in rules.rules:
        expr_at, escalations = where[rule.name]
        conditions = [(rule.condition, expr_at)]
        conditions += [(e.condition, at) for e, at in zip(rule.escalate, escalations, strict=True)]
        for condition, at in conditions:
            ms = _evaluation_ms(condition.program, sample_inputs(condition.variables))
            if ms > budget_ms:
                message = (
                    f"expr takes {ms:.1f} ms per evaluation on a sample, above the budget of "
                    f"{budget_ms:g} ms (every customer's every event evaluates it)"
                )
                errors.append(RuleError(at.file, at.line, at.col, rule.group, rule.name, message))
    return errors


def _load(
    directory: Path, version: str | None = None, budget_ms: float | None = None
) -> tuple[RuleSet | None, dict[str, str]]:
    """Load DIR, printing every error; file names are shown as given.

    With ``budget_ms``, every expression is also timed on a sample (see :func:`budget_errors`).
    """
    try:
        files = read_dir(directory)
    except FileNotFoundError as exc:
        print(f"stream-risk rules: {exc}", file=sys.stderr)
        return None, {}
    rules, errors = load_files(files, version)
    if rules is not None and budget_ms is not None:
        errors = budget_errors(rules, files, budget_ms)
        if errors:
            rules = None
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"stream-risk rules: {len(errors)} error(s) in {directory}", file=sys.stderr)
    return rules, files


def _summary(rules: RuleSet) -> str:
    from stream_risk.core.creditpolicy import policy_of

    groups = len({r.group for r in rules.rules})
    text = f"{len(rules.rules)} rules in {groups} groups"
    credit = policy_of(rules)
    if credit is not None:
        parts = []
        if credit.assessment is not None:
            method = credit.assessment
            parts.append(f"{len(method.factors)} factors, {len(method.grades)} grades")
        if credit.review is not None:
            parts.append(f"review every {credit.review.every / DAY:g} days")
        if credit.increases is not None:
            parts.append(f"increases for {'/'.join(credit.increases.tiers)}")
        text += f", credit policy ({'; '.join(parts)})"
    return f"{text} (digest {rules.digest[:12]})"


def cmd_check(args: argparse.Namespace) -> int:
    rules, files = _load(args.dir, budget_ms=args.budget_ms)
    if rules is None:
        return 1
    print(f"{args.dir}: {len(files)} files, {_summary(rules)}: OK")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from stream_risk import rules_topic
    from stream_risk.kafka_admin import KafkaUnavailable, ensure_topics

    rules, files = _load(args.dir, budget_ms=args.budget_ms)
    if rules is None:
        print("stream-risk rules publish: nothing published", file=sys.stderr)
        return 1
    settings = load_settings()
    topic = settings.topic("rules")
    try:
        ensure_topics(settings)
        active = rules_topic.read_latest(settings.kafka_bootstrap, topic)
    except (KafkaUnavailable, TimeoutError, ValueError) as exc:
        print(f"stream-risk rules publish: {exc}", file=sys.stderr)
        return 1
    # Published by base name: positions in worker logs read like the check's.
    named = {Path(name).name: text for name, text in files.items()}
    if active is not None and active.digest == digest_of(named) and not args.force:
        print(f"{topic}: version {active.version} already has these rules; nothing published")
        return 0
    version = (active.version if active is not None else 0) + 1
    rules_topic.publish(settings.kafka_bootstrap, topic, version, named)
    print(f"{topic}: published version {version}: {_summary(rules)}")
    return 0


def _replay(rules: RuleSet, files: list[Path], base_currency: str | None) -> list[dict[str, Any]]:
    from stream_risk.core import Context
    from stream_risk.core.trainer import Trainer
    from stream_risk.replay import Replayer, read_events

    settings = load_settings()
    ctx = Context.from_settings(settings, rules=rules, base_currency=base_currency)
    warnings: list[dict[str, Any]] = []
    driver = Replayer(ctx, warnings.append, trainer=Trainer())
    events = read_events(files, lambda bad: None, settings.replay_max_ahead_days * DAY)
    for _, file_no, line_no, event in events:
        driver.apply(event, str(files[file_no]), line_no, lambda bad: None)
    if events:
        driver.advance_to(events[-1][0])
    return warnings


def compare(champion: list[dict[str, Any]], challenger: list[dict[str, Any]]) -> dict[str, Any]:
    """Firings per rule and level under each rule set, and the customers only one warns.

    >>> a = [{"customer_id": "c1", "rule": "r", "level": "high", "status": "firing"}]
    >>> compare(a, [])["only_champion"]
    {'high': ['c1']}
    """

    def firings(warnings: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
        return Counter(
            (w["rule"], w["level"])
            for w in warnings
            if w["status"] == "firing" and not w.get("escalated")
        )

    def warned(warnings: list[dict[str, Any]]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for w in warnings:
            if w["status"] == "firing":
                out.setdefault(w["level"], set()).add(w["customer_id"])
        return out

    a, b = firings(champion), firings(challenger)
    wa, wb = warned(champion), warned(challenger)
    levels = sorted(set(wa) | set(wb))
    return {
        "rules": [
            {
                "rule": rule,
                "level": level,
                "champion": a[(rule, level)],
                "challenger": b[(rule, level)],
            }
            for rule, level in sorted(set(a) | set(b))
        ],
        "only_champion": {
            lv: sorted(wa.get(lv, set()) - wb.get(lv, set()))
            for lv in levels
            if wa.get(lv, set()) - wb.get(lv, set())
        },
        "only_challenger": {
            lv: sorted(wb.get(lv, set()) - wa.get(lv, set()))
            for lv in levels
            if wb.get(lv, set()) - wa.get(lv, set())
        },
        "firings": {"champion": sum(a.values()), "challenger": sum(b.values())},
    }


def _champion(args: argparse.Namespace) -> tuple[RuleSet | None, str]:
    if args.active is not None:
        rules, _ = _load(args.active)
        return rules, str(args.active)
    if args.against_default:
        return default_rules(), "the default pack"
    from stream_risk import rules_topic
    from stream_risk.core.ruleset import load_files as compile_files

    settings = load_settings()
    topic = settings.topic("rules")
    try:
        active = rules_topic.read_latest(settings.kafka_bootstrap, topic, timeout=15.0)
    except Exception as exc:  # Kafka down or unreachable: say how to do without it
        print(
            f"stream-risk rules test: cannot read the active rule set from {topic} ({exc}); "
            "use --active DIR or --against-default",
            file=sys.stderr,
        )
        return None, ""
    if active is None:
        return default_rules(), f"the default pack ({topic} is empty)"
    rules, _ = compile_files(active.files, str(active.version))
    return rules, f"version {active.version} from {topic}"


def cmd_test(args: argparse.Namespace) -> int:
    missing = [p for p in args.events if not p.is_file()]
    if missing:
        print("stream-risk rules test: no such file: " + ", ".join(map(str, missing)), sys.stderr)
        return 2
    challenger, _ = _load(args.dir)
    if challenger is None:
        return 1
    champion, champion_name = _champion(args)
    if champion is None:
        return 1
    report = compare(
        _replay(champion, args.events, args.base_currency),
        _replay(challenger, args.events, args.base_currency),
    )
    report["champion"], report["challenger"] = champion_name, str(args.dir)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"champion: {champion_name}\nchallenger: {args.dir}\n")
    print(f"{'rule':<34}{'level':<10}{'champion':>10}{'challenger':>12}{'change':>9}")
    for row in report["rules"]:
        delta = row["challenger"] - row["champion"]
        print(
            f"{row['rule']:<34}{row['level']:<10}{row['champion']:>10}"
            f"{row['challenger']:>12}{delta:>+9}"
        )
    totals = report["firings"]
    print(f"{'all':<44}{totals['champion']:>10}{totals['challenger']:>12}")
    for side in ("only_champion", "only_challenger"):
        for level, customers in report[side].items():
            shown = ", ".join(customers[: args.show])
            more = f" (+{len(customers) - args.show})" if len(customers) > args.show else ""
            print(f"{side.replace('_', ' ')} warns at {level}: {len(customers)}: {shown}{more}")
    return 0


def _add_budget(parser: argparse.ArgumentParser) -> None:
    """``--budget-ms``, shared by ``check`` and ``publish`` (both time every expression)."""
    parser.add_argument(
        "--budget-ms",
        type=float,
        default=BUDGET_MS,
        metavar="MS",
        help=f"per-evaluation budget of an expression on a sample (default {BUDGET_MS:g})",
    )


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="rules_command", metavar="COMMAND")
    sub.required = True
    c = sub.add_parser(
        "check",
        help="validate a rule set; print every error as FILE:LINE:COL: GROUP/RULE: message",
        description="Parse and compile every *.yaml / *.yml file in DIR as one rule set. "
        "Exits 1 when there is any error, after listing them all.",
    )
    c.add_argument("dir", type=Path, metavar="DIR", help="directory of rule files")
    _add_budget(c)
    c = sub.add_parser(
        "publish",
        help="validate a rule set and publish it, versioned, to the rules topic",
        description="Validate DIR like 'check'; when it is valid, publish it to the compacted "
        "rules topic (STREAM_RISK_TOPIC_PREFIX.rules) as the next version. Every worker "
        "switches to it between two batches. A rule set with errors is not published "
        "(exit 1); the active one keeps running.",
    )
    c.add_argument("dir", type=Path, metavar="DIR", help="directory of rule files")
    c.add_argument("--force", action="store_true", help="publish even if identical to the active")
    _add_budget(c)
    c = sub.add_parser(
        "test",
        help="replay events under a candidate and the active rule set; show the difference",
        description="Champion/challenger: replay EVENTS (.jsonl/.jsonl.gz) once under the "
        "active rule set (read from the rules topic; the default pack when nothing is "
        "published) and once under DIR, then compare firings per rule and level and the "
        "customers only one of them warns.",
    )
    c.add_argument("dir", type=Path, metavar="DIR", help="candidate rule set (challenger)")
    c.add_argument("events", nargs="+", type=Path, metavar="EVENTS", help="event files")
    c.add_argument("--active", type=Path, metavar="DIR", help="champion from DIR, not the topic")
    c.add_argument(
        "--against-default", action="store_true", help="champion is the built-in default pack"
    )
    c.add_argument("--base-currency", metavar="CUR", help="base currency (default: settings)")
    c.add_argument("--show", type=int, default=10, metavar="N", help="customers shown per line")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")


COMMANDS = {"check": cmd_check, "publish": cmd_publish, "test": cmd_test}


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.rules_command](args)
