"""Rule sets from the rules topic are compiled off the event loop and switched on it.

A worker's heartbeats, commits and batches run on one event loop: a rule pack
that takes seconds to compile must not stop them, and a batch must still see one
rule set from its first event to its last.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable

from stream_risk import rules_topic
from stream_risk.agents.model_feed import CompactedFeed, Prepare
from stream_risk.agents.rules_feed import RejectedRules, count_rejected, rules_loader
from stream_risk.core import Context
from stream_risk.core.ruleset import default_files

MESSAGE = rules_topic.encode(7, default_files())


def _feed(prepare: Prepare, counts: Counter[str], timeout: float = 10.0) -> CompactedFeed:
    return CompactedFeed(
        "127.0.0.1:1",
        "t.rules",
        prepare,
        prepare_timeout=timeout,
        on_reject=count_rejected(counts),
    )


def test_compilation_runs_beside_the_event_loop_and_the_switch_on_it() -> None:
    ctx = Context(population=None)
    counts: Counter[str] = Counter()
    compile_rules = rules_loader(ctx, counts)
    loop_ran = threading.Event()
    threads: dict[str, int] = {}

    def slow_compile(key: bytes | None, value: bytes) -> Callable[[], None] | None:
        threads["compile"] = threading.get_ident()
        # Only a coroutine on the event loop sets it: a compile on the loop would
        # wait here in vain (and then fail below).
        loop_ran.wait(5.0)
        switch = compile_rules(key, value)
        assert switch is not None
        assert ctx.rules.version != "7"  # compiled, not yet switched to

        def on_loop() -> None:
            threads["switch"] = threading.get_ident()
            switch()

        return on_loop

    async def scenario() -> tuple[int, bool]:
        feed = _feed(slow_compile, counts)
        taking = asyncio.create_task(feed._take(b"v7", MESSAGE))
        await asyncio.sleep(0.05)
        ran_meanwhile = not taking.done()
        loop_ran.set()
        await taking
        return threading.get_ident(), ran_meanwhile

    loop_thread, ran_meanwhile = asyncio.run(scenario())
    assert ran_meanwhile
    assert loop_ran.is_set()
    assert threads["compile"] != loop_thread
    assert threads["switch"] == loop_thread
    assert ctx.rules.version == "7"
    assert counts == Counter({"rules.switches": 1})


def test_a_compilation_that_never_ends_is_given_up_and_the_next_one_still_applies() -> None:
    ctx = Context(population=None)
    active = ctx.rules.version
    counts: Counter[str] = Counter()
    compile_rules = rules_loader(ctx, counts)
    never = threading.Event()

    def hang(key: bytes | None, value: bytes) -> Callable[[], None] | None:
        never.wait(30.0)
        return compile_rules(key, value)

    async def scenario() -> None:
        stuck = _feed(hang, counts, timeout=0.2)
        await stuck._take(b"v7", MESSAGE)
        assert (stuck.applied, stuck.rejected) == (0, 1)
        assert ctx.rules.version == active
        # The hung build keeps only its own thread: the next record is built at once.
        feed = _feed(compile_rules, counts, timeout=10.0)
        await feed._take(b"v8", rules_topic.encode(8, default_files()))
        assert (feed.applied, feed.rejected) == (1, 0)

    try:
        asyncio.run(scenario())
    finally:
        never.set()
    assert ctx.rules.version == "8"
    assert counts == Counter({"rules.rejected": 1, "rules.switches": 1})


def test_a_malformed_rule_set_is_rejected_in_the_thread_and_counted_on_the_loop() -> None:
    ctx = Context(population=None)
    active = ctx.rules.version
    counts: Counter[str] = Counter()
    compile_rules = rules_loader(ctx, counts)
    bad = rules_topic.encode(9, {"broken.yaml": "groups: [{name: g, rules: [{expr: '1 +'}]}]"})
    try:
        compile_rules(b"v9", bad)
    except RejectedRules:
        pass
    else:
        raise AssertionError("a malformed rule set was accepted")
    assert counts == Counter()  # the thread counts nothing itself
    feed = _feed(compile_rules, counts)
    asyncio.run(feed._take(b"v9", bad))
    assert (feed.applied, feed.rejected) == (0, 1)
    assert ctx.rules.version == active
    assert counts == Counter({"rules.rejected": 1})


def test_the_same_rule_set_again_switches_nothing() -> None:
    ctx = Context(population=None)
    counts: Counter[str] = Counter()
    feed = _feed(rules_loader(ctx, counts), counts)

    async def scenario() -> None:
        await feed._take(b"v7", MESSAGE)
        rules = ctx.rules
        await feed._take(b"v7", MESSAGE)
        assert ctx.rules is rules

    asyncio.run(scenario())
    assert counts == Counter({"rules.switches": 1})
