"""``step`` and ``advance``: the only two ways a customer's state changes.

Both are pure: they take the state, an event (or an event time) and a
:class:`~stream_risk.core.context.Context`, mutate and return the state, and
return what should be published. No I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream_risk.core import alerting, creditpolicy, creditreport, receivables, review, windows
from stream_risk.core import features as feats
from stream_risk.core.context import BadEvent, Context
from stream_risk.core.detectors import DaysLateShift, RobustZScore, SegmentBehaviour
from stream_risk.core.detectors.segment_behaviour import BEHAVIOUR_SCALE
from stream_risk.core.ids import digest
from stream_risk.core.outputs import Outputs, iso
from stream_risk.core.previous import Evaluated, PreviousEvaluation
from stream_risk.core.ruleset import RuleResults, position
from stream_risk.core.scoring import SCORE_FEATURES, RiskScorer
from stream_risk.core.state import (
    KEPT_ENCODED,
    ORD_ID,
    ORD_TS,
    PROMISE_DUE,
    STMT_ID,
    STMT_TS,
    CustomerState,
    orders_expired,
    orders_inserted,
    orders_replaced,
)
from stream_risk.core.trainer import ADVERSE_OUTCOMES, MODEL_FEATURES
from stream_risk.schemas.events import (
    AnyEvent,
    CollectionEvent,
    CreditReportEvent,
    CustomerEvent,
    InvoiceEvent,
    OrderEvent,
    OutcomeEvent,
    PaymentEvent,
    StatementEvent,
)

#: Statements kept at most (a year of weekly ones); older than a year are dropped anyway.
STATEMENTS_KEPT = 60
#: Statements kept however old they are (a year of monthly ones and one more).
STATEMENTS_ALWAYS_KEPT = 13
#: The feature groups the model inputs of a snapshot come from.
_MODEL_GROUPS = feats.groups_of(MODEL_FEATURES)


def event_key(event_id: str) -> str:
    """A short digest of an event id: what de-duplication remembers (ids may be 200 chars)."""
    return digest(event_id.encode(), size=8)


def step(state: CustomerState, event: AnyEvent, ctx: Context) -> tuple[CustomerState, Outputs]:
    """Apply one input event to its customer's state.

    Raises :class:`BadEvent` (before touching the state) for an event that
    cannot be applied: an amount in a currency without a rate, or an event
    older than the allowed lateness behind the customer's latest event time.
    """
    seen_key = event_key(event.event_id)
    if seen_key in state.seen:
        return state, Outputs(duplicate=True)
    ts = event.occurred_at.timestamp()
    # Lateness is measured against the latest event applied, not the clock: timers
    # move the clock on event time of other customers (the partition's newest event),
    # and an event of another topic that is merely behind must still apply.
    latest = state.updated_at
    if latest is not None and ts < latest - ctx.allowed_lateness:
        lag = (latest - ts) / feats.DAY
        raise BadEvent(
            f"event is {lag:.1f} days older than the customer's latest event time "
            f"{iso(latest)}; the allowed lateness is {ctx.allowed_lateness / feats.DAY:g} days"
        )
    state.encoding = None
    taken = len(state.snapshots)
    took = _take_snapshots(state, ts, ctx)
    example = _training_example(state, event, ts, ctx) if isinstance(event, OutcomeEvent) else None
    unchanged = state.unchanged - _CHANGED_BY.get(type(event), KEPT_ENCODED)
    if took:
        unchanged -= _SNAPSHOTS
    # The segment detector learns the customer once per period, at its first event of
    # the period: when timers wake the customer cannot change what it learns.
    period = ctx.snapshot_every
    learn = latest is None or int(ts // period) > int(latest // period)
    try:
        _apply(state, event, ts, ctx)
    except BadEvent:
        del state.snapshots[taken:]  # a bad event changes nothing
        raise
    if state.first_seen is None or ts < state.first_seen:
        state.first_seen = ts
    seen = state.seen
    seen[seen_key] = None
    if len(seen) > ctx.dedup_capacity:
        del seen[next(iter(seen))]
    state.updated_at = ts if state.updated_at is None else max(state.updated_at, ts)
    now = max(state.updated_at, state.clock or state.updated_at)
    state.clock = now
    state.unchanged = unchanged - _forget(state, now, ctx)
    if _prune_snapshots(state, now, ctx):
        state.unchanged -= _SNAPSHOTS
    out = _evaluate(state, now, event.event_id, ts, ctx, learn)
    if example is not None:
        out.training_examples.append(example)
    return state, out


def advance(state: CustomerState, now: float, ctx: Context) -> tuple[CustomerState, Outputs]:
    """Move the customer's clock to event time ``now`` and re-evaluate (timers).

    The outputs say ``clock_only`` when the wake-up evaluated nothing and neither
    expiry nor the model's snapshots changed anything: :class:`ClockMarks` then
    hold all it changed.
    """
    state.encoding = None
    if state.clock is not None and now <= state.clock:
        state.next_wakeup = _next_wakeup(state, state.clock, ctx)
        return state, Outputs(clock_only=True)
    took = _take_snapshots(state, now, ctx)
    since = _evaluated_as_of(state)
    state.clock = now
    forgot = _forget(state, now, ctx)
    state.unchanged = state.unchanged - forgot
    snapshots_changed = _prune_snapshots(state, now, ctx) or took
    if snapshots_changed:
        state.unchanged -= _SNAPSHOTS
    out = _evaluate(state, now, f"{_WAKE}{now:.0f}", now, ctx, learn=False, since=since)
    if out.clock_only and (snapshots_changed or forgot):
        out.clock_only = False
    return state, out


@dataclass(frozen=True, slots=True)
class ClockMarks:
    """What a wake-up that evaluated nothing changes (``Outputs.clock_only``).

    Taken after such a wake-up, they bring the state as it was before it (its
    encoding from before, decoded) to the state after it: a driver need not encode
    the state after every such wake-up to be able to go back to it.
    """

    clock: float | None
    risk_score: float
    #: The detectors' ``score`` (the previous evaluation's, for the score's change).
    score: float | None
    next_wakeup: float | None

    @classmethod
    def of(cls, state: CustomerState) -> ClockMarks:
        return cls(state.clock, state.risk_score, state.detectors.get("score"), state.next_wakeup)

    def restore(self, state: CustomerState) -> None:
        """Put the marks back on ``state`` (decoded from before the wake-ups they end)."""
        state.clock = self.clock
        state.risk_score = self.risk_score
        if self.score is None:
            state.detectors.pop("score", None)
        else:
            state.detectors["score"] = self.score
        state.next_wakeup = self.next_wakeup


def profile_of(state: CustomerState, kept: dict[str, Any] | None = None) -> dict[str, Any]:
    """The customer's risk profile (EVENTS.md) as of its own clock.

    ``kept`` is where the customer's evaluations keep their feature groups (its
    :class:`~stream_risk.core.previous.PreviousEvaluation` ``groups``): those still
    valid are reused, as an evaluation reuses them.
    """
    now = state.clock if state.clock is not None else 0.0
    return {
        "customer_id": state.customer_id,
        "risk_score": state.risk_score,
        "tier": state.tier,
        "features": feats.compute(state, now, None, kept),
        # The rules of a low digest group share one warning: listed once.
        "active_warnings": list(dict.fromkeys(alert[0] for alert in state.alerts.values())),
        "updated_at": iso(state.updated_at if state.updated_at is not None else now),
    }


def _evaluate(
    state: CustomerState,
    now: float,
    trigger: str,
    occurred_at: float,
    ctx: Context,
    learn: bool,
    since: tuple[Any, ...] | None = None,
) -> Outputs:
    previous = ctx.memory.of(state.customer_id)
    features = feats.compute(state, now, ctx.feature_groups, previous.groups)
    unseen = None if since is None else _unseen(state, now, features, ctx, since)
    if unseen is not None:
        # A timer, and what the rules, the tier and the credit policy would see is what
        # the previous evaluation saw: nothing to evaluate (nor to publish). The score is
        # kept as an evaluation keeps it: the next one's change is measured from here.
        previous.counts.wakeups_looked += 1
        state.detectors["score"] = state.risk_score = unseen
        last = previous.view
        assert last is not None
        previous.view = (last[0], last[1], _evaluated_as_of(state))
        state.next_wakeup = _next_wakeup(state, now, ctx)
        return Outputs(clock_only=True)
    previous.seq += 1
    changed = previous.changed(features)
    detectors = state.detectors
    if ctx.population is not None:
        peer = _peer(state, features, ctx.population, learn, previous, changed)
        if peer is not None:
            detectors["peer"] = [now, round(peer, 4)]
            _set(features, "behaviour_anomaly", round(peer, 4), changed)
    scorer = ctx.scorer
    seasoned = state.first_seen is not None and now - state.first_seen >= ctx.outcome_horizon
    score, learned = _score(scorer, features, seasoned, previous, changed)
    before = detectors.get("score")
    _set(features, "risk_score", score, changed)
    _set(features, "risk_score_learned", round(learned, 4), changed)
    change = 0.0 if before is None else round(score - before, 6)
    _set(features, "risk_score_change", change, changed)
    _set(features, "raw_tier", scorer.tier(score, state.segment), changed)
    detectors["score"] = score
    state.risk_score = score
    state.tier = features["raw_tier"]
    previous.remember(features)
    previous.view = (ctx.rules, _policy_view(state, now, features, ctx), _evaluated_as_of(state))
    evaluated = Evaluated(features, previous, changed)
    out = Outputs()
    alerting.evaluate(state, evaluated, trigger, occurred_at, ctx, out)
    # Credit policy: assessment, periodic review, earned increases (rule pack's credit_policy).
    review.evaluate(state, evaluated, trigger, occurred_at, now, ctx, out)
    state.next_wakeup = _next_wakeup(state, now, ctx)
    return out


#: How a wake-up's trigger starts.
_WAKE = "clock@"


def _evaluated_as_of(state: CustomerState) -> tuple[Any, ...]:
    """Where the customer's history stands: its clock and latest event applied. The
    evaluation memory holds the previous evaluation of this history only if they match
    (a state restored after a failed message, or a copy, has another)."""
    return (state.clock, next(reversed(state.seen), None))


def _unseen(
    state: CustomerState,
    now: float,
    features: dict[str, Any],
    ctx: Context,
    since: tuple[Any, ...],
) -> float | None:
    """The score, when a wake-up at ``now`` may skip the evaluation (else ``None``).

    It may when the memory holds the evaluation the customer's history stood at
    before the wake-up (``since``), no held rule, tier hold, cooldown end or review is
    due, every rule holds at the level it held at the previous evaluation (a rule
    none of whose values moved among the rules' constants is not looked at; one
    whose values moved is answered from the rules' memo), and the score's tier and
    the credit policy's view (:func:`_policy_view`) are those of the previous
    evaluation. The rule lifecycles then see what they saw: nothing can move.
    """
    previous = ctx.memory.of(state.customer_id)
    last, results = previous.view, previous.rules
    if (
        last is None
        or last[2] != since
        or last[0] is not ctx.rules
        or not isinstance(results, RuleResults)
        or results.rules is not ctx.rules
        or results.seq != previous.seq
    ):
        return None
    for due in (alerting.next_due(state, ctx), review.next_due(state)):
        if due is not None and due <= now:
            return None
    for record in state.watch.values():
        if len(record) > 4 and record[4] is not None and record[4] <= now:
            return None  # a cooldown ended: an evaluation forgets it
    scorer = ctx.scorer
    seasoned = state.first_seen is not None and now - state.first_seen >= ctx.outcome_horizon
    score, learned = scorer.score_and_weight(features, seasoned)
    derived = _derived(state, score, learned, ctx)
    positions = results.inputs
    moved: dict[str, Any] = {}
    for name, cuts in ctx.rules.inputs.items():
        value = derived[name] if name in derived else features.get(name)
        at = position(value, cuts)
        if at != positions.get(name):
            moved[name] = at
    seen = {**features, **derived}
    if moved and (
        state.tier != results.tier or not ctx.rules.same_levels(results, seen, moved, state.tier)
    ):
        return None
    if _policy_view(state, now, seen, ctx) != last[1]:
        return None
    return score


def _derived(state: CustomerState, score: float, learned: float, ctx: Context) -> dict[str, Any]:
    """The features an evaluation derives from the score, as it would set them."""
    before = state.detectors.get("score")
    return {
        "risk_score": score,
        "risk_score_learned": round(learned, 4),
        "risk_score_change": 0.0 if before is None else round(score - before, 6),
        "raw_tier": ctx.scorer.tier(score, state.segment),
    }


def _set(features: dict[str, Any], name: str, value: Any, changed: set[str] | None) -> None:
    """Set a feature the evaluation derives, noting whether it changed."""
    if changed is not None and name not in changed:
        old = features.get(name, _ABSENT)
        if old is not value and (old != value or type(old) is not type(value)):
            changed.add(name)
    features[name] = value


_ABSENT = object()


def _peer(
    state: CustomerState,
    features: dict[str, Any],
    population: SegmentBehaviour,
    learn: bool,
    previous: PreviousEvaluation,
    changed: set[str] | None,
) -> float | None:
    """The segment detector's score: re-scored when its inputs moved, learned when ``learn``."""
    segment = _segment_key(state)
    key = (population, segment)
    if (
        not learn
        and changed is not None
        and previous.peer_key == key
        and changed.isdisjoint(BEHAVIOUR_SCALE)
    ):
        previous.counts.peers_kept += 1
        return previous.peer
    previous.counts.peers_scored += 1
    peer = population.score_one(segment, features)  # score before learn
    if learn:
        # Learned once per customer and snapshot period, so busy customers
        # do not outweigh quiet ones in their segment's picture of normal.
        population.learn_one(segment, features, peer)
    previous.peer, previous.peer_key = peer, key
    return peer


def _score(
    scorer: RiskScorer,
    features: dict[str, Any],
    seasoned: bool,
    previous: PreviousEvaluation,
    changed: set[str] | None,
) -> tuple[float, float]:
    """The risk score and the learned model's weight in it, re-computed on a change only."""
    model = scorer.model
    key = (
        model,
        scorer.version,
        scorer.outcomes_seen,
        scorer.calibrator.a,
        scorer.calibrator.b,
        scorer.min_months_on_book,
        seasoned,
    )
    if changed is not None and previous.score is not None and previous.score_key == key:
        reads = SCORE_FEATURES if model is None else (*SCORE_FEATURES, *model.features)
        if changed.isdisjoint(reads) and (model is None or "months_on_book" not in changed):
            previous.counts.scores_kept += 1
            return previous.score
    previous.counts.scores_computed += 1
    score = scorer.score_and_weight(features, seasoned)
    previous.score, previous.score_key = score, key
    return score


def _next_wakeup(state: CustomerState, now: float, ctx: Context) -> float | None:
    """The earliest event time a feature, a held rule, the tier or the credit policy's
    waiting times change without input."""
    times = [
        feats.next_check(state, now, ctx.expiry_watch),
        feats.next_threshold(state, now, ctx.clock_thresholds),
        alerting.next_due(state, ctx),
        review.next_due(state),  # the periodic credit review, also for quiet customers
    ]
    credit = creditpolicy.policy_of(ctx.rules)
    if credit is not None and credit.increases is not None:
        # Paid on time long enough, or out of a cooldown: an earned increase may be due.
        times.append(review.next_increase_clock(state, now, credit.increases))
    future = [t for t in times if t is not None and t > now]
    return min(future, default=None)


def _policy_view(
    state: CustomerState, now: float, features: dict[str, Any], ctx: Context
) -> tuple[Any, ...]:
    """What an evaluation at ``now`` with ``features`` (the score's included) shows the
    tier and the credit policy: the score's tier, and the policy's lateness and
    waiting times (paid on time long enough, increases out of their cooldowns)."""
    view: list[Any] = [features["raw_tier"]]
    credit = creditpolicy.policy_of(ctx.rules)
    if credit is not None and credit.increases is not None:
        view.append(review.is_late(features, credit.increases))
        view += review.increase_clocks(state, now, credit.increases)
    return tuple(view)


def _segment_key(state: CustomerState) -> str:
    segment = state.segment or {}
    return str(segment.get("industry") or "all")


#: The field :func:`_take_snapshots` and :func:`_prune_snapshots` change.
_SNAPSHOTS = frozenset({"snapshots"})


def _take_snapshots(state: CustomerState, until: float, ctx: Context) -> bool:
    """Keep the model inputs at each period boundary the clock passes on its way to ``until``.

    A boundary's inputs are those of the state as it is when the boundary comes
    (before any event at or after it), so they do not depend on when the customer
    was evaluated. Only the boundaries that :func:`_prune_snapshots` would keep
    are computed: a customer woken after a long quiet spell pays for a few.
    Returns whether it took any.
    """
    clock = state.clock
    if clock is None or until <= clock:
        return False
    period = ctx.snapshot_every
    first = math.floor(clock / period) + 1
    last = math.floor(until / period)
    snapshots = state.snapshots
    taken = len(snapshots)
    # Between events only the clock moves: most groups hold from one boundary to the next.
    kept = ctx.memory.of(state.customer_id).groups
    for n in range(max(first, last - _snapshots_kept(ctx) + 1), last + 1):
        boundary = n * period
        if boundary <= clock:
            continue  # ``clock / period`` rounded up to the boundary
        features = feats.compute(state, boundary, _MODEL_GROUPS, kept)
        snapshots.append([boundary, [_model_value(features.get(name)) for name in MODEL_FEATURES]])
    return len(snapshots) > taken


def _prune_snapshots(state: CustomerState, now: float, ctx: Context) -> bool:
    """Drop the snapshots no outcome still to come can choose.

    An older snapshot is useless once a later one is already old enough for any
    outcome still to come. An outcome applies down to the allowed lateness behind
    the customer's latest event, however far timers moved its clock on the
    partition's newer events (a review wake-up of a customer whose own events are
    still arriving): the earliest such outcome, not the clock, sets the cutoff.
    Returns whether it dropped any.
    """
    snapshots = state.snapshots
    before = len(snapshots)
    latest = now if state.updated_at is None else min(now, state.updated_at)
    cutoff = latest - ctx.allowed_lateness - ctx.outcome_horizon
    while len(snapshots) > 1 and snapshots[1][0] <= cutoff:
        del snapshots[0]
    kept = _snapshots_kept(ctx)
    while len(snapshots) > kept:
        # A quiet customer woken for long: thin the oldest snapshot after its latest
        # event, keeping those late outcomes and the most recent ones need.
        for n in range(1, len(snapshots) - 1):
            if snapshots[n][0] > latest:
                del snapshots[n]
                break
        else:
            break
    return len(snapshots) < before


def _model_value(value: Any) -> Any:
    """A model input as a snapshot keeps it: 4 significant digits, numbers only.

    >>> _model_value(1234.5678), _model_value(0.000123456), _model_value(30.0)
    (1235.0, 0.0001235, 30.0)
    >>> _model_value(3), _model_value(True), _model_value("x"), _model_value(None)
    (3, None, None, None)
    """
    if type(value) is float:
        # A whole number of up to 4 digits is what the rounding gives (most inputs are
        # days and counts): only the others pay for formatting and parsing.
        if -1e4 < value < 1e4 and value.is_integer():
            return value
        return float(f"{value:.4g}")
    return value if type(value) is int else None


def _snapshots_kept(ctx: Context) -> int:
    """Snapshots a customer keeps at most: those late outcomes may need, then recent ones.

    One per period from the allowed lateness and the horizon before the latest event,
    the one just old enough, and as many wake-up snapshots (clock ahead of the latest
    event) as cover a horizon.
    """
    period = ctx.snapshot_every
    return (
        math.ceil((ctx.allowed_lateness + ctx.outcome_horizon) / period)
        + math.ceil(ctx.outcome_horizon / period)
        + 3
    )


def _training_example(
    state: CustomerState, event: OutcomeEvent, ts: float, ctx: Context
) -> dict[str, Any] | None:
    """The customer's model inputs as of ``outcome_horizon`` before the outcome, labelled."""
    as_of = ts - ctx.outcome_horizon
    chosen = None
    for snapshot in state.snapshots:
        if snapshot[0] <= as_of:
            chosen = snapshot
    if chosen is None or len(chosen[1]) != len(MODEL_FEATURES):
        return None  # the customer was not known that long before its outcome
    return {
        "customer_id": state.customer_id,
        "event_id": event.event_id,
        "outcome": event.outcome,
        "adverse": event.outcome in ADVERSE_OUTCOMES,
        "outcome_at": iso(ts),
        "as_of": iso(chosen[0]),
        "features": dict(zip(MODEL_FEATURES, chosen[1], strict=True)),
    }


def _apply(state: CustomerState, event: AnyEvent, ts: float, ctx: Context) -> None:
    if isinstance(event, OrderEvent):
        amount = ctx.to_base(event.amount, event.currency)
        _order(state, event.order_id, amount, event.status, ts, ctx.allowed_lateness)
    elif isinstance(event, PaymentEvent):
        amount = ctx.to_base(event.amount, event.currency)
        if event.status == "settled":
            closed = len(state.book["closed"])
            _receivable(state, [ts, "p", event.payment_id, amount, event.invoice_id])
            for record in state.book["closed"][closed:]:
                _days_late(state, float(record[3]), ts)
            _ledger(state, ts, -amount)
        else:
            _receivable(state, [ts, "b", event.payment_id])
            _ledger(state, ts, amount)
    elif isinstance(event, InvoiceEvent):
        amount = ctx.to_base(event.amount, event.currency)
        state.invoiced = True
        # A re-sent invoice corrects the amount: only the difference changes the receivable.
        previous = receivables.invoiced_amount(state.book, event.invoice_id)
        _receivable(state, [ts, "i", event.invoice_id, amount, event.due_at.timestamp()])
        _ledger(state, ts, amount - previous)
    elif isinstance(event, StatementEvent):
        balance = ctx.to_base(event.balance, event.currency)
        _statement(state, [ts, balance, event.days_past_due, event.status, event.statement_id])
        _days_late(state, float(event.days_past_due), ts)
    elif isinstance(event, CustomerEvent):
        limit = ctx.to_base(event.credit_limit, event.currency)
        if state.profile_at is None or ts >= state.profile_at:
            state.profile_at = ts
            state.credit_limit = limit
            state.payment_terms_days = event.payment_terms_days
            state.segment = event.segment.model_dump(exclude_none=True) if event.segment else None
            state.rating = event.rating
            state.financials = _plain_numbers(event.financials)
            creditreport.apply_profile(state, event.currency, ctx)
    elif isinstance(event, CreditReportEvent):
        creditreport.apply_report(state, event, ts, ctx)
    elif isinstance(event, CollectionEvent):
        if (
            event.action == "promise_to_pay"
            and event.promised_at is not None
            and event.promised_amount is not None
        ):
            windows.insert(
                state.promises, [ts, event.promised_at.timestamp(), event.promised_amount]
            )
    elif isinstance(event, OutcomeEvent):
        if state.outcome_at is None or ts >= state.outcome_at:
            state.outcome_at = ts
            state.last_outcome = event.outcome
    else:  # pragma: no cover - the union is exhaustive
        raise BadEvent(f"unsupported event type {type(event).__name__}")


def _plain_numbers(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Integers beyond 64 bits become floats, so the state always encodes."""
    if values is None:
        return None
    return {
        k: float(v) if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**63 else v
        for k, v in values.items()
    }


def _order(
    state: CustomerState, order_id: str, amount: float, status: str, ts: float, lateness: float
) -> None:
    if status == "placed":
        # A cancellation that arrived first cancels it; one from long before the
        # order (an id re-used later) does not.
        if any(c[1] == order_id and c[0] >= ts - lateness for c in state.cancelled):
            return
        _order_detectors(state, amount, ts)
        orders_inserted(state, windows.insert(state.orders, [ts, amount, order_id]))
        return
    orders_replaced(state, [o for o in state.orders if o[ORD_ID] != order_id])
    windows.insert(state.cancelled, [ts, order_id])


def _order_detectors(state: CustomerState, amount: float, ts: float) -> None:
    """Score a new order against the customer's own orders, then learn it."""
    d = state.detectors
    amounts = RobustZScore.from_dict(d.get("amount"))
    z = amounts.score_one(amount)
    amounts.learn_one(amount)
    d["amount"] = amounts.to_dict()
    d["amount_z"] = [ts, None if z is None else round(z, 4)]
    previous = state.orders[-1][ORD_TS] if state.orders else state.last_order_at
    if previous is None or ts <= previous:
        return  # the first order, or a late one: no new gap to judge
    # Frequency as minus the log of the gap: positive z when orders come faster.
    frequency = -math.log1p((ts - previous) / feats.DAY)
    gaps = RobustZScore.from_dict(d.get("frequency"))
    fz = gaps.score_one(frequency)
    gaps.learn_one(frequency)
    d["frequency"] = gaps.to_dict()
    d["frequency_z"] = [ts, None if fz is None else round(fz, 4)]


def _days_late(state: CustomerState, days_late: float, ts: float) -> None:
    """Feed one days-late observation to the customer's change detector."""
    d = state.detectors
    shift = DaysLateShift(state=d.get("late"))
    flag = shift.score_one(days_late)
    shift.learn_one(days_late)
    d["late"] = shift.to_dict()
    if flag:
        d["late_shift"] = [ts, flag]


def _receivable(state: CustomerState, entry: list[Any]) -> None:
    receivables.record(state.book, state.journal, entry)
    state.invoice_ages = None  # derived from the book


def _ledger(state: CustomerState, ts: float, delta: float) -> None:
    day = int(ts // feats.DAY)
    ledger = state.ledger
    state.ledger_totals = None  # derived from the ledger
    for rec in reversed(ledger):
        if rec[0] == day:
            rec[1] += delta
            return
        if rec[0] < day:
            break
    windows.insert(ledger, [day, delta])


def _statement(state: CustomerState, record: list[Any]) -> None:
    for s in state.statements:
        if s[STMT_ID] == record[STMT_ID] and s[STMT_TS] > record[STMT_TS]:
            return  # a later correction of this statement is already applied
    statements = [s for s in state.statements if s[STMT_ID] != record[STMT_ID]]
    windows.insert(statements, record)
    state.statements = statements[-STATEMENTS_KEPT:]


#: The fields of :data:`KEPT_ENCODED` an event of each type changes (others: all).
_CHANGED_BY: dict[type, frozenset[str]] = {
    OrderEvent: frozenset({"seen", "orders", "cancelled"}),
    PaymentEvent: frozenset({"seen", "book", "journal", "ledger"}),
    InvoiceEvent: frozenset({"seen", "book", "journal", "ledger"}),
    StatementEvent: frozenset({"seen", "statements"}),
    CollectionEvent: frozenset({"seen", "promises"}),
    CustomerEvent: frozenset({"seen"}),
    CreditReportEvent: frozenset({"seen"}),
    OutcomeEvent: frozenset({"seen"}),
}


def _sizes(state: CustomerState) -> tuple[Any, ...]:
    """What expiry changes when it drops something (it only ever drops)."""
    book = state.book
    return (
        (len(book["paid"]), len(book["closed"]), len(book["bounced"]), book.get("last_paid")),
        len(state.journal),
        len(state.orders),
        len(state.cancelled),
        len(state.statements),
        len(state.promises),
        len(state.ledger),
    )


_SIZED = ("book", "journal", "orders", "cancelled", "statements", "promises", "ledger")


def _forget(state: CustomerState, now: float, ctx: Context) -> frozenset[str]:
    """Fold and expire what no window, lateness or undo can need any more.

    Returns the fields of :data:`KEPT_ENCODED` that changed.
    """
    before = _sizes(state)
    _expire(state, now, ctx)
    after = _sizes(state)
    if before == after:
        return frozenset()
    if before[0][1] != after[0][1]:
        state.invoice_ages = None  # closed invoices were forgotten (it reads no others)
    return frozenset(name for name, a, b in zip(_SIZED, before, after, strict=True) if a != b)


def _expire(state: CustomerState, now: float, ctx: Context) -> None:
    # A late event may still arrive up to the allowed lateness behind the latest
    # event applied (the clock may be further on): keep what it would need.
    anchor = now if state.updated_at is None else min(now, state.updated_at)
    receivables.fold(state.journal, anchor - ctx.allowed_lateness)
    earliest = anchor - ctx.allowed_lateness
    # A promise to pay is judged by the payments between it and its due date.
    promises = [p for p in state.promises if p[PROMISE_DUE] > earliest - feats.PROMISE_WINDOW]
    state.promises = promises
    receivables.expire(state.book, earliest, min((p[0] for p in promises), default=None))
    # A pure function of the latest event time, so what is kept never depends on
    # arrival order.
    horizon = anchor - feats.ORDER_RETENTION - ctx.allowed_lateness
    expired = windows.expire(state.orders, horizon)
    if expired:
        latest = expired[-1][ORD_TS]
        state.last_order_at = max(state.last_order_at or latest, latest)
        orders_expired(state, len(expired))
    windows.expire(state.cancelled, anchor - feats.ORDER_HISTORY - ctx.allowed_lateness)
    statements = state.statements
    if len(statements) > STATEMENTS_ALWAYS_KEPT:
        # The latest ones stay however old: balance, trends and streaks come from them.
        latest = statements[-STATEMENTS_ALWAYS_KEPT:]
        del statements[-STATEMENTS_ALWAYS_KEPT:]
        windows.expire(statements, anchor - feats.HISTORY - ctx.allowed_lateness)
        statements.extend(latest)
    ledger = state.ledger
    first_day = int(now // feats.DAY) - feats.LEDGER_DAYS
    while ledger and ledger[0][0] < first_day:
        state.ledger_base += ledger.pop(0)[1]
        state.ledger_totals = None
