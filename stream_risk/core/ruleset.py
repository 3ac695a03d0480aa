"""Rule sets: compile parsed rule files (CEL expressions) into what the engine evaluates.

Loading is separate from parsing (:mod:`stream_risk.core.rulefmt`): it compiles
every expression once with the CEL library, checks that every name an
expression or template uses is a feature, a score or a customer field, and
type-checks each expression by a trial evaluation (numbers are doubles in
expressions: ``days_past_due >= 30`` works, arithmetic needs ``1.0``). A rule set
with any error is rejected whole: :func:`load_files` returns every error and no
rule set, so a bad rule set is never half-applied.

Evaluation builds one CEL context per customer evaluation holding the
variables the rule set reads (only those that have a value: a rule on a
missing feature does not hold), then runs each compiled program against it.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import hashlib
import importlib.resources
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel

from stream_risk.core import creditpolicy
from stream_risk.core.features import REGISTRY
from stream_risk.core.previous import Evaluated, Reuse
from stream_risk.core.rulefmt import (
    LEVELS,
    TEMPLATE,
    FileSpec,
    RuleError,
    RuleSpec,
    TierPolicySpec,
    Where,
    parse_file,
)
from stream_risk.core.units import DAY

#: Names expressions may use besides the registered features: the score, its
#: change, the learned model's weight in it (0: the cold-start scorecard alone, not
#: yet calibrated on outcomes), the tier straight from the score and the customer's
#: current tier.
SCORE_VARIABLES: dict[str, str] = {
    "risk_score": "number",
    "risk_score_change": "number",
    "risk_score_learned": "number",
    "raw_tier": "label",
    "tier": "label",
    "order_amount_zscore": "number",
    "order_frequency_zscore": "number",
    "days_late_drift": "number",
    "behaviour_anomaly": "number",
}
#: Names templates may use besides variables.
TEMPLATE_NAMES = ("customer_id", "rule", "level", "group")
LEVEL_RANK = {level: n for n, level in enumerate(LEVELS, start=1)}

_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+):\s*(.*)")
_COMPARISON = re.compile(
    r"\b([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\")"
)


def variable_kind(name: str) -> str | None:
    """``number``, ``label`` or ``either`` for a known name, else ``None``."""
    if name in SCORE_VARIABLES:
        return SCORE_VARIABLES[name]
    feature = REGISTRY.get(name)
    if feature is None:
        return None
    if feature.unit == "label":
        return "label"
    if feature.unit.startswith("label or"):
        return "either"
    return "number"


#: The label that merges a low rule's warnings into one warning per customer and group.
DIGEST_LABEL = "group"


def cel_value(value: Any) -> Any:
    """A feature value as CEL sees it: numbers are doubles, labels strings."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled CEL expression and what it reads."""

    source: str
    program: Any
    variables: tuple[str, ...]
    #: (name, op, threshold) of simple comparisons, for warning reasons.
    comparisons: tuple[tuple[str, str, float | str], ...]

    def holds(self, env: Any) -> bool:
        """True only when the expression evaluates to ``true``; errors do not hold."""
        try:
            return self.program.execute(env) is True
        except Exception:  # CEL raises several types for a missing or mistyped value
            return False


@dataclass(frozen=True, slots=True)
class Escalation:
    level: str
    condition: Condition
    actions: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    name: str
    group: str
    level: str
    condition: Condition
    hold: float
    cooldown: float
    segments: dict[str, tuple[str, ...]]
    labels: dict[str, str]
    annotations: dict[str, str]
    actions: tuple[dict[str, Any], ...]
    escalate: tuple[Escalation, ...]
    #: Every name the rule's condition and escalations read, once each.
    reads: tuple[str, ...] = field(init=False, compare=False, repr=False)
    #: Per name of ``reads``: the ``(op, constant)`` comparisons that are the only
    #: use the rule makes of it, or ``None`` when it uses the value otherwise.
    thresholds: tuple[tuple[tuple[str, float | str], ...] | None, ...] = field(
        init=False, compare=False, repr=False
    )
    #: The digest group the rule's warnings are merged into, if any (see
    #: :func:`stream_risk.core.alerting.digest_of`).
    digest_group: str | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        digest = None if self.level != "low" or self.escalate else self.labels.get(DIGEST_LABEL)
        object.__setattr__(self, "digest_group", digest or None)
        names = [
            *self.condition.variables,
            *(v for e in self.escalate for v in e.condition.variables),
        ]
        object.__setattr__(self, "reads", tuple(dict.fromkeys(names)))
        conditions = (self.condition, *(e.condition for e in self.escalate))
        object.__setattr__(
            self,
            "thresholds",
            tuple(_comparisons_only(name, conditions) for name in self.reads),
        )

    def applies_to(self, segment: Mapping[str, Any] | None, tier: str) -> bool:
        """Whether the customer is in the rule's segments (no filter: everyone)."""
        for name, values in self.segments.items():
            value = tier if name == "tier" else (segment or {}).get(name)
            if value not in values:
                return False
        return True

    def level_in(self, env: Any) -> tuple[str, tuple[Escalation, ...]] | None:
        """The level the rule holds at (highest escalation that holds), or ``None``."""
        if not self.condition.holds(env):
            return None
        level, reached = self.level, tuple[Escalation, ...]()
        for step in self.escalate:
            if step.condition.holds(env):
                level, reached = step.level, (*reached, step)
        return level, reached


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """Tier hysteresis and the recommendations per tier."""

    down_after: float = 30 * DAY
    actions: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)


#: The numbers a feature is compared with, sorted: those whose comparison turns as
#: the value reaches them (``>=``, ``<``) and those it turns just above them
#: (``>``, ``<=``); equality belongs to both.
Cuts = tuple[tuple[float, ...], tuple[float, ...]]
_AT_OR_ABOVE = frozenset((">=", "<", "==", "!="))
_ABOVE = frozenset((">", "<=", "==", "!="))

#: What a rule holds at: its level and the escalations reached, or ``None``.
Held = tuple[str, tuple[Escalation, ...]] | None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated, compiled rule set: what a context evaluates."""

    version: str
    digest: str
    #: Rules most severe first (inhibition looks at the critical ones first).
    rules: tuple[Rule, ...]
    tiers: TierPolicy
    #: Every variable an expression reads.
    variables: tuple[str, ...]
    #: The source files, by name (what ``rules publish`` sends).
    files: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    #: The rules by name (derived once: lifecycles look rules up on every evaluation).
    by_name: dict[str, Rule] = field(init=False, compare=False, repr=False)
    #: (rule, the values it reads) -> the level it holds at: a rule is a pure function
    #: of the values it reads, so it is evaluated once per distinct input.
    memo: dict[tuple[str, tuple[Any, ...]], Any] = field(init=False, compare=False, repr=False)
    #: Each rule's position in ``rules``, by name.
    position: dict[str, int] = field(init=False, compare=False, repr=False)
    #: The rules' names.
    rule_names: frozenset[str] = field(init=False, compare=False, repr=False)
    #: Rule name -> the digest group its warnings are merged into (digest rules only).
    digests: dict[str, str] = field(init=False, compare=False, repr=False)
    #: Name read -> positions of the rules that read it.
    readers: dict[str, tuple[int, ...]] = field(init=False, compare=False, repr=False)
    #: Feature read -> the numbers it is compared with (:data:`Cuts`) when every rule
    #: only compares it with numbers, else ``None``: some rule reads the value itself.
    inputs: dict[str, Cuts | None] = field(init=False, compare=False, repr=False)
    #: The features of ``inputs``.
    read: frozenset[str] = field(init=False, compare=False, repr=False)
    #: The customer fields (``tier``, segment fields) some rule's segments filter on.
    scope_names: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        rules = self.rules
        derived: dict[str, Any] = {
            "by_name": {r.name: r for r in rules},
            "memo": {},
            "position": {r.name: n for n, r in enumerate(rules)},
            "rule_names": frozenset(r.name for r in rules),
            "digests": {r.name: r.digest_group for r in rules if r.digest_group is not None},
            "scope_names": tuple(sorted({name for r in rules for name in r.segments})),
        }
        readers: dict[str, list[int]] = {}
        cuts: dict[str, tuple[set[float], set[float]] | None] = {}
        for n, rule in enumerate(rules):
            for name, comparisons in zip(rule.reads, rule.thresholds, strict=True):
                readers.setdefault(name, []).append(n)
                found = cuts.setdefault(name, (set(), set()))
                if found is None or not comparisons:
                    cuts[name] = None
                    continue
                for op, literal in comparisons:
                    if not isinstance(literal, float):
                        cuts[name] = None
                        break
                    if op in _AT_OR_ABOVE:
                        found[0].add(literal)
                    if op in _ABOVE:
                        found[1].add(literal)
        derived["readers"] = {name: tuple(found) for name, found in readers.items()}
        derived["inputs"] = {
            name: None if found is None else (tuple(sorted(found[0])), tuple(sorted(found[1])))
            for name, found in cuts.items()
            if name != "tier"
        }
        derived["read"] = frozenset(derived["inputs"])
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def __iter__(self) -> Any:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def names(self) -> frozenset[str]:
        return self.rule_names

    def level_of(self, rule: Rule, features: Mapping[str, Any], tier: str) -> Held:
        """``rule.level_in`` the CEL context of ``features``, evaluated once per distinct input.

        The context holds only the names the rule reads: its result does not depend on
        any other.
        """
        inputs = self.inputs
        positions = {
            name: position(features.get(name), inputs[name])
            for name in rule.reads
            if name != "tier"
        }
        return self._level_of(rule, features, tier, self.signature(rule, positions, tier))

    def signature(self, rule: Rule, positions: Mapping[str, Any], tier: str) -> tuple[Any, ...]:
        """What ``rule``'s result depends on: per name it reads, its :func:`position`
        among the constants of all the rules (``positions``), and the tier if it reads it.

        Two inputs with the same signature give the same result. A position tells apart
        at least what the rule's own comparisons do (a rule on
        ``days_since_last_payment >= 60`` sees no change from day 10 to day 11), and a
        name the rule uses other than in comparisons is its value.
        """
        return tuple([tier if name == "tier" else positions[name] for name in rule.reads])

    def results(
        self, features: Mapping[str, Any], tier: str, segment: Mapping[str, Any] | None
    ) -> RuleResults:
        """The level every rule holds at in one evaluation (``None``: does not hold or
        does not apply to the customer's segment and tier).

        When ``features`` is an :class:`~stream_risk.core.previous.Evaluated` whose
        previous evaluation computed the results of this rule set, only the rules that
        read a value some rule can tell apart from the previous one are looked at
        again: a feature that did not change, or moved within the same comparisons
        (``days_past_due`` from 10 to 11 against ``>= 30``), touches no rule. The
        results are then the previous evaluation's, updated in place.
        """
        previous = features.previous if isinstance(features, Evaluated) else None
        scope = self.scope_of(segment, tier) if self.scope_names else ()
        if previous is None:
            return self._all(features, tier, segment, scope, None)
        last = previous.rules
        changed = features.changed  # type: ignore[attr-defined]
        if (
            isinstance(last, RuleResults)
            and last.rules is self
            and changed is not None
            and last.seq == previous.seq - 1
            and last.scope == scope
        ):
            self._update(last, features, changed, tier, previous.counts)
            last.seq = previous.seq
            return last
        before = last if isinstance(last, RuleResults) and last.rules is self else None
        fresh = self._all(features, tier, segment, scope, before, previous.counts)
        fresh.seq = previous.seq
        previous.rules = fresh
        return fresh

    def scope_of(self, segment: Mapping[str, Any] | None, tier: str) -> tuple[Any, ...]:
        """The values of the customer fields the rules' segments filter on."""
        if not self.scope_names:
            return ()
        fields = segment or {}
        return tuple(tier if name == "tier" else fields.get(name) for name in self.scope_names)

    def _all(
        self,
        features: Mapping[str, Any],
        tier: str,
        segment: Mapping[str, Any] | None,
        scope: tuple[Any, ...],
        before: RuleResults | None,
        counts: Reuse | None = None,
    ) -> RuleResults:
        """Every rule's result computed afresh (from the memo when an input repeats)."""
        out = RuleResults(self, tier, scope)
        out.applies = tuple(rule.applies_to(segment, tier) for rule in self.rules)
        out.applicable = sum(out.applies)
        out.inputs = {
            name: position(features.get(name), cuts) for name, cuts in self.inputs.items()
        }
        kept = 0
        for n, rule in enumerate(self.rules):
            if not out.applies[n]:
                continue
            signature = self.signature(rule, out.inputs, tier)
            if before is not None and before.signatures[n] == signature:
                kept += 1
            held = self._level_of(rule, features, tier, signature)
            out.signatures[n], out.levels[n] = signature, held
            if held is not None:
                out.holding.add(n)
        if counts is not None:
            counts.rules_kept += kept
            counts.rules_evaluated += out.applicable - kept
        return out

    def _update(
        self,
        last: RuleResults,
        features: Mapping[str, Any],
        changed: set[str],
        tier: str,
        counts: Reuse,
    ) -> None:
        """Bring ``last`` up to date with ``features``, given the names that ``changed``."""
        inputs, buckets, readers = self.inputs, last.inputs, self.readers
        touched: set[int] | None = None
        for name in self.read.intersection(changed):
            now = position(features.get(name), inputs[name])
            if now != buckets[name]:
                buckets[name] = now
                if touched is None:
                    touched = set(readers[name])
                else:
                    touched.update(readers[name])
        if tier != last.tier:
            last.tier = tier
            touched = {*(touched or ()), *readers.get("tier", ())}
        if touched is None:  # the common case: nothing a rule tells apart moved
            counts.rules_kept += last.applicable
            return
        evaluated = 0
        rules, applies, signatures = self.rules, last.applies, last.signatures
        for n in touched:
            if not applies[n]:
                continue
            rule = rules[n]
            signature = self.signature(rule, buckets, tier)
            if signature == signatures[n]:
                continue
            evaluated += 1
            held = self._level_of(rule, features, tier, signature)
            last.levels[n], signatures[n] = held, signature
            if held is None:
                last.holding.discard(n)
            else:
                last.holding.add(n)
        counts.rules_evaluated += evaluated
        counts.rules_kept += last.applicable - evaluated

    def same_levels(
        self,
        last: RuleResults,
        features: Mapping[str, Any],
        moved: Mapping[str, Any],
        tier: str,
    ) -> bool:
        """Whether every rule that reads a name of ``moved`` (name -> its new
        :func:`position`; every other name at its position in ``last``) holds at the
        level it held in ``last``, at ``tier`` and with ``features``.
        """
        positions = {**last.inputs, **moved}
        rules, readers, applies, levels = self.rules, self.readers, last.applies, last.levels
        for n in {n for name in moved for n in readers[name]}:
            if not applies[n]:
                continue
            rule = rules[n]
            signature = self.signature(rule, positions, tier)
            if self._level_of(rule, features, tier, signature) != levels[n]:
                return False
        return True

    def _level_of(
        self, rule: Rule, features: Mapping[str, Any], tier: str, signature: tuple[Any, ...]
    ) -> Held:
        key = (rule.name, signature)
        memo = self.memo
        if key in memo:
            held: Held = memo[key]
            return held
        values: dict[str, Any] = {}
        for name in rule.reads:
            value = tier if name == "tier" else cel_value(features.get(name))
            if value is not None:
                values[name] = value
        held = rule.level_in(cel.Context(values))
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = held
        return held

    def environment(self, features: Mapping[str, Any], tier: str) -> Any:
        """The CEL context of one evaluation: the rule set's variables that have a value."""
        values: dict[str, Any] = {}
        for name in self.variables:
            value = tier if name == "tier" else cel_value(features.get(name))
            if value is not None:
                values[name] = value
        return cel.Context(values)


#: Distinct (rule, inputs) results remembered before the memo starts over.
MEMO_SIZE = 16_384


class RuleResults:
    """The level each rule of a rule set held at in one customer's evaluation.

    Kept as the customer's :attr:`~stream_risk.core.previous.PreviousEvaluation.rules`
    and updated in place by :meth:`RuleSet.results`; indexed by rule position.
    """

    __slots__ = (
        "applicable",
        "applies",
        "holding",
        "inputs",
        "levels",
        "rules",
        "scope",
        "seq",
        "signatures",
        "tier",
    )

    def __init__(self, rules: RuleSet, tier: str, scope: tuple[Any, ...]) -> None:
        count = len(rules.rules)
        self.rules = rules
        #: The evaluation (``PreviousEvaluation.seq``) the results are those of.
        self.seq = -1
        self.tier = tier
        #: ``RuleSet.scope_of`` the customer, and whether each rule applies in it.
        self.scope = scope
        self.applies: tuple[bool, ...] = (True,) * count
        #: How many rules apply.
        self.applicable = count
        #: Per feature read: its :func:`position` among ``RuleSet.inputs``.
        self.inputs: dict[str, Any] = {}
        self.signatures: list[tuple[Any, ...] | None] = [None] * count
        self.levels: list[Held] = [None] * count
        #: Positions of the rules that hold (level not ``None``).
        self.holding: set[int] = set()


def position(value: Any, cuts: Cuts | None) -> Any:
    """What rules that compare a value only with the numbers of ``cuts`` can tell of it:
    for a number, which of them it is at or above and which it is above (one integer),
    else the value as CEL sees it (:func:`cel_value`).

    >>> cuts = ((30.0, 60.0), ())  # days_past_due >= 30, days_past_due >= 60
    >>> position(10.0, cuts), position(30, cuts), position(45.0, cuts), position(60.0, cuts)
    (0, 1, 1, 2)
    >>> position(True, cuts), position("x", cuts), position(5, None), position(math.inf, cuts)
    (('bool', True), 'x', 5.0, None)
    """
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None
    elif kind is int:
        value = float(value)
    elif value is None:
        return None
    else:
        value = cel_value(value)
        if type(value) is not float:
            # Booleans equal 1.0 and 0.0 as keys: keep their type apart.
            return ("bool", value) if type(value) is bool else value
    if cuts is None:
        return value
    at_or_above, above = cuts
    return bisect.bisect_right(at_or_above, value) * (len(above) + 1) + bisect.bisect_left(
        above, value
    )


#: What may stand right before a compared name and right after its constant for the
#: comparison to be a whole operand of ``&&``, ``||``, ``?:`` or parentheses
#: (``2.0 * x >= 60`` or ``x >= 60 + y`` compare something else).
_BEFORE_OK = frozenset("(&|?:,")
_AFTER_OK = frozenset(")&|?:,")


def _comparisons_only(
    name: str, conditions: tuple[Condition, ...]
) -> tuple[tuple[str, float | str], ...] | None:
    """The comparisons with constants that are every use ``conditions`` make of ``name``.

    >>> c = Condition("x >= 60 && (y < 2.0 * x)", None, ("x", "y"), ())
    >>> _comparisons_only("x", (c,)) is None  # x is also multiplied
    True
    >>> d = Condition("x >= 60 && y != 'a' || x < 5", None, ("x", "y"), ())
    >>> _comparisons_only("x", (d,)), _comparisons_only("y", (d,))
    ((('>=', 60.0), ('<', 5.0)), (('!=', 'a'),))
    """
    found: list[tuple[str, float | str]] = []
    uses = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    for condition in conditions:
        source = condition.source
        if not uses.search(source):
            continue
        matched = 0
        for m in _COMPARISON.finditer(source):
            if m.group(1) != name:
                continue
            before = source[: m.start()].rstrip()[-1:]
            after = source[m.end() :].lstrip()[:1]
            if (before and before not in _BEFORE_OK) or (after and after not in _AFTER_OK):
                return None
            matched += 1
            found.append((m.group(2), _literal(m.group(3))))
        if matched != len(uses.findall(source)):
            return None
    return tuple(dict.fromkeys(found)) if found else None


def digest_of(files: Mapping[str, str]) -> str:
    """Content digest of a rule set's files (names and texts)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()


def _cel_error(message: str, where: Where, source: str) -> tuple[int, int, str]:
    """Map a CEL parse error onto the rule file: line, column, message."""
    first = message.splitlines()[0] if message else "cannot compile"
    match = _CEL_POSITION.search(message)
    if match is None:
        return where.line, where.col, f"expr does not compile: {first}"
    line, col, text = int(match.group(1)), int(match.group(2)), match.group(3)
    text = text.split("\n")[0]
    if line == 1 and "\n" not in source:
        return where.line, where.col + col - 1, f"expr does not compile: {text}"
    return where.line, where.col, f"expr does not compile at {line}:{col + 1}: {text}"


def _trial_values(variables: Iterable[str], either_as: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in variables:
        kind = variable_kind(name)
        if kind == "label" or (kind == "either" and either_as == "label"):
            out[name] = "x"
        else:
            out[name] = 1.0
    return out


class _Compiler:
    def __init__(self) -> None:
        self.errors: list[RuleError] = []

    def error(self, where: Where, rule: RuleSpec, message: str, col: int | None = None) -> None:
        self.errors.append(
            RuleError(
                where.file,
                where.line,
                where.col if col is None else col,
                rule.group,
                rule.name,
                message,
            )
        )

    def condition(self, source: str, where: Where, rule: RuleSpec) -> Condition | None:
        try:
            program = cel.compile(source)
        except Exception as exc:  # the library raises ValueError and others
            line, col, message = _cel_error(str(exc), where, source)
            self.errors.append(RuleError(where.file, line, col, rule.group, rule.name, message))
            return None
        names = tuple(program.variables())
        unknown = [n for n in names if variable_kind(n) is None]
        for name in unknown:
            close = difflib.get_close_matches(name, [*REGISTRY, *SCORE_VARIABLES], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.error(
                where,
                rule,
                f"unknown name {name!r}: not a feature, score or customer field "
                f"(stream-risk features lists them){hint}",
            )
        if unknown:
            return None
        problem = self._trial(program, names)
        if problem is not None:
            self.error(where, rule, problem)
            return None
        comparisons = tuple(
            (m.group(1), m.group(2), _literal(m.group(3)))
            for m in _COMPARISON.finditer(source)
            if m.group(1) in names
        )
        return Condition(source, program, names, comparisons)

    @staticmethod
    def _trial(program: Any, names: tuple[str, ...]) -> str | None:
        """A type check by evaluation: every name bound to a value of its kind."""
        either = any(variable_kind(n) == "either" for n in names)
        attempts = ("label", "number") if either else ("",)
        problem = None
        for either_as in attempts:
            try:
                result = program.execute(_trial_values(names, either_as))
            except Exception as exc:  # no such overload, division by zero, ...
                first = str(exc).split(". ")[0]
                problem = (
                    f"expr does not type-check: {first} (numbers are doubles: "
                    "write 1.0, not 1, in arithmetic)"
                )
                continue
            if not isinstance(result, bool):
                return f"expr must be a condition (true or false), got {type(result).__name__}"
            return None
        return problem

    def templates(self, rule: RuleSpec, names: set[str]) -> None:
        for key, text in [
            *((f"labels.{k}", v) for k, v in rule.labels.items()),
            *((f"annotations.{k}", v) for k, v in rule.annotations.items()),
        ]:
            where = rule.templates_at.get(key, rule.at)
            for match in TEMPLATE.finditer(text):
                name = match.group(1)
                if name not in names and name not in TEMPLATE_NAMES:
                    self.error(where, rule, f"{key}: unknown name {name!r} in template")

    def rule(self, spec: RuleSpec) -> Rule | None:
        condition = self.condition(spec.expr, spec.expr_at, spec)
        escalate: list[Escalation] = []
        for step in spec.escalate:
            esc = self.condition(step.expr, step.expr_at, spec)
            if esc is not None:
                escalate.append(Escalation(step.level, esc, step.actions))
        self.templates(spec, {*REGISTRY, *SCORE_VARIABLES})
        if condition is None or len(escalate) != len(spec.escalate):
            return None
        return Rule(
            name=spec.name,
            group=spec.group,
            level=spec.level,
            condition=condition,
            hold=spec.hold,
            cooldown=spec.cooldown,
            segments=dict(spec.segments),
            labels=dict(spec.labels),
            annotations=dict(spec.annotations),
            actions=spec.actions,
            escalate=tuple(escalate),
        )


def _literal(text: str) -> float | str:
    if text[:1] in "'\"":
        return text[1:-1]
    return float(text)


def compile_specs(
    specs: list[FileSpec], files: Mapping[str, str], version: str
) -> tuple[RuleSet | None, list[RuleError]]:
    """Compile parsed files into one rule set; every error, or a rule set and none."""
    c = _Compiler()
    rules: list[Rule] = []
    seen_rules: dict[str, Where] = {}
    seen_groups: dict[str, Where] = {}
    tiers: TierPolicySpec | None = None
    for spec in specs:
        if spec.tiers is not None:
            if tiers is not None and tiers.at is not None and spec.tiers.at is not None:
                at = spec.tiers.at
                c.errors.append(
                    RuleError(
                        at.file,
                        at.line,
                        at.col,
                        "tiers",
                        "-",
                        f"tiers is already defined in {tiers.at.file}:{tiers.at.line}",
                    )
                )
            else:
                tiers = spec.tiers
        for group in spec.groups:
            if group.name in seen_groups:
                first = seen_groups[group.name]
                c.errors.append(
                    RuleError(
                        group.at.file,
                        group.at.line,
                        group.at.col,
                        group.name,
                        "-",
                        f"group {group.name!r} is already defined at {first.file}:{first.line}",
                    )
                )
            seen_groups.setdefault(group.name, group.at)
            for rule_spec in group.rules:
                duplicate = rule_spec.name in seen_rules
                if duplicate:
                    first = seen_rules[rule_spec.name]
                    c.error(
                        rule_spec.at,
                        rule_spec,
                        f"rule name {rule_spec.name!r} is already used at "
                        f"{first.file}:{first.line} (names are unique in a rule set)",
                    )
                seen_rules.setdefault(rule_spec.name, rule_spec.at)
                # Compiled even when it cannot be used, so its expression errors show too.
                rule = c.rule(rule_spec)
                if rule is not None and rule_spec.valid and not duplicate:
                    rules.append(rule)
    if not seen_rules and not c.errors:
        c.errors.append(RuleError("-", 1, 1, "-", "-", "the rule set has no rules"))
    if c.errors:
        return None, sorted(c.errors, key=lambda e: (e.file, e.line, e.col))
    variables: set[str] = {"tier"} if any("tier" in r.segments for r in rules) else set()
    for rule in rules:
        variables.update(rule.condition.variables)
        for step in rule.escalate:
            variables.update(step.condition.variables)
    ordered = tuple(
        sorted(rules, key=lambda r: -max(LEVEL_RANK[s] for s in (r.level, *_levels(r))))
    )
    policy = (
        TierPolicy(tiers.down_after, dict(tiers.actions)) if tiers is not None else TierPolicy()
    )
    return (
        RuleSet(version, digest_of(files), ordered, policy, tuple(sorted(variables)), dict(files)),
        [],
    )


def _levels(rule: Rule) -> tuple[str, ...]:
    return tuple(step.level for step in rule.escalate)


def load_files(
    files: Mapping[str, str], version: str | None = None
) -> tuple[RuleSet | None, list[RuleError]]:
    """Parse and compile a rule set given as ``{file name: YAML text}``.

    ``version`` defaults to ``local-`` and the first 12 digits of the content digest.
    """
    specs: list[FileSpec] = []
    errors: list[RuleError] = []
    for name in sorted(files):
        spec, file_errors = parse_file(files[name], name)
        specs.append(spec)
        errors += file_errors
    errors += creditpolicy.conflicts(specs)
    if not files:
        errors.append(RuleError("-", 1, 1, "-", "-", "no rule files (*.yaml, *.yml)"))
    if errors:
        # Compile anyway: expression errors are reported together with shape errors.
        _, more = compile_specs(specs, files, "")
        errors += [e for e in more if e.message != "the rule set has no rules"]
        return None, sorted(errors, key=lambda e: (e.file, e.line, e.col))
    return compile_specs(specs, files, version or f"local-{digest_of(files)[:12]}")


def read_dir(path: Path) -> dict[str, str]:
    """The rule files of a directory (``*.yaml``, ``*.yml``), by path as given."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    return {
        str(p): p.read_text(encoding="utf-8")
        for p in sorted(path.iterdir())
        if p.suffix in (".yaml", ".yml") and p.is_file()
    }


def load_dir(path: Path, version: str | None = None) -> tuple[RuleSet | None, list[RuleError]]:
    """Parse and compile every rule file in ``path``."""
    return load_files(read_dir(path), version)


def default_files() -> dict[str, str]:
    """The default rule pack shipped with the engine, by file name."""
    package = importlib.resources.files("stream_risk.rules")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith((".yaml", ".yml"))
    }


@functools.cache
def default_rules() -> RuleSet:
    """The compiled default rule pack (compiled once per process)."""
    files = default_files()
    rules, errors = load_files(files, f"default-{digest_of(files)[:12]}")
    if rules is None:  # pragma: no cover - the shipped pack is tested
        raise RuntimeError("the default rule pack is invalid:\n" + "\n".join(map(str, errors)))
    return rules
