"""The ``stream-risk`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from stream_risk import __version__
from stream_risk.cli.common import output, parse_rate, rules_or_exit
from stream_risk.config import ConfigurationError, load_settings
from stream_risk.core.units import DAY
from stream_risk.runtime import stop_cyclic_collection, tune_garbage_collection


def cmd_replay(args: argparse.Namespace) -> int:
    from stream_risk.core import Context
    from stream_risk.driver import Limits
    from stream_risk.replay import BadLine, replay

    settings = load_settings()
    missing = [p for p in args.files if not p.is_file()]
    if missing:
        print("stream-risk replay: no such file: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 2
    ctx = Context.from_settings(
        settings,
        rules=rules_or_exit(args.rules, "replay") if args.rules is not None else None,
        base_currency=args.base_currency,
        fx_rates=dict(args.fx_rate or []),
        allowed_lateness_days=args.allowed_lateness_days,
    )
    shown = 0

    def on_bad(bad: BadLine) -> None:
        nonlocal shown
        shown += 1
        if shown <= args.max_bad_shown:
            print(f"{bad.source}:{bad.line}: bad event: {bad.reason}", file=sys.stderr)
        elif shown == args.max_bad_shown + 1:
            print("replay: further bad events are counted, not shown", file=sys.stderr)

    with (
        output(args.warnings_out) as w_out,
        output(args.profiles_out) as p_out,
        output(args.tier_changes_out) as t_out,
        output(args.credit_actions_out) as a_out,
    ):
        report = replay(
            args.files,
            w_out,
            p_out,
            ctx,
            on_bad,
            progress=not args.quiet,
            tier_changes_out=t_out,
            credit_actions_out=a_out,
            max_ahead=settings.replay_max_ahead_days * DAY,
            limits=Limits.from_settings(settings).for_replay(),
        )
    print(
        f"replay: {report.events} events ({report.applied} applied, "
        f"{report.duplicates} duplicates, "
        f"{report.bad} bad), {report.customers} customers, {report.warnings} warnings "
        f"in {report.seconds:.1f}s ({report.events_per_second:,.0f} events/s)",
        file=sys.stderr,
    )
    for line in report.speed_lines():
        print(f"replay: {line}", file=sys.stderr)
    for reason, count in sorted(report.bad_by_reason.items(), key=lambda kv: -kv[1])[:10]:
        print(f"replay:   bad {reason}: {count}", file=sys.stderr)
    print(
        f"replay: rule set {ctx.rules.version}: {report.tier_changes} tier changes, "
        f"{report.credit_actions} credit-action recommendations",
        file=sys.stderr,
    )
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from stream_risk.core.features import REGISTRY

    features = (
        sorted(REGISTRY.values(), key=lambda f: (f.group, f.name))
        if args.by_group
        else (REGISTRY.values())
    )
    if args.json:
        import json

        for f in features:
            print(
                json.dumps(
                    {"name": f.name, "unit": f.unit, "group": f.group, "description": f.description}
                )
            )
        return 0
    width = max(len(f.name) for f in features)
    unit_width = max(len(f.unit) for f in features)
    for f in features:
        print(f"{f.name:<{width}}  {f.unit:<{unit_width}}  {f.group:<12}  {f.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-risk",
        description=(
            "Streaming behaviour monitoring for customer credit risk: consumes order, invoice, "
            "payment and statement events from Kafka, keeps rolling per-customer statistics, "
            "and publishes graded early warnings. Configuration comes from STREAM_RISK_* "
            "environment variables (see README)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"stream-risk {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    p = verbs.add_parser(
        "replay",
        help="run the engine over event files, without a broker",
        description=(
            "Read .jsonl / .jsonl.gz event files, merge them in event-time order and drive the "
            "same core as the streaming worker. Bad lines are reported as FILE:LINE: reason "
            "and skipped. Output is deterministic apart from detected_at."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="event files")
    p.add_argument(
        "--warnings-out", metavar="W.jsonl", help="write every warning here ('-' = stdout)"
    )
    p.add_argument("--profiles-out", metavar="P.jsonl", help="write one profile per customer here")
    p.add_argument("--tier-changes-out", metavar="T.jsonl", help="write every tier change here")
    p.add_argument(
        "--credit-actions-out",
        metavar="A.jsonl",
        help="write every credit-policy recommendation here",
    )
    p.add_argument(
        "--rules",
        type=Path,
        metavar="DIR",
        help="evaluate the rule set in DIR instead of the default pack",
    )
    p.add_argument(
        "--base-currency",
        metavar="CUR",
        help="currency amounts are converted into (default: STREAM_RISK_BASE_CURRENCY or EUR)",
    )
    p.add_argument(
        "--fx-rate",
        action="append",
        type=parse_rate,
        metavar="CUR=RATE",
        help="units of base currency per unit of CUR; repeatable",
    )
    p.add_argument(
        "--allowed-lateness-days",
        type=float,
        metavar="DAYS",
        help="how far an event may lag its customer's latest event time "
        "(default: STREAM_RISK_ALLOWED_LATENESS_DAYS or 7)",
    )
    p.add_argument(
        "--max-bad-shown",
        type=int,
        default=20,
        metavar="N",
        help="print at most N bad lines (all are counted)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_replay)

    p = verbs.add_parser(
        "features",
        help="print the feature catalogue, one feature per line",
        description=(
            "Every feature the engine computes per customer: name (as used in rules, warning "
            "reasons and profiles), unit, group and description."
        ),
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--by-group", action="store_true", help="sort by group, then name")
    p.set_defaults(func=cmd_features)

    from stream_risk import backtest
    from stream_risk.cli.verbs import add_module_verb

    add_module_verb(
        verbs,
        "backtest",
        backtest,
        "score predictions and warnings against outcomes (ROC AUC, precision, lead time)",
    )
    from stream_risk.cli import rules as rules_cli

    add_module_verb(
        verbs, "rules", rules_cli, "check, publish (hot reload) and test early-warning rule sets"
    )
    from stream_risk.tools import costs, uci

    add_module_verb(
        verbs, "uci-split", uci, "split the UCI credit data into a training and a held-out cohort"
    )
    add_module_verb(
        verbs, "costs", costs, "time each stage of the core (features, detectors, score, rules)"
    )
    from stream_risk.notify import cli as notify_cli
    from stream_risk.tools import latency

    add_module_verb(
        verbs,
        "notify",
        notify_cli,
        "notify the collections team of warnings (webhook, e-mail, chat); check routing files",
    )
    add_module_verb(
        verbs,
        "bench-latency",
        latency,
        "measure the time from producing an event to its warning in Redis",
    )

    _add_lazy(verbs)
    return parser


def _add_lazy(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Verbs whose modules pull heavier dependencies register here."""
    from stream_risk.cli import verbs as cli_verbs

    cli_verbs.register(verbs)


#: Verbs that run a bounded job through the core: the installed command stops the
#: cyclic garbage collector for them (see :func:`run`).
BOUNDED_JOBS = frozenset({"replay", "backtest", "costs"})


def main(argv: list[str] | None = None, on_bounded_job: Callable[[], None] | None = None) -> int:
    """Run the verb of ``argv``; ``on_bounded_job`` is called first when the verb is a
    bounded job through the core (a replay, a backtest)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    if on_bounded_job is not None and args.verb in BOUNDED_JOBS:
        on_bounded_job()
    try:
        return func(args)
    except ConfigurationError as exc:
        print(f"stream-risk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stream-risk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly.
        sys.stderr.close()
        return 0


def run() -> None:
    """The installed ``stream-risk`` command: :func:`main` in a process tuned for long runs.

    Kept apart from :func:`main`, which tests and embedders call in their own
    process, whose collector they may not want changed. A bounded job through the
    core (``replay``, ``backtest``, ``costs``) runs without the cyclic collector.
    """
    tune_garbage_collection()
    raise SystemExit(main(on_bounded_job=stop_cyclic_collection))


if __name__ == "__main__":
    run()
