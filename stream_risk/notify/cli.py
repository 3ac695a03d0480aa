"""Notify the collections team of warnings: webhooks, e-mail, chat.

  stream-risk notify check FILE...      validate routing files, list every error
  stream-risk notify run --routes FILE  read warnings from Redis and notify

The notifier reads the Redis warnings stream (<STREAM_RISK_REDIS_PREFIX>:warnings)
as consumer group --group, routes each warning by level, status, rule, customer
segment and labels (routing file: see config/notify.example.yaml), and sends new,
escalated and resolved warnings to webhook, smtp and apprise channels, with
retries, per-customer rate limits and a Kafka dead-letter topic
(<STREAM_RISK_TOPIC_PREFIX>.notification-dead-letters) for what finally fails.
A warning is acknowledged only once every channel is done, and a channel never
hears of the same (warning_id, status, level) twice: a killed notifier resumes
without loss and without duplicates. Secrets come from environment variables
named in the file. SIGTERM or Ctrl-C finishes the current batch and stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from stream_risk.notify.routes import ConfigError, load_file, missing_env

if TYPE_CHECKING:
    from stream_risk.notify.service import Notifier


def _print_errors(errors: list[ConfigError]) -> None:
    for error in errors:
        print(error, file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        route_file, errors = load_file(path)
        if route_file is not None:
            unset = missing_env(route_file, os.environ)
            if args.require_env:
                errors = unset
            else:
                for e in unset:
                    print(f"{e} (here; needed by 'notify run')", file=sys.stderr)
        if errors:
            _print_errors(errors)
            print(f"{path}: FAILED, {len(errors)} error(s)", file=sys.stderr)
            failed += 1
        elif route_file is not None:
            c = route_file.config
            print(f"{path}: OK, {len(c.channels)} channel(s), {len(c.routes)} route(s)")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from stream_risk.config import load_settings
    from stream_risk.notify.channels import build_senders
    from stream_risk.notify.service import Notifier, NotifierOptions

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = load_settings()
    route_file, errors = load_file(args.routes)
    if route_file is None:
        _print_errors(errors)
        print(
            f"stream-risk notify: {args.routes}: {len(errors)} error(s); nothing started",
            file=sys.stderr,
        )
        return 2
    unset = missing_env(route_file, os.environ)
    if unset:
        _print_errors(unset)
        print("stream-risk notify: set the variables above; nothing started", file=sys.stderr)
        return 2
    if not route_file.config.routes:
        print(
            f"stream-risk notify: {args.routes}: no routes; nothing would be sent", file=sys.stderr
        )
    options = NotifierOptions(
        group=args.group,
        consumer=args.consumer,
        start="0" if args.from_start else "$",
        batch=args.batch,
        block_ms=args.block_ms,
        claim_idle_seconds=args.claim_idle,
        concurrency=args.concurrency,
    )
    longest = max(
        (route_file.config.retry_for(c).total_wait() for c in route_file.config.channels),
        default=0.0,
    )
    if longest >= options.claim_idle_seconds:
        print(
            f"stream-risk notify: --claim-idle {options.claim_idle_seconds:g}s is shorter than "
            f"the longest retry sequence ({longest:g}s): another consumer could take over a "
            "warning that is still being retried",
            file=sys.stderr,
        )
        return 2
    notifier = Notifier(route_file, settings, build_senders(route_file.config, os.environ), options)
    try:
        asyncio.run(_serve(notifier))
    except (ImportError, ValueError) as exc:
        print(f"stream-risk notify: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, notifier.stop)
    from stream_risk.notify.service import Stopping

    try:
        await notifier.setup()
        await notifier.run()
    except Stopping:
        pass  # stopped while waiting for Redis to come back
    finally:
        await notifier.close()


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="notify_verb", metavar="ACTION")
    sub.required = True

    c = sub.add_parser(
        "check",
        help="validate routing files; list every error with file, name and line",
        description=(
            "Validate routing files without connecting to anything. Every problem is listed "
            "as FILE:LINE: channel/route: message; the exit status is 1 when any file has "
            "errors. Environment variables a channel names but that are unset here are "
            "reported as notes (errors with --require-env)."
        ),
    )
    c.add_argument("files", nargs="+", metavar="FILE", help="routing files (YAML)")
    c.add_argument(
        "--require-env",
        action="store_true",
        help="also fail when a secret's environment variable is unset",
    )
    c.set_defaults(notify_func=cmd_check)

    r = sub.add_parser(
        "run",
        help="read warnings from Redis and notify the routed channels",
        description=(
            "Run the notifier. Redis, Kafka and topic prefixes come from STREAM_RISK_* "
            "variables (STREAM_RISK_REDIS_URL, STREAM_RISK_REDIS_PREFIX, "
            "STREAM_RISK_KAFKA_BOOTSTRAP, STREAM_RISK_TOPIC_PREFIX). Run several with the "
            "same --group to share the work; give each a stable --consumer name so that a "
            "restarted one takes back its own pending warnings at once (others take them "
            "over after --claim-idle). Exits 2 on a bad routing file or an unset secret; "
            "while Redis or Kafka is down it logs and backs off."
        ),
    )
    r.add_argument("--routes", required=True, metavar="FILE", help="routing file (YAML)")
    r.add_argument(
        "--group",
        default="notifier",
        help="consumer group on the warnings stream (default %(default)s)",
    )
    r.add_argument(
        "--consumer",
        default=socket.gethostname(),
        help="this process's name within the group (default: the host name)",
    )
    r.add_argument(
        "--from-start",
        action="store_true",
        help="a new group starts at the oldest warning in the stream (default: new ones only)",
    )
    r.add_argument("--batch", type=int, default=100, help="warnings per read (default %(default)s)")
    r.add_argument(
        "--block-ms", type=int, default=1000, help="how long a read waits (default %(default)s)"
    )
    r.add_argument(
        "--claim-idle",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="take over warnings another consumer left pending this long (default %(default)s)",
    )
    r.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="customers notified at once; one customer's warnings stay in order "
        "(default %(default)s)",
    )
    r.add_argument("-l", "--log-level", default="info", help="log level (default %(default)s)")
    r.set_defaults(notify_func=cmd_run)


def run(args: argparse.Namespace) -> int:
    """The ``notify`` verb: dispatch to ``check`` or ``run``."""
    action: Callable[[argparse.Namespace], int] = args.notify_func
    return action(args)
