"""What the verbs share: option types, output files and the rule set of a ``--rules`` option.

A leaf module: verb modules anywhere in the package (``backtest``, the tools,
``notify``) import it, and it imports none of them, so the command line has no
import circle.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

if TYPE_CHECKING:  # the rule engine loads only for a verb that reads rules
    from stream_risk.core.ruleset import RuleSet


def parse_rate(text: str) -> tuple[str, float]:
    """An exchange rate option, ``CURRENCY=RATE`` with a positive rate.

    >>> parse_rate("USD=0.92")
    ('USD', 0.92)
    >>> parse_rate("USD=-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected CURRENCY=RATE with a positive rate, got 'USD=-1'
    """
    currency, sep, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not sep or not currency or not rate > 0:
        raise argparse.ArgumentTypeError(
            f"expected CURRENCY=RATE with a positive rate, got {text!r}"
        )
    return currency, rate


@contextlib.contextmanager
def output(path: str | None) -> Iterator[IO[bytes] | None]:
    """An output file option: ``None`` (not written), ``-`` (stdout) or a path (``.gz``: gzip)."""
    if path is None:
        yield None
    elif path == "-":
        yield sys.stdout.buffer
    else:
        import gzip

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".gz":
            with gzip.open(target, "wb") as gz:
                yield cast(IO[bytes], gz)
        else:
            with target.open("wb") as fh:
                yield fh


def rules_or_exit(directory: Path, verb: str) -> RuleSet:
    """The rule set in ``directory``, or exit 1 listing every error."""
    from stream_risk.core.ruleset import load_dir

    try:
        rules, errors = load_dir(directory)
    except FileNotFoundError as exc:
        raise SystemExit(f"stream-risk {verb}: {exc}") from None
    if rules is None:
        raise SystemExit("\n".join(map(str, errors)) + f"\nstream-risk {verb}: bad rule set")
    return rules
