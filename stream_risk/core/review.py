"""Credit policy in a customer's evaluation: assessment, earned increases, periodic review.

:func:`evaluate` runs after the rules (:mod:`stream_risk.core.alerting`) in every
evaluation of a customer whose rule pack has a ``credit_policy``
(:mod:`stream_risk.core.creditpolicy`). At most one of, in this order:

1. **assessment** when the customer is first evaluated with a profile (a
   ``customer`` event) or a credit report, and whenever its limit, terms,
   financials or rating or its credit report change:
   ``set_credit_limit`` and ``set_terms`` with the grade, the points of every
   factor and how the limit was sized;
2. **periodic review** when ``review.every`` has passed on event time since the
   last assessment or review (quiet customers wake up for it): one decision,
   ``keep``, ``raise``, ``lower`` or ``terms_change``, with its evidence;
3. **earned increase** for a customer in one of ``increases.tiers`` whose
   utilisation is at least ``increases.min_utilisation`` and whose payments have
   been on time for ``increases.on_time_for``: ``increase_credit_limit`` and
   ``extend_terms`` as the pack says.

More credit (a higher limit or longer terms than the current ones) is only
proposed, after the first assessment, when the increase conditions hold:
the customer's tier allows it, no warning of medium or higher is active, it
has paid on time for the configured period (with at least ``min_payments``
payments in 90 days), and no increase was proposed within the cooldown.
Otherwise the limit and terms proposed stay at the current ones and the
evidence says why. Every record goes to the credit-actions output, proposed,
in the shape of :func:`stream_risk.core.policy.credit_action`.

The bookkeeping lives in ``state.credit_review``, a fixed set of scalars:
``grade``, ``points``, ``limit``, ``terms``, ``assessed_at``, ``basis``, ``digest``,
``review_due``, ``on_time_since``, ``increased_at`` (limit), ``extended_at`` (terms),
``fx``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from stream_risk.core import creditpolicy, policy
from stream_risk.core import features as feats
from stream_risk.core.assessment import Result, assess, rating_score
from stream_risk.core.creditpolicy import CreditPolicy, Increases
from stream_risk.core.ids import content_id, digest
from stream_risk.core.outputs import Outputs, iso
from stream_risk.core.state import CustomerState
from stream_risk.core.units import DAY

#: Feature groups an assessment and the increase conditions read.
NEEDED_GROUPS = frozenset(
    {"exposure", "aging", "repayment", "delinquency", "orders", "profile", "credit"}
)
#: Groups the per-evaluation on-time record and increase conditions read.
TRACKING_GROUPS = frozenset({"exposure", "aging", "repayment"})
_BLOCKING_LEVELS = frozenset({"medium", "high", "critical"})
_HELD_PHASES = frozenset({"pending", "muted"})
#: Behaviour shown in a review's evidence.
_BEHAVIOUR = (
    "credit_utilisation",
    "open_balance",
    "days_past_due",
    "avg_days_late_90d",
    "times_30dpd_12m",
    "payment_count_90d",
    "order_amount_90d",
)


def evaluate(
    state: CustomerState,
    features: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    now: float,
    ctx: Any,
    out: Outputs,
) -> None:
    """Assess, review or offer an earned increase as the pack's credit policy says."""
    credit = creditpolicy.policy_of(ctx.rules)
    if credit is None:
        return
    record = state.credit_review if state.credit_review is not None else {}
    state.credit_review = record
    values = _with_groups(state, now, features, ctx, TRACKING_GROUPS)
    if credit.increases is not None:
        _track_on_time(record, values, now, credit.increases)
    if credit.review is None:
        record.pop("review_due", None)
    first = "assessed_at" not in record
    # Nothing to assess before a profile (customer event) or a credit report arrives.
    known = state.profile_at is not None or state.credit_report is not None
    if credit.assessment is not None and known and (first or _inputs_changed(state, record)):
        _assessment(state, record, first, values, trigger, occurred_at, now, credit, ctx, out)
        return
    due = record.get("review_due")
    if credit.review is not None and due is not None and now >= due:
        _review(state, record, float(due), values, occurred_at, now, credit, ctx, out)
        return
    if credit.increases is not None:
        _earned_increase(
            state, record, values, trigger, occurred_at, now, credit.increases, ctx, out
        )


def next_due(state: CustomerState) -> float | None:
    """When the customer's next periodic review is due (event time), if one is scheduled."""
    record = state.credit_review
    if not record:
        return None
    due = record.get("review_due")
    return float(due) if due is not None else None


# ------------------------------------------------------------------ conditions


def _inputs_changed(state: CustomerState, record: dict[str, Any]) -> bool:
    """Whether the profile (limit, terms, financials, rating) or the credit report changed.

    The times of the latest profile and report are compared first (cheap); only
    when one moved is the content compared, so a re-sent profile changes nothing.
    """
    report = state.credit_report or {}
    when = [state.profile_at, report.get("at"), report.get("id")]
    if record.get("basis") == when:
        return False
    record["basis"] = when
    return record.get("digest") != _inputs_digest(state)


def _inputs_digest(state: CustomerState) -> str:
    report = state.credit_report and dict(state.credit_report, seen=0)
    profile = [state.credit_limit, state.payment_terms_days, state.financials, state.rating]
    content = orjson.dumps(
        [*profile, report],
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )
    return digest(content, size=8)


def _with_groups(
    state: CustomerState, now: float, features: Mapping[str, Any], ctx: Any, groups: frozenset[str]
) -> Mapping[str, Any]:
    """``features`` plus the groups of ``groups`` the step did not compute (a lean rule pack)."""
    missing = groups - ctx.feature_groups
    if not missing:
        return features
    for group, needs in feats.REQUIRES.items():
        if group in missing:
            missing |= needs
    return {**features, **feats.compute(state, now, frozenset(missing))}


def _num(values: Mapping[str, Any], name: str) -> float | None:
    value = values.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _track_on_time(
    record: dict[str, Any], values: Mapping[str, Any], now: float, rules: Increases
) -> None:
    """Since when the customer has paid on time: reset by anything later than the tolerance."""
    if is_late(values, rules):
        record["on_time_since"] = None
    elif record.get("on_time_since") is None:
        record["on_time_since"] = now


def is_late(values: Mapping[str, Any], rules: Increases) -> bool:
    """Whether ``values`` show the customer later than the increases' tolerance."""
    tolerance = rules.days_late_tolerance
    return (
        (_num(values, "days_past_due") or 0.0) > tolerance
        or (_num(values, "avg_days_late_90d") or 0.0) > tolerance
        or (_num(values, "bounced_payments_90d") or 0.0) > 0
    )


def increase_clocks(state: CustomerState, now: float, rules: Increases) -> tuple[bool, ...]:
    """Which of the earned increase's waiting times have passed at ``now``: paid on
    time long enough, and each kind of increase out of its cooldown."""
    record = state.credit_review or {}
    since = record.get("on_time_since")
    clocks = [since is not None and not now - float(since) < rules.on_time_for]
    for name in CLOCKS.values():
        at = record.get(name)
        clocks.append(at is None or not now - float(at) < rules.cooldown)
    return tuple(clocks)


def next_increase_clock(state: CustomerState, now: float, rules: Increases) -> float | None:
    """When the next of :func:`increase_clocks` passes after ``now`` (``None``: none is running).

    The customer is woken then: an earned increase may become due without any event.
    """
    record = state.credit_review or {}
    waits = [(record.get("on_time_since"), rules.on_time_for)]
    waits += [(record.get(name), rules.cooldown) for name in CLOCKS.values()]
    best: float | None = None
    for start, wait in waits:
        if start is None:
            continue
        since = float(start)
        passes = since + wait
        # The first representable time :func:`increase_clocks` sees as passed.
        while passes - since < wait:
            passes = math.nextafter(passes, math.inf)
        if passes > now and (best is None or passes < best):
            best = passes
    return best


def blocking_warnings(state: CustomerState) -> list[str]:
    """Warnings of medium or higher that fire, or whose condition holds but is held back.

    A repeat muted by its cooldown or an inhibition, or one waiting out its
    ``for``, still means the condition is there: it blocks increases as a firing one does.
    """
    active = [
        f"{rule} ({alert[1]})"
        for rule, alert in state.alerts.items()
        if alert[1] in _BLOCKING_LEVELS
    ]
    active += [
        f"{rule} ({episode[2]}, {episode[0]})"
        for rule, episode in state.watch.items()
        if episode[0] in _HELD_PHASES and episode[2] in _BLOCKING_LEVELS
    ]
    return sorted(active)


#: What more credit is: a higher limit or longer terms, each on its own cooldown clock.
CLOCKS = {"limit": "increased_at", "terms": "extended_at"}


def increase_blocked(
    state: CustomerState,
    record: Mapping[str, Any],
    values: Mapping[str, Any],
    now: float,
    rules: Increases | None,
    what: str = "limit",
) -> str | None:
    """Why more credit (``what``: ``limit`` or ``terms``) may not be proposed now, else ``None``."""
    if rules is None:
        return "the rule pack allows no increases (no credit_policy.increases)"
    if state.tier not in rules.tiers:
        return f"tier {state.tier} may not earn increases (only {', '.join(rules.tiers)})"
    active = blocking_warnings(state)
    if active:
        return "warnings of medium or higher are active: " + ", ".join(active)
    increased = record.get(CLOCKS[what])
    if increased is not None and now - increased < rules.cooldown:
        return (
            f"a {what} increase was proposed {(now - increased) / DAY:.0f} days ago "
            f"(cooldown {rules.cooldown / DAY:g} days)"
        )
    since = record.get("on_time_since")
    days = 0.0 if since is None else (now - since) / DAY
    if since is None or now - since < rules.on_time_for:
        return (
            f"payments on time for {days:.0f} days, {rules.on_time_for / DAY:g} needed "
            f"(tolerance {rules.days_late_tolerance:g} days late, no bounced payment)"
        )
    payments = _num(values, "payment_count_90d") or 0.0
    if payments < rules.min_payments:
        return f"{payments:.0f} payments in 90 days, {rules.min_payments} needed"
    return None


# ------------------------------------------------------------------ records


def _source_id(prefix: str, customer_id: str, *parts: str) -> str:
    return content_id(prefix, customer_id, prefix, *parts)


def _publish(
    state: CustomerState,
    source: str,
    source_id: str,
    recommendations: list[dict[str, Any]],
    evidence: dict[str, Any],
    occurred_at: float,
    ctx: Any,
    out: Outputs,
) -> None:
    out.credit_actions.append(
        policy.credit_action(
            customer_id=state.customer_id,
            source=source,
            source_id=source_id,
            level=state.tier,
            occurred_at=iso(occurred_at),
            detected_at=ctx.detected_at.isoformat(),
            tier=state.tier,
            risk_score=state.risk_score,
            recommendations=recommendations,
            credit_limit=state.credit_limit,
            terms_days=state.payment_terms_days,
            evidence=evidence,
            rules_version=ctx.rules.version,
        )
    )


def _assess(
    state: CustomerState, values: Mapping[str, Any], now: float, credit: CreditPolicy, ctx: Any
) -> Result | None:
    full = dict(_with_groups(state, now, values, ctx, NEEDED_GROUPS))
    score, source = rating_score(state.credit_report, state.rating, credit.ratings)
    full["rating_score"] = score
    known_for = now - state.first_seen if state.first_seen is not None else 0.0
    result = assess(credit, full, known_for)
    if result is not None:
        result.limit_basis["rating_source"] = source
        result.limit_basis["behaviour"] = {
            name: full.get(name) for name in _BEHAVIOUR if full.get(name) is not None
        }
    return result


def _remember(record: dict[str, Any], result: Result, now: float, credit: CreditPolicy) -> None:
    record.update(
        grade=result.grade,
        points=result.points,
        limit=result.limit,
        terms=result.terms_days,
        assessed_at=now,
    )
    if credit.review is not None:
        record["review_due"] = now + credit.review.every


def _assessment(
    state: CustomerState,
    record: dict[str, Any],
    first: bool,
    values: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    now: float,
    credit: CreditPolicy,
    ctx: Any,
    out: Outputs,
) -> None:
    result = _assess(state, values, now, credit, ctx)
    if result is None:
        return
    report = state.credit_report or {}
    record["basis"] = [state.profile_at, report.get("at"), report.get("id")]
    record["digest"] = _inputs_digest(state)
    _remember(record, result, now, credit)
    limit, terms = result.limit, result.terms_days
    current_limit, current_terms = state.credit_limit, state.payment_terms_days
    notes: list[str] = []
    if not first and current_limit is not None and limit > current_limit:
        blocked = increase_blocked(state, record, values, now, credit.increases, "limit")
        if blocked is None:
            record[CLOCKS["limit"]] = now
        else:
            limit = current_limit
            notes.append(f"kept at the current limit: {blocked}")
    if not first and current_terms is not None and terms > current_terms:
        blocked = increase_blocked(state, record, values, now, credit.increases, "terms")
        if blocked is None:
            record[CLOCKS["terms"]] = now
        else:
            terms = current_terms
            notes.append(f"kept at the current terms: {blocked}")
    recommendations = [
        {"kind": "set_credit_limit", "to": limit, "from": current_limit, "grade": result.grade},
        {"kind": "set_terms", "days": terms, "from": current_terms},
    ]
    evidence = {
        "assessment": "initial" if first else "reassessment",
        **result.evidence(),
        "recommended": {"credit_limit": result.limit, "payment_terms_days": result.terms_days},
        "notes": notes,
    }
    source_id = _source_id("s", state.customer_id, trigger)
    _publish(state, "assessment", source_id, recommendations, evidence, occurred_at, ctx, out)


def _review(
    state: CustomerState,
    record: dict[str, Any],
    due: float,
    values: Mapping[str, Any],
    occurred_at: float,
    now: float,
    credit: CreditPolicy,
    ctx: Any,
    out: Outputs,
) -> None:
    review = credit.review
    assert review is not None
    result = _assess(state, values, now, credit, ctx)
    if result is None:
        return
    _remember(record, result, now, credit)
    # Reviews stay on their grid: a late wake-up does not shift the next one.
    record["review_due"] = due + ((now - due) // review.every + 1) * review.every
    current_limit, current_terms = state.credit_limit, state.payment_terms_days
    target = result.limit
    notes: list[str] = []
    decision = "keep"
    recommendation: dict[str, Any] = {"kind": "keep"}
    if current_limit is None:
        decision = "set"
        recommendation = {"kind": "set_credit_limit", "to": target, "from": None}
    elif target > current_limit * (1 + review.tolerance):
        blocked = increase_blocked(state, record, values, now, credit.increases, "limit")
        if blocked is None:
            cap = current_limit * (1 + review.max_increase_share)
            raised = round(min(target, cap) if current_limit > 0 else target, 2)
            if raised < target:
                notes.append(
                    f"raise limited to {review.max_increase_share:.0%} of the current limit"
                )
            decision = "raise"
            recommendation = {"kind": "increase_credit_limit", "from": current_limit, "to": raised}
            record[CLOCKS["limit"]] = now
        else:
            notes.append(f"a raise to {target:,.0f} is not proposed: {blocked}")
    elif target < current_limit * (1 - review.tolerance):
        decision = "lower"
        recommendation = {"kind": "reduce_credit_limit", "from": current_limit, "to": target}
    if decision == "keep" and current_terms is not None and result.terms_days != current_terms:
        if result.terms_days < current_terms:
            decision = "terms_change"
            recommendation = {
                "kind": "shorten_terms",
                "days": result.terms_days,
                "from": current_terms,
            }
        else:
            blocked = increase_blocked(state, record, values, now, credit.increases, "terms")
            if blocked is None:
                decision = "terms_change"
                recommendation = {
                    "kind": "extend_terms",
                    "days": result.terms_days,
                    "from": current_terms,
                }
                record[CLOCKS["terms"]] = now
            else:
                notes.append(f"terms of {result.terms_days} days are not proposed: {blocked}")
    if decision == "keep":
        recommendation.update(credit_limit=current_limit, payment_terms_days=current_terms)
    evidence = {
        "decision": decision,
        "review_due": iso(due),
        "next_review": iso(record["review_due"]),
        **result.evidence(),
        "recommended": {"credit_limit": result.limit, "payment_terms_days": result.terms_days},
        "notes": notes,
    }
    source_id = _source_id("r", state.customer_id, f"{due:.0f}")
    _publish(state, "review", source_id, [recommendation], evidence, occurred_at, ctx, out)


def _earned_increase(
    state: CustomerState,
    record: dict[str, Any],
    values: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    now: float,
    rules: Increases,
    ctx: Any,
    out: Outputs,
) -> None:
    if state.tier not in rules.tiers:
        return  # the cheap test first: most evaluations stop here or below
    utilisation = _num(values, "credit_utilisation")
    if utilisation is None or utilisation < rules.min_utilisation:
        return
    allowed = [
        action
        for action in rules.actions
        if increase_blocked(state, record, values, now, rules, _what(action)) is None
    ]
    if not allowed:
        return
    recommendations = policy.recommend(allowed, state.credit_limit, state.payment_terms_days)
    if not recommendations:
        return
    for item in recommendations:
        record[CLOCKS[_what(item)]] = now
    since = float(record["on_time_since"])
    evidence = {
        "reasons": [
            f"tier {state.tier}",
            f"credit utilisation {utilisation:.0%} (at least {rules.min_utilisation:.0%})",
            f"payments on time for {(now - since) / DAY:.0f} days "
            f"(at least {rules.on_time_for / DAY:g}, tolerance {rules.days_late_tolerance:g} "
            "days late)",
            f"{_num(values, 'payment_count_90d') or 0:.0f} payments in 90 days",
            "no warning of medium or higher active",
            f"no such increase proposed in the last {rules.cooldown / DAY:g} days",
        ],
        "credit_utilisation": round(utilisation, 4),
        "on_time_since": iso(since),
        "grade": record.get("grade"),
    }
    source_id = _source_id("e", state.customer_id, trigger)
    _publish(state, "tier_policy", source_id, recommendations, evidence, occurred_at, ctx, out)


def _what(action: Mapping[str, Any]) -> str:
    return "terms" if action["kind"] == "extend_terms" else "limit"
