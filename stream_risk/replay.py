"""``stream-risk replay``: drive the core over event files, without any broker.

Files are ``.jsonl`` or ``.jsonl.gz``, one contract event per line. Lines are
validated, merged in event-time order (ties keep file and line order), and fed
to the same :func:`~stream_risk.core.step` the Faust agents run. Overdue checks
fire on the merged event time exactly as the agents fire them per partition.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson
from pydantic import ValidationError

from stream_risk.core import Context, CustomerState, profile_of
from stream_risk.core.state import encode
from stream_risk.core.timers import TimerQueue
from stream_risk.core.trainer import Trainer
from stream_risk.core.units import DAY
from stream_risk.driver import BatchResult, Limits, MonitorDriver, Rejected
from stream_risk.schemas.events import describe_validation_error, input_event_adapter


@dataclass(slots=True)
class BadLine:
    """A line that could not be applied."""

    source: str
    line: int
    reason: str
    raw: bytes


@dataclass(slots=True)
class Stretch:
    """A stretch of a replay's events (a fifth of them, or all): how long it took and
    what it cost.

    A stream whose cost per event grows with history gets slower fifth by fifth; one
    whose windows fill at its start gets slower until they are full, then holds.

    >>> f = Stretch(1_000, 0.5, applied=1_000, wakeups=300, wakeups_looked=200, state_bytes=4_000)
    >>> f.events_per_second, f.evaluations_per_event, f.wakeups_per_event, f.state_bytes_per_event
    (2000.0, 1.1, 0.3, 4.0)
    """

    #: Input events, bad ones included (the lines that do not parse are in no fifth).
    events: int = 0
    seconds: float = 0.0
    #: Events applied (not bad lines, not duplicates).
    applied: int = 0
    #: Timer wake-ups (each applied event is one evaluation too), and those of them that
    #: only looked: nothing the rules, the tier or the credit policy see had changed.
    wakeups: int = 0
    wakeups_looked: int = 0
    #: Encoded bytes of each applied event's customer state after the event, added up.
    state_bytes: int = 0

    def since(self, start: Stretch) -> Stretch:
        """The stretch from ``start`` to this one, both from the same beginning.

        >>> Stretch(10, 4.0, applied=9, wakeups=5).since(Stretch(4, 1.5, applied=4, wakeups=2))
        Stretch(events=6, seconds=2.5, applied=5, wakeups=3, wakeups_looked=0, state_bytes=0)
        """
        return Stretch(
            self.events - start.events,
            self.seconds - start.seconds,
            self.applied - start.applied,
            self.wakeups - start.wakeups,
            self.wakeups_looked - start.wakeups_looked,
            self.state_bytes - start.state_bytes,
        )

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def evaluations_per_event(self) -> float:
        """Evaluations (applied events and wake-ups that evaluated) per input event."""
        evaluations = self.applied + self.wakeups - self.wakeups_looked
        return evaluations / self.events if self.events else 0.0

    @property
    def wakeups_per_event(self) -> float:
        """Timer wake-ups per input event, those that only looked included."""
        return self.wakeups / self.events if self.events else 0.0

    @property
    def state_bytes_per_event(self) -> float:
        return self.state_bytes / self.applied if self.applied else 0.0


@dataclass(slots=True)
class ReplayReport(Stretch):
    """Counts of one replay."""

    duplicates: int = 0
    bad: int = 0
    warnings: int = 0
    tier_changes: int = 0
    credit_actions: int = 0
    customers: int = 0
    #: Outcomes that became training examples, and the last model version loaded.
    training_examples: int = 0
    model_version: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    #: Encoded state bytes per customer at the end: median and 99th percentile.
    state_bytes_median: int = 0
    state_bytes_p99: int = 0
    #: The five fifths of the events applied in the loop, in event-time order (none
    #: for fewer than five); wake-ups due after the last event fall in none.
    fifths: list[Stretch] = field(default_factory=list)
    #: CPU seconds of the whole replay (the honest measure on a shared machine).
    cpu_seconds: float = 0.0
    #: What evaluations redid and kept from the customer's previous evaluation.
    reuse: list[str] = field(default_factory=list)

    @property
    def first_fifth_rate(self) -> float:
        return self.fifths[0].events_per_second if self.fifths else 0.0

    @property
    def last_fifth_rate(self) -> float:
        return self.fifths[-1].events_per_second if self.fifths else 0.0

    def speed_lines(self) -> list[str]:
        """How fast the replay went, overall and at its start and end, and what it kept."""
        lines = [
            f"speed: {self.events_per_second:,.0f} events/s overall, "
            f"{self.first_fifth_rate:,.0f} in the first fifth, "
            f"{self.last_fifth_rate:,.0f} in the last fifth; "
            f"{self.events / self.cpu_seconds if self.cpu_seconds else 0.0:,.0f} events "
            f"per CPU second",
            f"evaluations: {self.evaluations_per_event:.2f} per input event "
            f"({self.applied} events applied, {self.wakeups} timer wake-ups, "
            f"{self.wakeups_looked} of which found nothing the rules, tiers or credit policy "
            f"see changed)",
            f"encoded state per customer: median {self.state_bytes_median} bytes, "
            f"p99 {self.state_bytes_p99} bytes",
        ]
        if self.fifths:
            # Decay from growing history shows as fifths getting slower to the end;
            # windows filling up, as the first fifths getting slower, then holding.
            lines.append(
                "by fifth: "
                + ", ".join(f"{f.events_per_second:,.0f}" for f in self.fifths)
                + " events/s; "
                + ", ".join(f"{f.evaluations_per_event:.2f}" for f in self.fifths)
                + " evaluations and "
                + ", ".join(f"{f.wakeups_per_event:.2f}" for f in self.fifths)
                + " wake-ups per event; state of the event's customer "
                + ", ".join(f"{f.state_bytes_per_event:,.0f}" for f in self.fifths)
                + " bytes on average"
            )
        lines += [f"evaluated: {line}" for line in self.reuse]
        return lines


def open_lines(path: Path) -> IO[bytes]:
    """Open ``path`` for reading bytes, transparently un-gzipping ``.gz`` files."""
    if path.suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def read_events(
    paths: Iterable[Path],
    on_bad: Callable[[BadLine], None],
    max_ahead: float | None = None,
    max_event_bytes: int | None = None,
) -> list[tuple[float, int, int, Any]]:
    """Validate every line of every file.

    Returns ``(time, file, line, event)`` tuples in event-time order. With
    ``max_ahead`` (seconds), events too far ahead of the stream's own time are
    bad lines (see :func:`drop_future`); with ``max_event_bytes``, longer lines
    are, as the worker's larger messages are dead letters.
    """
    paths = list(paths)
    loaded: list[tuple[float, int, int, Any]] = []
    validate = input_event_adapter.validate_json
    for file_no, path in enumerate(paths):
        with open_lines(path) as fh:
            for line_no, raw in enumerate(fh, start=1):
                raw = raw.strip()
                if not raw:
                    continue
                if max_event_bytes is not None and len(raw) > max_event_bytes:
                    reason = (
                        f"message of {len(raw)} bytes exceeds the maximum of "
                        f"{max_event_bytes} bytes"
                    )
                    on_bad(BadLine(str(path), line_no, reason, raw[:1_000]))
                    continue
                try:
                    event = validate(raw)
                except ValidationError as exc:
                    on_bad(BadLine(str(path), line_no, describe_validation_error(exc), raw))
                    continue
                loaded.append((event.occurred_at.timestamp(), file_no, line_no, event))
    loaded.sort(key=lambda item: (item[0], item[1], item[2]))
    if max_ahead is not None:
        loaded = drop_future(loaded, max_ahead, [str(p) for p in paths], on_bad)
    return loaded


def drop_future(
    loaded: list[tuple[float, int, int, Any]],
    max_ahead: float,
    names: list[str],
    on_bad: Callable[[BadLine], None],
) -> list[tuple[float, int, int, Any]]:
    """Events in time order without those more than ``max_ahead`` past the stream's time.

    The stream's time before an event is the latest event kept so far, and at
    least the median event time: one event stamped 2099 cannot drag every
    customer's clock (and every overdue check) to 2099.

    >>> events = [(t, 0, n, None) for n, t in enumerate([0.0, 10.0, 20.0, 25.0, 4e9], 1)]
    >>> [t for t, *_ in drop_future(events, 30.0, ["f"], lambda bad: print(bad.line, bad.reason))]
    5 too far ahead: occurred_at is 46296.3 days past the stream's time (at most 30s)
    [0.0, 10.0, 20.0, 25.0]
    """
    if not loaded:
        return loaded
    stream_time = loaded[len(loaded) // 2][0]
    kept = []
    for item in loaded:
        if item[0] > stream_time + max_ahead:
            ahead = item[0] - stream_time
            on_bad(
                BadLine(
                    names[item[1]],
                    item[2],
                    f"too far ahead: occurred_at is {ahead / DAY:.1f} days past the "
                    f"stream's time (at most {_span(max_ahead)})",
                    b"",
                )
            )
            continue
        kept.append(item)
        stream_time = max(stream_time, item[0])
    return kept


def _span(seconds: float) -> str:
    return f"{seconds / DAY:g} days" if seconds >= DAY else f"{seconds:g}s"


#: What replay holds an event to by default: the worker's default limits, for replay
#: (see :meth:`Limits.for_replay`).
REPLAY_LIMITS = Limits().for_replay()


class Replayer:
    """The in-process driver: states in a dict, one timer queue, outputs to callbacks.

    Every event goes through the monitor's own guard (:meth:`MonitorDriver.apply_event`:
    clock checks, timers, step, size limits, undo on failure), on one partition, so a
    replay rejects and applies exactly what a worker would; a rejected event is a bad
    line with the reason the worker's dead letter carries.
    """

    def __init__(
        self,
        ctx: Context,
        on_warning: Callable[[dict[str, Any]], None],
        trainer: Trainer | None = None,
        on_tier_change: Callable[[dict[str, Any]], None] | None = None,
        on_credit_action: Callable[[dict[str, Any]], None] | None = None,
        limits: Limits = REPLAY_LIMITS,
    ) -> None:
        self.ctx = ctx
        self.on_warning = on_warning
        self.on_tier_change = on_tier_change
        self.on_credit_action = on_credit_action
        #: The in-process single writer of the learned model (as the trainer agent is
        #: in the streaming topology); ``None`` keeps the scorer as it is.
        self.trainer = trainer
        # Every state stays in the driver's cache (nothing to load from): one batch
        # that never ends, so each state is encoded once per event, as in the worker.
        self.driver = MonitorDriver(ctx, {}, _nothing_stored, max_cached=sys.maxsize, limits=limits)
        detected_at = ctx.detected_at
        self.driver.begin()
        ctx.detected_at = detected_at
        self.states: dict[str, CustomerState] = self.driver.cache
        self.report = ReplayReport()

    @property
    def timers(self) -> TimerQueue:
        return self.driver._queue(PARTITION)

    def advance_to(self, now: float) -> None:
        """Fire every overdue check due at or before event time ``now``."""
        result = BatchResult()
        self.driver.advance_to(PARTITION, now, result)
        self._publish(result)

    def apply(self, event: Any, source: str, line: int, on_bad: Callable[[BadLine], None]) -> None:
        driver = self.driver
        result = BatchResult()
        duplicates = driver.counts["duplicates"]
        # A replay has no live clock: the detection time is the caller's (``ctx``).
        try:
            driver.apply_event(event, PARTITION, result, _NO_WALL_CLOCK)
        except Rejected as exc:
            driver.counts["dead_letters"] += 1
            on_bad(BadLine(source, line, str(exc), b""))
            return
        finally:
            driver._fires_left = driver.limits.max_timer_fires
        if driver.counts["duplicates"] > duplicates:
            self.report.duplicates += 1
            return
        self.report.applied += 1
        self.report.state_bytes += driver.encoded_size(event.customer_id)
        self._learn(result.training_examples)
        self._publish(result)

    def _learn(self, examples: list[dict[str, Any]]) -> None:
        if self.trainer is None:
            return
        for example in examples:
            self.report.training_examples += 1
            snapshot = self.trainer.learn_one(example)
            if snapshot is not None:
                self.ctx.scorer.load(snapshot)
                self.report.model_version = snapshot["version"]

    def _publish(self, result: BatchResult) -> None:
        self.report.wakeups = self.driver.counts["timer_wakeups"]
        for _, warning in result.warnings:
            self.report.warnings += 1
            self.on_warning(warning)
        self.report.tier_changes += len(result.tier_changes)
        self.report.credit_actions += len(result.credit_actions)
        for callback, records in (
            (self.on_tier_change, result.tier_changes),
            (self.on_credit_action, result.credit_actions),
        ):
            if callback is not None:
                for _, record in records:
                    callback(record)

    def so_far(self, events: int, started: float) -> Stretch:
        """The stretch of the first ``events`` events, applied since ``started``
        (``time.monotonic``)."""
        return Stretch(
            events,
            time.monotonic() - started,
            self.report.applied,
            self.driver.counts["timer_wakeups"],
            self.ctx.memory.counts.wakeups_looked,
            self.report.state_bytes,
        )

    def profiles(self) -> Iterator[dict[str, Any]]:
        for customer_id in sorted(self.states):
            kept = self.ctx.memory.of(customer_id).groups
            yield profile_of(self.states[customer_id], kept)


#: Replay runs every customer on one partition: one timer queue, one event-time order.
PARTITION = 0
#: The wall clock replay hands the guard: unused, since :data:`REPLAY_LIMITS` skips that check.
_NO_WALL_CLOCK = float("inf")


def _nothing_stored(customer_id: str) -> bytes | None:
    return None


class Progress:
    """A progress line on stderr, at most every ``every`` seconds."""

    def __init__(self, total: int, stream: IO[str] | None = None, every: float = 2.0) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.started = time.monotonic()
        self.last = self.started

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        share = done / self.total if self.total else 1.0
        print(
            f"replay: {done}/{self.total} events ({share:.0%}), {rate:,.0f} events/s",
            file=self.stream,
            flush=True,
        )


def replay(
    paths: list[Path],
    warnings_out: IO[bytes] | None,
    profiles_out: IO[bytes] | None,
    ctx: Context,
    on_bad: Callable[[BadLine], None],
    progress: bool = True,
    learn: bool = True,
    tier_changes_out: IO[bytes] | None = None,
    credit_actions_out: IO[bytes] | None = None,
    max_ahead: float | None = None,
    limits: Limits = REPLAY_LIMITS,
) -> ReplayReport:
    """Replay ``paths`` through the core; write warnings and final profiles as JSON lines.

    With ``learn``, outcome events train the risk model in-process (one
    :class:`Trainer`, as the trainer agent does in the streaming topology) and
    every refit is loaded into ``ctx.scorer`` at once. ``max_ahead`` (seconds)
    makes events that far ahead of the stream's own time bad lines. ``limits``
    are the worker's (``Limits.from_settings(settings).for_replay()``).
    """
    started = time.monotonic()
    cpu_started = time.process_time()
    bad_count = 0

    def count_bad(bad: BadLine) -> None:
        nonlocal bad_count
        bad_count += 1
        key = bad.reason.split(":")[0]
        report.bad_by_reason[key] = report.bad_by_reason.get(key, 0) + 1
        on_bad(bad)

    def write_warning(warning: dict[str, Any]) -> None:
        if warnings_out is not None:
            warnings_out.write(orjson.dumps(warning) + b"\n")

    def writer(out: IO[bytes] | None) -> Callable[[dict[str, Any]], None] | None:
        if out is None:
            return None

        def write(record: dict[str, Any]) -> None:
            out.write(orjson.dumps(record) + b"\n")

        return write

    driver = Replayer(
        ctx,
        write_warning,
        trainer=Trainer() if learn else None,
        on_tier_change=writer(tier_changes_out),
        on_credit_action=writer(credit_actions_out),
        limits=limits,
    )
    report = driver.report
    if progress:
        print(f"replay: reading {len(paths)} file(s)", file=sys.stderr, flush=True)
    events = read_events(paths, count_bad, max_ahead, limits.max_event_bytes)
    invalid = bad_count
    meter = Progress(len(events)) if progress else None
    names = [str(p) for p in paths]
    ctx.detected_at = datetime.now(UTC)
    ctx.memory.counts.reset()
    # Events come in time order, not customer by customer: keep every customer's
    # previous evaluation, or a stream of more customers than the memory holds
    # would evict each one before its next event.
    customers = len({event.customer_id for _, _, _, event in events})
    ctx.memory.capacity = max(ctx.memory.capacity, customers)
    # Where each fifth of the events ends (none for fewer than five events).
    ends = {len(events) * i // 5 for i in range(1, 6)} if len(events) >= 5 else set()
    applying = time.monotonic()
    since = driver.so_far(0, applying)
    for n, (_, file_no, line_no, event) in enumerate(events, start=1):
        if n % 1024 == 0:
            ctx.detected_at = datetime.now(UTC)
            if meter is not None:
                meter.update(n)
        driver.apply(event, names[file_no], line_no, count_bad)
        if n in ends:
            until = driver.so_far(n, applying)
            report.fifths.append(until.since(since))
            since = until
    if events:
        driver.advance_to(events[-1][0])
    if meter is not None:
        meter.update(len(events), force=True)
    if profiles_out is not None:
        for profile in driver.profiles():
            profiles_out.write(orjson.dumps(profile) + b"\n")
    report.events = len(events) + invalid
    report.bad = bad_count
    report.customers = len(driver.states)
    sizes = sorted(len(encode(s)) for s in driver.states.values())
    if sizes:
        report.state_bytes_median = sizes[len(sizes) // 2]
        report.state_bytes_p99 = sizes[min(len(sizes) - 1, int(len(sizes) * 0.99))]
    report.reuse = ctx.memory.counts.lines()
    report.wakeups_looked = ctx.memory.counts.wakeups_looked
    report.seconds = time.monotonic() - started
    report.cpu_seconds = time.process_time() - cpu_started
    return report
