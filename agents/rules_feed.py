"""Hot reload of rule sets: what a worker does with a message of the rules topic.

The message is parsed and compiled in full before anything changes
(:func:`stream_risk.rules_topic.decode`), in a thread of its own (the feed's
``prepare``): a large or slow rule pack never blocks the event loop, so
heartbeats, commits and batches go on meanwhile. Only a valid rule set replaces
the context's, in one assignment on the event loop, where the monitor's batches
run one at a time, so a batch is always evaluated by one rule set. A malformed
message (someone writing to the topic without ``stream-risk rules publish``) is
logged with all its errors and ignored; the active rule set keeps running.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from stream_risk import rules_topic
from stream_risk.agents.model_feed import Prepare
from stream_risk.core import Context

log = logging.getLogger(__name__)


class RejectedRules(ValueError):
    """A rules message that is not a valid rule set."""


def rules_loader(ctx: Context, counts: Counter[str]) -> Prepare:
    """``prepare`` for the rules topic: compile a published rule set (in the feed's
    thread); the switch to it runs on the event loop."""

    def compile_rules(key: bytes | None, value: bytes) -> Callable[[], None] | None:
        rules, errors = rules_topic.decode(value)
        if rules is None:
            for error in errors:
                log.error("rules topic: %s", error)
            # Counted by the feed's on_reject, on the event loop with the other counts.
            raise RejectedRules(f"{len(errors)} error(s); the active rule set stays")
        compiled = rules

        def switch() -> None:
            if compiled.digest == ctx.rules.digest and compiled.version == ctx.rules.version:
                return
            previous = ctx.rules.version
            ctx.use_rules(compiled)
            counts["rules.switches"] += 1
            log.info(
                "rule set %s active (was %s): %s",
                compiled.version,
                previous,
                rules_topic.describe(compiled),
            )

        return switch

    return compile_rules


def count_rejected(counts: Counter[str]) -> Callable[[Exception], None]:
    """``on_reject`` for the rules feed: a rejected rules message is counted (on the loop)."""

    def on_reject(exc: Exception) -> None:
        counts["rules.rejected"] += 1

    return on_reject
