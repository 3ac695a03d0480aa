"""Hot reload of rule sets: what a worker does with a message of the rules topic.

The message is parsed and compiled in full before anything changes
(:func:`stream_risk.rules_topic.decode`); only a valid rule set replaces the
context's, in one assignment, and the monitor's batches run one at a time on the
event loop, so a batch is always evaluated by one rule set. A malformed message
(someone writing to the topic without ``stream-risk rules publish``) is logged
with all its errors and ignored; the active rule set keeps running.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from stream_risk import rules_topic
from stream_risk.core import Context

log = logging.getLogger(__name__)


class RejectedRules(ValueError):
    """A rules message that is not a valid rule set."""


def rules_loader(ctx: Context, counts: Counter[str]) -> Callable[[bytes | None, bytes], None]:
    """``apply`` for the rules topic: compile a published rule set and switch to it."""

    def apply(key: bytes | None, value: bytes) -> None:
        rules, errors = rules_topic.decode(value)
        if rules is None:
            counts["rules.rejected"] += 1
            for error in errors:
                log.error("rules topic: %s", error)
            raise RejectedRules(
                f"{len(errors)} error(s); rule set {ctx.rules.version} stays active"
            )
        if rules.digest == ctx.rules.digest and rules.version == ctx.rules.version:
            return
        previous = ctx.rules.version
        ctx.use_rules(rules)
        counts["rules.switches"] += 1
        log.info(
            "rule set %s active (was %s): %s",
            rules.version,
            previous,
            rules_topic.describe(rules),
        )

    return apply
