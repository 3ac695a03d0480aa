"""Rule evaluation, the warning lifecycle, tiers and credit actions of one evaluation.

:func:`evaluate` is the single seam :mod:`stream_risk.core.step` calls after the
features and the score are up to date. In order, it

1. moves the customer's published tier with hysteresis (:mod:`~stream_risk.core.tiers`)
   from the score's own ``raw_tier``, and publishes a tier change when it moves;
2. evaluates every rule of the active rule set (:mod:`~stream_risk.core.ruleset`)
   against one CEL context of the customer's features, score and tier;
3. advances each rule's lifecycle (:mod:`~stream_risk.core.lifecycle`): critical
   results first, so that a firing critical warning inhibits the lower ones of
   its group in the same evaluation;
4. publishes warnings (firing, escalated, resolved) and, for firings and tier
   changes, credit-policy recommendations (:mod:`~stream_risk.core.policy`).

Firing warnings live in ``state.alerts`` (``rule -> [warning_id, level,
fired_at]``, what the profile lists as active); pending, muted and cooling
episodes in ``state.watch``; the tier's hysteresis in ``state.tier_hold``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream_risk.core import lifecycle, policy, ruleset, tiers
from stream_risk.core.context import Context
from stream_risk.core.ids import content_id
from stream_risk.core.lifecycle import COOLING, FIRING, MUTED, PENDING, RANK, Emit, Episode
from stream_risk.core.outputs import Outputs, iso, warning_id
from stream_risk.core.previous import Evaluated
from stream_risk.core.rulefmt import TEMPLATE
from stream_risk.core.ruleset import Escalation, Rule, RuleResults, RuleSet
from stream_risk.core.state import CustomerState


def evaluate(
    state: CustomerState,
    features: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    ctx: Context,
    out: Outputs,
) -> None:
    """Advance tiers and every rule's lifecycle for one evaluation; append what to publish.

    With an :class:`~stream_risk.core.previous.Evaluated` (the step's evaluations),
    only rules that hold or have an episode are looked at, and a firing warning whose
    rule holds at no higher level is left as it is: its lifecycle cannot move.
    With plain features every rule goes through its lifecycle.
    """
    rules: RuleSet = ctx.rules
    now = state.clock if state.clock is not None else occurred_at
    _tier(state, features, trigger, occurred_at, now, rules, ctx, out)
    tier = state.tier
    results = rules.results(features, tier, state.segment)
    levels = results.levels
    alerts, watch = state.alerts, state.watch
    by_position = rules.rules
    inhibiting: set[str] = set()
    order: Iterable[int]
    if isinstance(features, Evaluated):
        # A rule that does not hold and has no episode has nothing to decide or store.
        if not results.holding and not alerts and not watch:
            return
        order = _moving(results, alerts, watch, now, rules, inhibiting)
        if not order:
            _retire(state, rules, features, occurred_at, ctx, out)
            return
    else:
        order = range(len(by_position))
    # Low rules of one digest group publish one warning per customer and group:
    # the id of the group's open warning before this evaluation, and what changed.
    digests = rules.digests
    open_before = {digests[name]: alert[0] for name, alert in alerts.items() if name in digests}
    changed: dict[str, list[tuple[Rule, tuple[Escalation, ...], Emit]]] = {}
    # Pass 1: what holds at critical (or keeps a critical warning firing) cannot be
    # inhibited and decides which groups inhibit; pass 2: everything else.
    for first_pass in (True, False):
        for n in order:
            rule = by_position[n]
            held = levels[n]
            level = None if held is None else held[0]
            ep = _episode(alerts, watch, rule.name)
            keeps_critical = ep is not None and ep.phase == FIRING and ep.level == "critical"
            critical = level == "critical" or (level is not None and keeps_critical)
            if critical != first_pass:
                continue
            if ep is None and level is None:
                continue  # inactive and still not holding: nothing to decide or store
            opens = level is not None and (ep is None or ep.phase == COOLING)
            new, emit = lifecycle.transition(
                ep,
                level,
                now,
                hold=rule.hold,
                cooldown=rule.cooldown,
                inhibited=rule.group in inhibiting,
                # Only an episode that opens takes a new id.
                new_id=warning_id(state.customer_id, rule.name, trigger) if opens else "",
            )
            _store(alerts, watch, rule.name, new)
            if first_pass and new is not None and new.phase == FIRING and new.level == "critical":
                inhibiting.add(rule.group)
            if emit is None:
                continue
            reached = () if held is None else held[1]
            digest = digests.get(rule.name)
            if digest is not None:
                changed.setdefault(digest, []).append((rule, reached, emit))
            else:
                _publish(state, rule, reached, emit, features, occurred_at, rules, ctx, out)
    for digest, emits in changed.items():
        _publish_digest(
            state, digest, open_before.get(digest), emits, digests, features, occurred_at, ctx, out
        )
    _retire(state, rules, features, occurred_at, ctx, out)


def _moving(
    results: RuleResults,
    alerts: dict[str, list[Any]],
    watch: dict[str, list[Any]],
    now: float,
    rules: RuleSet,
    inhibiting: set[str],
) -> list[int]:
    """Positions of the rules whose lifecycle may move, in rule order.

    Those that hold or have an episode, less a firing warning held at no higher
    level and a watched episode still waiting (:func:`_unmoved`). A critical
    warning left firing inhibits its group: added to ``inhibiting``.
    """
    position, by_position, levels = rules.position, rules.rules, results.levels
    visit = set(results.holding)
    visit.update(position[name] for name in alerts if name in position)
    visit.update(position[name] for name in watch if name in position)
    out: list[int] = []
    for n in sorted(visit):
        rule = by_position[n]
        held = levels[n]
        level = None if held is None else held[0]
        active = alerts.get(rule.name)
        if active is None:
            record = watch.get(rule.name)
            if record is not None and _unmoved(record, level, now, rule.hold):
                continue
        elif level is not None and RANK[level] <= RANK[active[1]]:
            # Firing at this level or above: the lifecycle keeps the warning as is.
            if active[1] == "critical":
                inhibiting.add(rule.group)
            continue
        out.append(n)
    return out


#: The label that merges a low rule's warnings into one warning per customer and group.
DIGEST_LABEL = ruleset.DIGEST_LABEL


def digest_of(rule: Rule) -> str | None:
    """The digest group a rule's warnings are merged into, if any.

    A rule at level ``low`` without escalations and with a ``group`` label does not
    publish warnings of its own: while any rule of that group fires for a customer,
    the customer has one open low warning for the group, re-published with the same
    ``warning_id`` when a rule joins or leaves it, and resolved when the last one
    clears. A watch list, not a stream of alarms: it recommends no credit action.
    """
    return rule.digest_group


#: The phases :func:`lifecycle.due` gives a time for.
_WAITING = frozenset((PENDING, MUTED))


def next_due(state: CustomerState, ctx: Context) -> float | None:
    """The earliest event time at which a lifecycle or the tier may move without new input.

    A pending rule fires when its ``for`` has passed, a muted repeat when its
    cooldown ends, and the tier moves down when the improvement has lasted.
    """
    best: float | None = None
    by_name = ctx.rules.by_name
    for name, record in state.watch.items():
        if not record or record[0] not in _WAITING:
            continue  # cooling: nothing to wait for
        rule = by_name.get(name)
        if rule is None:
            continue
        when = lifecycle.due(Episode.from_list(record), rule.hold)
        if when is not None and (best is None or when < best):
            best = when
    data = state.tier_hold
    if data is not None and (len(data) != 4 or data[2] is not None):  # improving
        when = tiers.next_due(_hold(state), ctx.rules.tiers.down_after)
        if when is not None and (best is None or when < best):
            best = when
    return best


# ------------------------------------------------------------------ state


def _episode(
    alerts: dict[str, list[Any]], watch: dict[str, list[Any]], name: str
) -> Episode | None:
    active = alerts.get(name)
    if active is not None:
        return Episode(FIRING, float(active[2]), active[1], active[0])
    record = watch.get(name)
    return Episode.from_list(record) if record is not None else None


def _store(
    alerts: dict[str, list[Any]], watch: dict[str, list[Any]], name: str, ep: Episode | None
) -> None:
    if ep is not None and ep.phase == FIRING:
        alerts[name] = [ep.warning_id, ep.level, ep.since]
        watch.pop(name, None)
        return
    alerts.pop(name, None)
    if ep is None:
        watch.pop(name, None)
    else:
        watch[name] = ep.to_list()


def _unmoved(record: list[Any], level: str | None, now: float, hold: float) -> bool:
    """Whether :func:`lifecycle.transition` leaves a watched episode as it is and emits
    nothing, told from its record: the rule holds at the episode's level (cooling: does
    not hold) and the time the episode waits for has not come.

    >>> _unmoved(["pending", 100.0, "high", "w", None, None, None], "high", 150.0, hold=60.0)
    True
    >>> _unmoved(["pending", 100.0, "high", "w", None, None, None], "high", 160.0, hold=60.0)
    False
    >>> _unmoved(["cooling", 100.0, "high", "w", 200.0, "high", None], None, 150.0, hold=0.0)
    True
    """
    if len(record) != 7:
        return False
    phase, since, was, _, cool_until, cool_level, muted_by = record
    if phase == COOLING:
        return (
            level is None
            and cool_until is not None
            and cool_until > now
            and cool_level is not None
            and cool_level == was
            and muted_by is None
        )
    if level is None or level != was:
        return False
    if phase == PENDING:
        return bool(now - since < hold)
    return (
        phase == MUTED
        and muted_by == "cooldown"
        and cool_until is not None
        and cool_until > now
        and cool_level is not None
        and RANK[level] <= RANK[cool_level]
    )


def _hold(state: CustomerState) -> tiers.TierHold:
    data = state.tier_hold
    if not data:
        return tiers.TierHold("low")
    if len(data) == 4:
        return tiers.TierHold(str(data[0]), data[1], data[2], data[3])
    tier, since, improving_since, worst = (list(data) + [None] * 4)[:4]
    return tiers.TierHold(str(tier), since, improving_since, worst)


# ------------------------------------------------------------------ tiers


def _tier(
    state: CustomerState,
    features: Mapping[str, Any],
    trigger: str,
    occurred_at: float,
    now: float,
    rules: RuleSet,
    ctx: Context,
    out: Outputs,
) -> None:
    raw = features.get("raw_tier")
    if not isinstance(raw, str):
        raw = state.tier  # as the step set it from the score
    data = state.tier_hold
    if data is not None and len(data) == 4 and data[0] == raw and data[2] is None:
        state.tier = data[0]  # at the held tier, not improving: nothing moves
        return
    held, change = tiers.decide(_hold(state), raw, now, rules.tiers.down_after)
    state.tier_hold = [held.tier, held.since, held.improving_since, held.improving_worst]
    state.tier = held.tier
    if change is None:
        return
    change_id = content_id("t", state.customer_id, change.before, change.after, trigger)
    severe = sorted(
        (rule, alert[1]) for rule, alert in state.alerts.items() if alert[1] in ("high", "critical")
    )
    reasons: list[dict[str, Any]] = [
        {"feature": "risk_score", "value": state.risk_score, "text": change.why},
        {"feature": "raw_tier", "value": raw, "text": f"the score's tier is {raw}"},
    ]
    change_value = features.get("risk_score_change")
    if isinstance(change_value, (int, float)) and change_value:
        reasons.append(
            {
                "feature": "risk_score_change",
                "value": round(float(change_value), 4),
                "text": f"the score changed by {change_value:+.3f} since the previous evaluation",
            }
        )
    reasons += [
        {"feature": "warning", "value": rule, "text": f"{level} warning {rule} is firing"}
        for rule, level in severe
    ]
    when, detected = iso(occurred_at), ctx.detected_at.isoformat()
    out.tier_changes.append(
        {
            "change_id": change_id,
            "customer_id": state.customer_id,
            "before": change.before,
            "after": change.after,
            "direction": change.direction,
            "occurred_at": when,
            "detected_at": detected,
            "risk_score": state.risk_score,
            "reasons": reasons,
            "rules_version": rules.version,
        }
    )
    recommendations = policy.recommend(
        rules.tiers.actions.get(change.after, ()), state.credit_limit, state.payment_terms_days
    )
    if recommendations:
        out.credit_actions.append(
            policy.credit_action(
                customer_id=state.customer_id,
                source="tier_change",
                source_id=change_id,
                level=change.after,
                occurred_at=when,
                detected_at=detected,
                tier=state.tier,
                risk_score=state.risk_score,
                recommendations=recommendations,
                credit_limit=state.credit_limit,
                terms_days=state.payment_terms_days,
                evidence={"before": change.before, "after": change.after, "reasons": reasons},
                rules_version=rules.version,
            )
        )


# ------------------------------------------------------------------ warnings


def _shown(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return round(float(value), 4)
    return value if isinstance(value, str) else None


def _value(name: str, state: CustomerState, features: Mapping[str, Any]) -> Any:
    return state.tier if name == "tier" else features.get(name)


def reasons_of(
    rule: Rule,
    reached: tuple[Escalation, ...],
    state: CustomerState,
    features: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One reason per name the rule (and the escalations reached) read: value, op, threshold."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for condition in (rule.condition, *(step.condition for step in reached)):
        comparisons: dict[str, tuple[str, float | str]] = {}
        for compared, operator, literal in condition.comparisons:
            comparisons.setdefault(compared, (operator, literal))
        for name in condition.variables:
            if name in seen:
                continue
            seen.add(name)
            value = _shown(_value(name, state, features))
            found = comparisons.get(name)
            op: str = found[0] if found else "expr"
            threshold: float | str | None = found[1] if found else None
            if value is None:
                text = f"{name} is not available"
            elif threshold is None:
                text = f"{name} is {value:g}" if isinstance(value, float) else f"{name} is {value}"
                text += f" in {condition.source}"
            else:
                shown = f"{value:g}" if isinstance(value, float) else value
                limit = f"{threshold:g}" if isinstance(threshold, float) else repr(threshold)
                text = f"{name} is {shown} (threshold {op} {limit})"
            out.append(
                {"feature": name, "value": value, "op": op, "threshold": threshold, "text": text}
            )
    return out


def render(template: str, names: Mapping[str, Any]) -> str:
    """Fill ``{{ name }}`` and ``{{ name:format }}`` from ``names``; missing values read n/a."""

    def one(match: Any) -> str:
        value = names.get(match.group(1))
        spec = match.group(2)
        if value is None:
            return "n/a"
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return format(value, spec)
            except ValueError:
                return str(value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return TEMPLATE.sub(one, template)


def _publish(
    state: CustomerState,
    rule: Rule,
    reached: tuple[Escalation, ...],
    emit: Emit,
    features: Mapping[str, Any],
    occurred_at: float,
    rules: RuleSet,
    ctx: Context,
    out: Outputs,
) -> None:
    names: dict[str, Any] = dict(features)
    names.update(
        tier=state.tier,
        customer_id=state.customer_id,
        rule=rule.name,
        level=emit.level,
        group=rule.group,
    )
    reasons = reasons_of(rule, reached, state, features)
    recommendations: list[dict[str, Any]] = []
    if emit.status == "firing":
        actions = [*rule.actions, *(a for step in reached for a in step.actions)]
        recommendations = policy.recommend(actions, state.credit_limit, state.payment_terms_days)
    warning = make_warning(
        state,
        emit.warning_id,
        emit.level,
        emit.status,
        rule.name,
        occurred_at,
        ctx,
        reasons,
        recommendations,
    )
    warning.update(
        group=rule.group,
        labels={k: render(v, names) for k, v in rule.labels.items()},
        annotations={k: render(v, names) for k, v in rule.annotations.items()},
        rules_version=rules.version,
        escalated=emit.escalated,
    )
    out.warnings.append(warning)
    if recommendations:
        out.credit_actions.append(
            policy.credit_action(
                customer_id=state.customer_id,
                source="warning",
                source_id=emit.warning_id,
                level=emit.level,
                occurred_at=warning["occurred_at"],
                detected_at=warning["detected_at"],
                tier=state.tier,
                risk_score=state.risk_score,
                recommendations=recommendations,
                credit_limit=state.credit_limit,
                terms_days=state.payment_terms_days,
                evidence={"reasons": reasons, "annotations": warning["annotations"]},
                rule=rule.name,
                rules_version=rules.version,
            )
        )


def _publish_digest(
    state: CustomerState,
    digest: str,
    open_id: str | None,
    emits: list[tuple[Rule, tuple[Escalation, ...], Emit]],
    digests: Mapping[str, str],
    features: Mapping[str, Any],
    occurred_at: float,
    ctx: Context,
    out: Outputs,
) -> None:
    """One warning for a digest group whose members changed in this evaluation.

    Opened with the id of the first member that fired, kept while any member
    fires (every member's alert carries the group's id), re-published as an
    update when members join or leave, resolved when none is left.
    """
    rules: RuleSet = ctx.rules
    members = [
        rules.by_name[name]
        for name in state.alerts
        if digests.get(name) == digest and name in rules.by_name
    ]
    if not members:
        if open_id is None:
            return  # fired and cleared within one evaluation: nothing was open
        status, wid = "resolved", open_id
        shown = [rule for rule, _, _ in emits]
    else:
        status = "firing"
        wid = open_id if open_id is not None else state.alerts[members[0].name][0]
        for rule in members:
            state.alerts[rule.name][0] = wid
        shown = members
    reasons = [r for rule in shown for r in reasons_of(rule, (), state, features)]
    names: dict[str, Any] = dict(features)
    names.update(tier=state.tier, customer_id=state.customer_id, level="low", group=digest)
    # A watch list recommends no credit action: actions start at medium.
    warning = make_warning(state, wid, "low", status, digest, occurred_at, ctx, reasons, [])
    summaries = [render(rule.annotations.get("summary", rule.name), names) for rule in shown]
    warning.update(
        group=digest,
        labels={DIGEST_LABEL: digest, "rules": ",".join(rule.name for rule in shown)},
        annotations={"summary": "; ".join(summaries)},
        rules_version=rules.version,
        escalated=False,
    )
    out.warnings.append(warning)


def _retire(
    state: CustomerState,
    rules: RuleSet,
    features: Mapping[str, Any],
    occurred_at: float,
    ctx: Context,
    out: Outputs,
) -> None:
    """Resolve firing warnings of rules the active rule set no longer has; forget the rest."""
    names = rules.names()
    if names.issuperset(state.alerts) and names.issuperset(state.watch):
        return
    for name in [n for n in state.alerts if n not in names]:
        wid, level = state.alerts.pop(name)[:2]
        if any(alert[0] == wid for alert in state.alerts.values()):
            continue  # a digest group's warning stays open while other members fire
        warning = make_warning(
            state,
            wid,
            level,
            "resolved",
            name,
            occurred_at,
            ctx,
            [
                {
                    "feature": "rule",
                    "value": name,
                    "op": "expr",
                    "threshold": None,
                    "text": f"rule {name} is not in the active rule set {rules.version}",
                }
            ],
            [],
        )
        warning["rules_version"] = rules.version
        out.warnings.append(warning)
    for name in [n for n in state.watch if n not in names]:
        del state.watch[name]


def make_warning(
    state: CustomerState,
    wid: str,
    level: str,
    status: str,
    rule: str,
    occurred_at: float,
    ctx: Context,
    reasons: list[dict[str, Any]],
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    """A warning as published (EVENTS.md, "Output: warning")."""
    return {
        "warning_id": wid,
        "customer_id": state.customer_id,
        "level": level,
        "status": status,
        "rule": rule,
        "occurred_at": iso(occurred_at),
        "detected_at": ctx.detected_at.isoformat(),
        "reasons": reasons,
        "risk_score": state.risk_score,
        "tier": state.tier,
        "actions": actions,
    }
