"""Realistic credit-risk traffic: a simulated B2B portfolio as contract events.

:func:`generate` yields the input events of EVENTS.md (plain, JSON-ready
dicts) for a portfolio of trade-credit customers, in event-time order:

* one ``customer`` event per customer at the start (credit limit, terms,
  segment, rating, financials),
* ``order`` events on business days (a Poisson number per day, lognormal
  amounts around the customer's usual order size), a few of them
  ``cancelled`` again shortly after,
* an ``invoice`` per order that was not cancelled, due after the payment terms,
* ``payment`` events that settle the invoices, mostly around the due date,
  now and then a ``bounced`` one that is presented again later,
* a monthly ``statement`` (an AR aging snapshot: open balance, days past due
  of the oldest open invoice),
* with ``outcomes=True``, one ``outcome`` per customer at the end.

A share of the customers deteriorates from a random point in time on: their
orders spike (x3..x5), they pay 20..120 days late, in part, with bounced
payments, and finally stop paying, so invoices go 30+ and 90+ days overdue.
Most of them end in ``default``; a few catch up on everything (a "cure")
before the horizon ends and end ``current``. :func:`plan_portfolio` exposes
who is who, for tests and demos.

:func:`produce` sends events to Kafka, :func:`write_jsonl` to a ``.jsonl`` or
``.jsonl.gz`` file, both optionally paced (a fixed rate, or event time
replayed at a speed-up). :func:`configure_parser` and :func:`run` are the
``stream-risk simulate`` command; ``python -m stream_risk.tools.simulate`` runs it
standalone.

The parts: :mod:`.model` (the portfolio plan), :mod:`.simulation` (the event
streams) and :mod:`.sinks` (Kafka, files, pacing); this module is the command.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from kafka.errors import KafkaError

from stream_risk.tools.simulate.model import (
    DEFAULT_START,
    CustomerProfile,
    Event,
    aware_start,
    check_portfolio_args,
    plan_portfolio,
)
from stream_risk.tools.simulate.simulation import generate
from stream_risk.tools.simulate.sinks import (
    DeliveryError,
    KafkaUnavailable,
    Progress,
    SimulationInterrupted,
    check_pacing,
    produce,
    stderr_progress,
    write_jsonl,
)

__all__ = [
    "DEFAULT_START",
    "CustomerProfile",
    "DeliveryError",
    "Event",
    "KafkaUnavailable",
    "Progress",
    "SimulationInterrupted",
    "configure_parser",
    "generate",
    "main",
    "plan_portfolio",
    "produce",
    "run",
    "stderr_progress",
    "write_jsonl",
]

# --- command line ---------------------------------------------------------------------------------


def whole_number(text: str) -> int:
    """A command-line count that may be 0.

    >>> whole_number("0")
    0
    >>> whole_number("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: must be at least 0, got -1
    """
    return _count(text, 0)


def positive_int(text: str) -> int:
    """A command-line count: a whole number of at least 1."""
    return _count(text, 1)


def _count(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _start_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {text!r} (e.g. 2026-01-01 or 2026-01-01T00:00:00+01:00)"
        ) from None
    return aware_start(value)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the options of ``stream-risk simulate`` to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The (sub)command parser to configure.
    """
    p.description = (
        "Simulate a B2B credit portfolio (customers, orders, invoices, payments, monthly "
        "statements) as contract events and send them to Kafka, or write them to a file. "
        "A share of the customers deteriorates: order spikes, late, partial and bounced "
        "payments, invoices 90+ days overdue. Deterministic for a seed."
    )
    g = p.add_argument_group("portfolio")
    g.add_argument(
        "--customers",
        type=positive_int,
        default=300,
        metavar="N",
        help="number of customers, sim-0001 ... (default: %(default)s)",
    )
    g.add_argument(
        "--days",
        type=positive_int,
        default=180,
        metavar="N",
        help="simulated days; invoices of deteriorating customers need about 180 days "
        "to run 90+ days overdue (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=7,
        metavar="N",
        help="random seed; the same options give the same events (default: %(default)s)",
    )
    g.add_argument(
        "--start",
        type=_start_time,
        default=DEFAULT_START,
        metavar="ISO",
        help="start of the simulated horizon, ISO 8601; without an offset it is UTC "
        "(default: 2026-01-01T00:00:00+00:00)",
    )
    g.add_argument(
        "--currency",
        default=None,
        metavar="CODE",
        help="currency of all amounts (default: the base currency, "
        "$STREAM_RISK_BASE_CURRENCY or EUR)",
    )
    g.add_argument(
        "--deteriorating-share",
        type=_share,
        default=0.1,
        metavar="SHARE",
        help="share of customers (0..1) that deteriorate (default: %(default)s)",
    )
    g.add_argument(
        "--outcomes",
        action="store_true",
        help="end with one outcome event per customer (default for deteriorating "
        "customers that did not cure, current otherwise): labels for learning "
        "and backtests",
    )
    pacing = p.add_argument_group("pacing (default: as fast as possible)")
    pace = pacing.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        metavar="EV_PER_S",
        help="send this many events per second",
    )
    pace.add_argument(
        "--speed",
        type=_positive_float,
        default=None,
        metavar="SIM_SECONDS_PER_SECOND",
        help="replay event time at this speed-up, e.g. 86400 = one simulated day per second",
    )
    dest = p.add_argument_group("destination (default: Kafka)")
    dest.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write JSON lines to FILE instead of Kafka: .jsonl, .jsonl.gz (gzip), or - for stdout",
    )
    dest.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (default: $STREAM_RISK_KAFKA_BOOTSTRAP or "
        "127.0.0.1:9092); topics are the input topics of the settings "
        "($STREAM_RISK_TOPIC_PREFIX, $STREAM_RISK_TOPICS)",
    )


def _fail(message: str) -> None:
    print(f"stream-risk simulate: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``stream-risk simulate`` with parsed options.

    Parameters
    ----------
    args : argparse.Namespace
        Options as defined by :func:`configure_parser`.

    Returns
    -------
    int
        Exit code: 0 done, 1 Kafka unreachable or failing (or the file cannot be
        written), 2 bad arguments or settings, 130 interrupted.
    """
    # Imported here so that `--out` works even where the environment's settings are broken.
    from pydantic import ValidationError

    from stream_risk.config import Settings

    out: str | None = args.out
    if out is not None and out != "-":
        parent = Path(out).parent
        if not parent.is_dir():
            _fail(f"--out: directory {str(parent)!r} does not exist")
            return 2
    try:
        # Settings() reads the environment; mypy without the pydantic plugin sees required args.
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        _fail(f"invalid STREAM_RISK_* settings:\n{exc}")
        return 2
    try:
        start = args.start if isinstance(args.start, datetime) else _start_time(str(args.start))
        check_portfolio_args(args.customers, args.days, args.deteriorating_share)
        check_pacing(args.rate, args.speed)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        _fail(str(exc))
        return 2
    events = generate(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        start=start,
        currency=args.currency or settings.base_currency,
        deteriorating_share=args.deteriorating_share,
        outcomes=args.outcomes,
    )
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    try:
        if out is not None:
            write_jsonl(events, out, args.rate, args.speed, stderr_progress)
        else:
            produce(
                events, bootstrap, settings.input_topics(), args.rate, args.speed, stderr_progress
            )
    except SimulationInterrupted:
        return 130  # the final progress line already said how many were sent
    except KeyboardInterrupt:  # while still connecting: nothing was sent
        print("simulate: interrupted before anything was sent", file=sys.stderr)
        return 130
    except KafkaUnavailable:
        _fail(
            f"cannot reach Kafka at {bootstrap}. Start the local services with "
            "`docker/services.sh start` (or point --bootstrap / STREAM_RISK_KAFKA_BOOTSTRAP at "
            "a running broker), or write to a file with --out."
        )
        return 1
    except (KafkaError, DeliveryError) as exc:
        _fail(f"Kafka at {bootstrap} failed: {exc}")
        return 1
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        _fail(f"cannot write {out}: {exc}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m stream_risk.tools.simulate --help``."""
    parser = argparse.ArgumentParser(prog="stream-risk simulate")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
