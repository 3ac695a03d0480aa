"""Per-event cost of each stage of the core, measured on a real event stream.

The events are replayed once through the whole core (with the in-process
trainer, as ``stream-risk replay`` does): that gives the throughput. Then,
on the customers' final states and features, each stage is timed on its own:
the features, every detector (score and learn, including the round trip of
its state through plain data, as a step does), the scorecard, the blended
score with the learned model, and rule evaluation; last, a whole evaluation
(a timer wake-up) with the customer's previous evaluation kept, so that only
what changed is redone, and with nothing kept. Numbers are microseconds per
call; one event costs one evaluation, and a detector only runs on the events
it reads (orders, statements and settled payments).

The stages run on copies of the states decoded afresh, whose objects lie
together in memory; a replayed state's objects were allocated one event at a
time, among every other customer's. The state encoding is timed on both: the
difference is what that scattering costs every stage in a replay or a worker.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from stream_risk.config import load_settings
from stream_risk.core import Context, CustomerState, advance, alerting
from stream_risk.core import features as feats
from stream_risk.core.detectors import DaysLateShift, RobustZScore
from stream_risk.core.outputs import Outputs
from stream_risk.core.previous import EvaluationMemory
from stream_risk.core.scoring import risk_score
from stream_risk.core.state import decode, encode
from stream_risk.core.trainer import Trainer
from stream_risk.replay import Replayer, read_events
from stream_risk.schemas.events import EVENT_TYPES


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, help="event files (.jsonl or .jsonl.gz)")
    p.add_argument(
        "--base-currency",
        metavar="CUR",
        help="currency amounts are converted into (default: STREAM_RISK_BASE_CURRENCY or EUR)",
    )
    p.add_argument(
        "--sample", type=int, default=3000, help="customers each stage is timed on (3000)"
    )
    p.add_argument(
        "--driver-events",
        type=int,
        default=5000,
        metavar="N",
        help="events the monitor driver is timed on, against the core alone (5000; 0: skip)",
    )


def _per_call(fn: Callable[[Any], Any], inputs: list[Any], repeat: int = 3) -> float:
    """Best of ``repeat`` passes, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in inputs:
            fn(item)
        best = min(best, (time.perf_counter() - started) / max(len(inputs), 1))
    return best * 1e6


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.files if not p.is_file()]
    if missing:
        print("stream-risk costs: no such file: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 2
    ctx = Context.from_settings(load_settings(), base_currency=args.base_currency)
    events = read_events(args.files, lambda bad: None)
    driver = Replayer(ctx, lambda warning: None, trainer=Trainer())
    print(f"costs: replaying {len(events)} events", file=sys.stderr, flush=True)
    started = time.perf_counter()
    for _, file_no, line_no, event in events:
        driver.apply(event, str(args.files[file_no]), line_no, lambda bad: None)
    seconds = time.perf_counter() - started
    rate = len(events) / max(seconds, 1e-9)
    # Copies through the codec: timing must not change the replayed states.
    states = [decode(encode(driver.states[c])) for c in sorted(driver.states)[: args.sample]]
    rows: list[tuple[str, float, str]] = []
    with_features = [(s, feats.compute(s, s.clock or 0.0)) for s in states]
    rows.append(
        (
            "features (all groups)",
            _per_call(lambda s: feats.compute(s, s.clock or 0.0), states),
            "every event",
        )
    )
    amounts = [s.detectors["amount"] for s in states if "amount" in s.detectors]
    rows.append(("detector: order amount robust z", _robust(amounts), "orders"))
    gaps = [s.detectors["frequency"] for s in states if "frequency" in s.detectors]
    rows.append(("detector: order frequency robust z", _robust(gaps), "orders"))
    late = [s.detectors["late"] for s in states if "late" in s.detectors]
    rows.append(
        (
            "detector: days-late shift (PageHinkley)",
            _per_call(_shift_once, late) if late else float("nan"),
            "statements, payments",
        )
    )
    population = ctx.population
    if population is not None:
        peers = copy.deepcopy(population)

        def behaviour(item: tuple[CustomerState, dict[str, Any]]) -> None:
            segment = str((item[0].segment or {}).get("industry") or "all")
            score = peers.score_one(segment, item[1])
            peers.learn_one(segment, item[1], score)

        rows.append(
            (
                "detector: segment behaviour (HalfSpaceTrees)",
                _per_call(behaviour, with_features),
                "every event",
            )
        )
    vectors = [f for _, f in with_features]
    rows.append(("score: scorecard only", _per_call(risk_score, vectors), "every event"))
    rows.append(
        (
            f"score: blended, model v{ctx.scorer.version} ({ctx.scorer.outcomes_seen} outcomes)",
            _per_call(ctx.scorer.score, vectors),
            "every event",
        )
    )
    rows.append(("rules and lifecycle", _rules(ctx, with_features), "every event"))
    kept, cold = _wakeups(ctx, states)
    rows.append(("evaluation: a wake-up, previous one kept", kept, "every event"))
    rows.append(("evaluation: a wake-up, nothing kept", cold, "an evicted customer"))
    encoded = [encode(s) for s in states]
    rows.append(
        (
            "monitor guard: state snapshot (encode), decoded copy",
            _per_call(encode, states),
            "every event",
        )
    )
    # The same states as the replay left them (encoding changes nothing).
    replayed = [driver.states[c] for c in sorted(driver.states)[: args.sample]]
    rows.append(
        (
            "monitor guard: state snapshot (encode), as replayed",
            _per_call(encode, replayed),
            "every event",
        )
    )
    rows.append(
        ("monitor guard: state restore (decode)", _per_call(decode, encoded), "failed events")
    )
    print(
        f"replay: {len(events)} events, {len(driver.states)} customers in {seconds:.1f}s: "
        f"{rate:,.0f} events/s ({1e6 / max(rate, 1e-9):,.0f} us/event, whole core)"
    )
    print(
        f"stages timed on {len(states)} customers' final state, decoded afresh "
        "(us per call, best of 3):"
    )
    width = max(len(r[0]) for r in rows)
    for name, micros, when in rows:
        print(f"  {name:<{width}}  {micros:8.1f} us   runs on: {when}")
    if args.driver_events:
        core_us, driver_us = _driver_cost(events[: args.driver_events], args.base_currency)
        print(
            f"monitor driver on the first {min(len(events), args.driver_events)} events "
            f"(batches of {DRIVER_BATCH}): {driver_us:,.0f} us/event; the core alone "
            f"{core_us:,.0f} us/event; validation from bytes, guard, encoding and profiles "
            f"{driver_us - core_us:,.0f} us/event"
        )
    return 0


#: Messages per batch when timing the monitor driver.
DRIVER_BATCH = 100


def _driver_cost(events: list[Any], base_currency: str) -> tuple[float, float]:
    """Microseconds per event of the core alone and of the monitor driver around it."""
    from stream_risk.agents.monitor import Limits, Message, MonitorDriver

    messages = [
        Message(
            f"in.{event.type}",
            0,
            offset,
            event.customer_id.encode(),
            orjson.dumps(event.model_dump(mode="json")),
        )
        for offset, (_, _, _, event) in enumerate(events)
    ]
    settings = load_settings()
    replayer = Replayer(
        Context.from_settings(settings, base_currency=base_currency), lambda warning: None
    )
    started = time.perf_counter()
    for _, _, _, event in events:
        replayer.apply(event, "-", 0, lambda bad: None)
    core = (time.perf_counter() - started) / max(len(events), 1)
    table: dict[str, bytes] = {}
    driver = MonitorDriver(
        Context.from_settings(settings, base_currency=base_currency),
        {f"in.{t}": t for t in EVENT_TYPES},
        table.get,
        limits=Limits(check_wall_clock=False),
    )
    started = time.perf_counter()
    for n in range(0, len(messages), DRIVER_BATCH):
        result = driver.process(messages[n : n + DRIVER_BATCH])
        table.update((cid, raw) for cid, (_, raw) in result.states.items())
    whole = (time.perf_counter() - started) / max(len(messages), 1)
    return core * 1e6, whole * 1e6


def _wakeups(ctx: Context, states: list[CustomerState]) -> tuple[float, float]:
    """A whole evaluation (a timer wake-up one second on) with and without the
    customer's previous evaluation kept (:mod:`stream_risk.core.previous`)."""
    if not states:
        return float("nan"), float("nan")
    copies = [decode(encode(s)) for s in states]
    memory, population = ctx.memory, ctx.population
    try:
        # Wake-ups may learn: on a copy of the segment detector, as the stages above.
        ctx.population = copy.deepcopy(population)
        ctx.memory = EvaluationMemory()
        for state in copies:  # the evaluation every kept one compares with
            advance(state, (state.clock or 0.0) + 1.0, ctx)

        def once(state: CustomerState) -> None:
            advance(state, (state.clock or 0.0) + 1.0, ctx)

        kept = _per_call(once, copies)
        ctx.memory = EvaluationMemory(capacity=1)  # every customer evicts the one before
        cold = _per_call(once, copies)
    finally:
        ctx.memory, ctx.population = memory, population
    return kept, cold


def _robust(states: list[dict[str, Any]]) -> float:
    if not states:
        return float("nan")

    def once(data: dict[str, Any]) -> None:
        detector = RobustZScore.from_dict(data)
        x = statistics.median(detector.values) if detector.values else 1.0
        detector.score_one(x)
        detector.learn_one(x)
        detector.to_dict()

    return _per_call(once, states)


def _shift_once(data: dict[str, Any]) -> None:
    detector = DaysLateShift(state=data)
    detector.score_one(0.0)
    detector.learn_one(0.0)
    detector.to_dict()


def _rules(ctx: Context, with_features: list[tuple[CustomerState, dict[str, Any]]]) -> float:
    copies = [(decode(encode(s)), dict(f)) for s, f in with_features]
    for state, features in copies:
        features.setdefault("risk_score", state.risk_score)
        features.setdefault("risk_score_change", 0.0)
        features.setdefault("risk_score_learned", 0.0)
        features.setdefault("raw_tier", state.tier)

    def once(item: tuple[CustomerState, dict[str, Any]]) -> None:
        state, features = item
        alerting.evaluate(state, features, "cost", state.clock or 0.0, ctx, Outputs())

    return _per_call(once, copies, repeat=1)
