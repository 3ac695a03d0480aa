"""Rule files: parse YAML rule packs into plain specifications, with every error located.

A rule file is shaped like a Prometheus rule file::

    groups:
      - name: overdue
        cooldown: 7d
        rules:
          - name: overdue_30_days
            expr: days_past_due >= 30
            for: 0d
            level: high
            segments: {industry: [retail], tier: [medium, high]}
            labels: {team: collections}
            annotations:
              summary: "oldest open item is {{ days_past_due }} days past due"
            actions:
              - contact_customer
              - {kind: shorten_terms, days: 15}
            escalate:
              - {level: critical, expr: days_past_due >= 90}
    tiers:
      down_after: 30d
      actions:
        high: [{kind: reduce_credit_limit, to_share: 0.5}, require_prepayment]

Parsing (this module) checks shape, names, levels, durations, actions and
templates; it never compiles an expression. :mod:`stream_risk.core.ruleset`
compiles the expressions and checks what they refer to. Both collect every
error with its file, line, column, group and rule instead of stopping at the
first, so ``stream-risk rules check`` can list them all.

>>> specs, errors = parse_file("groups: [{name: g, rules: [{name: r, expr: 'x > 1', level: hot}]}]",
...                            "pack.yaml")
>>> [str(e) for e in errors]
["pack.yaml:1:60: g/r: level must be one of low, medium, high, critical, got 'hot'"]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from stream_risk.core.units import DAY, HOUR, MINUTE, SECOND, WEEK

# Re-exported: the readers of rule and policy files check levels and tiers against them.
from stream_risk.schemas.outputs import LEVELS as LEVELS
from stream_risk.schemas.outputs import TIERS as TIERS

#: Segment filters a rule may have: customer fields matched against a list of values.
SEGMENT_FIELDS = ("industry", "size", "region", "tier")

#: Action kinds and their parameters: name -> (required one-of, optional).
ACTION_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "reduce_credit_limit": (("to_share", "to_amount"), ("note",)),
    "shorten_terms": (("days",), ("note",)),
    "hold_orders": ((), ("note",)),
    "require_prepayment": ((), ("note",)),
    "contact_customer": ((), ("channel", "note")),
    # Both directions: a low-risk customer may earn more credit (credit_policy.increases).
    "increase_credit_limit": (("by_share", "to_amount"), ("note",)),
    "extend_terms": (("days",), ("note",)),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = (WEEK, DAY, HOUR, MINUTE, SECOND)
#: ``{{ name }}`` or ``{{ name:format }}`` in labels and annotations.
TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([^}]*?))?\s*\}\}")

# -- limits: a rule set anyone can publish must not be able to stall a worker.
#: Longest expression (characters).
MAX_EXPR_CHARS = 1_000
#: Deepest nesting of comprehension macros (``.exists(``, ``.all(``, ...): each level
#: multiplies the work by the length of its list.
MAX_MACRO_NESTING = 2
#: Widest field and longest precision of a template format (``{{ x:>12.2f }}``).
MAX_FORMAT_WIDTH = 64
MAX_FORMAT_PRECISION = 20
#: CEL macros that loop over a list or map.
COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_FORMAT_SPEC = re.compile(
    r"^(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d+))?[A-Za-z%]?$"
)
_MACRO_CALL = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass(frozen=True, slots=True)
class RuleError:
    """One problem in a rule set, located as precisely as the YAML allows (1-based)."""

    file: str
    line: int
    col: int
    group: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.group}/{self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class Where:
    """A position in a rule file."""

    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class EscalationSpec:
    """A higher level a firing rule moves to while ``expr`` also holds."""

    level: str
    expr: str
    expr_at: Where
    actions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as written, validated for shape but not compiled."""

    name: str
    group: str
    expr: str
    expr_at: Where
    level: str
    hold: float = 0.0
    cooldown: float = 0.0
    segments: dict[str, tuple[str, ...]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    actions: tuple[dict[str, Any], ...] = ()
    escalate: tuple[EscalationSpec, ...] = ()
    at: Where = Where("", 0, 0)
    #: Where each template (label or annotation) was written, for compile errors.
    templates_at: dict[str, Where] = field(default_factory=dict)
    #: False when the rule has shape errors: compiled for its expression errors only.
    valid: bool = True


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A named group of rules; inhibition and default cooldowns work per group."""

    name: str
    rules: tuple[RuleSpec, ...]
    at: Where


@dataclass(frozen=True, slots=True)
class TierPolicySpec:
    """Tier hysteresis and the credit-policy actions recommended per tier."""

    down_after: float = 30 * DAY
    actions: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    at: Where | None = None


@dataclass(slots=True)
class FileSpec:
    """What one rule file declares."""

    file: str
    groups: list[GroupSpec] = field(default_factory=list)
    tiers: TierPolicySpec | None = None
    #: The credit policy section (:mod:`stream_risk.core.creditpolicy`), if the file has one.
    credit_policy: Any = None


def parse_duration(text: str) -> float | None:
    """Seconds of a Prometheus-style duration (``90s``, ``15m``, ``1d12h``, ``2w``), else None.

    >>> parse_duration("1d12h"), parse_duration("0"), parse_duration("soon")
    (129600.0, 0.0, None)
    """
    text = text.strip()
    if text == "0":
        return 0.0
    match = _DURATION.match(text)
    if not text or match is None:
        return None
    return float(
        sum(int(v) * unit for v, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if v)
    )


class _Collector:
    """Accumulates errors for one file, remembering the group and rule being read."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[RuleError] = []
        self.group = "-"
        self.rule = "-"
        #: Errors recorded since the current rule began.
        self.rule_errors = 0

    def where(self, node: Node) -> Where:
        return Where(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def error(self, node: Node | None, message: str) -> None:
        self.rule_errors += 1
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.errors.append(RuleError(self.file, line, col, self.group, self.rule, message))


def _items(node: MappingNode) -> Iterator[tuple[str, Node, Node]]:
    for key, value in node.value:
        yield (str(key.value) if isinstance(key, ScalarNode) else "?"), key, value


def _mapping(c: _Collector, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, Node]:
    """The keys of a mapping node; unknown and repeated keys are errors."""
    if not isinstance(node, MappingNode):
        c.error(node, f"{what} must be a mapping")
        return {}
    out: dict[str, Node] = {}
    for name, key, value in _items(node):
        if name in out:
            c.error(key, f"{what}: key {name!r} given twice")
        elif name not in allowed:
            c.error(key, f"{what}: unknown key {name!r} (known: {', '.join(allowed)})")
        else:
            out[name] = value
    return out


_CONSTRUCTOR = SafeConstructor()


def _scalar(node: Node) -> Any:
    """The Python value of a scalar node (YAML 1.1 core types, as safe_load gives them)."""
    if not isinstance(node, ScalarNode):
        return None
    try:
        return _CONSTRUCTOR.construct_object(node, deep=True)
    except yaml.YAMLError:
        return node.value


def _string(c: _Collector, node: Node | None, what: str, required: bool = True) -> str | None:
    if node is None:
        if required:
            c.error(None, f"{what} is required")
        return None
    value = _scalar(node)
    if not isinstance(value, str) or not value.strip():
        c.error(node, f"{what} must be a non-empty string")
        return None
    return value


def _expr(c: _Collector, node: Node | None, what: str) -> str | None:
    """An expression: a non-empty string within :func:`expr_problem`'s limits."""
    value = _string(c, node, what, required=False)
    if value is not None and node is not None and (problem := expr_problem(value)) is not None:
        c.error(node, problem)
        return None
    return value


def _name(c: _Collector, node: Node | None, what: str, parent: Node) -> str | None:
    if node is None:
        c.error(parent, f"{what} is required")
        return None
    value = _scalar(node)
    if not isinstance(value, str) or not _NAME.match(value):
        c.error(node, f"{what} must be snake_case ([a-z][a-z0-9_]*), got {value!r}")
        return None
    return value


def _duration(c: _Collector, node: Node | None, what: str, default: float) -> float:
    if node is None:
        return default
    value = _scalar(node)
    seconds = parse_duration(str(value)) if isinstance(value, (str, int)) else None
    if seconds is None:
        c.error(node, f"{what} must be a duration like 90s, 15m, 12h, 7d or 2w, got {value!r}")
        return default
    return seconds


def _level(c: _Collector, node: Node | None, parent: Node) -> str | None:
    if node is None:
        c.error(parent, "level is required")
        return None
    value = _scalar(node)
    if value not in LEVELS:
        c.error(node, f"level must be one of {', '.join(LEVELS)}, got {value!r}")
        return None
    return str(value)


def macro_nesting(expr: str) -> int:
    """How deeply comprehension macros nest in a CEL expression (string literals skipped).

    >>> macro_nesting("days_past_due >= 30")
    0
    >>> macro_nesting("[1, 2].exists(a, [3].all(b, a < b)) || [4].map(c, c).size() > 0")
    2
    >>> macro_nesting("'x.exists(' == segment_industry")
    0
    """
    stack: list[bool] = []
    deepest = depth = 0
    quote: str | None = None
    i = 0
    while i < len(expr):
        ch = expr[i]
        if quote is not None:
            if ch == "\\":
                i += 1
            elif expr.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif ch in "'\"":
            quote = ch * 3 if expr.startswith(ch * 3, i) else ch
            i += len(quote) - 1
        elif ch == "(":
            match = _MACRO_CALL.search(expr, 0, i)
            macro = match is not None and match.group(1) in COMPREHENSIONS
            stack.append(macro)
            depth += macro
            deepest = max(deepest, depth)
        elif ch == ")" and stack:
            depth -= stack.pop()
        i += 1
    return deepest


def expr_problem(expr: str) -> str | None:
    """Why an expression is beyond the limits (size, macro nesting), else ``None``.

    >>> expr_problem("days_past_due >= 30") is None
    True
    >>> expr_problem("[1].exists(a, [1].exists(b, [1].exists(c, a == b && b == c)))")
    'expr nests comprehension macros 3 deep; at most 2 (each level multiplies the work)'
    """
    if len(expr) > MAX_EXPR_CHARS:
        return f"expr is {len(expr)} characters long; at most {MAX_EXPR_CHARS}"
    nesting = macro_nesting(expr)
    if nesting > MAX_MACRO_NESTING:
        return (
            f"expr nests comprehension macros {nesting} deep; at most {MAX_MACRO_NESTING} "
            "(each level multiplies the work)"
        )
    return None


def format_problem(spec: str) -> str | None:
    """Why a template format is not allowed (too wide, too precise), else ``None``.

    >>> format_problem(".0%") is None, format_problem(">12,.2f") is None
    (True, True)
    >>> format_problem("200000000")
    'width 200000000 is above 64'
    """
    match = _FORMAT_SPEC.match(spec)
    if match is None:
        return None  # format() itself says what is wrong with it
    width, precision = match.group("width"), match.group("precision")
    if width and int(width) > MAX_FORMAT_WIDTH:
        return f"width {int(width)} is above {MAX_FORMAT_WIDTH}"
    if precision and int(precision) > MAX_FORMAT_PRECISION:
        return f"precision {int(precision)} is above {MAX_FORMAT_PRECISION}"
    return None


def _check_template(c: _Collector, node: Node, text: str, what: str) -> None:
    for match in TEMPLATE.finditer(text):
        spec = match.group(2)
        if spec and (problem := format_problem(spec)) is not None:
            c.error(node, f"{what}: format {spec!r} for {match.group(1)}: {problem}")
        elif spec:
            try:
                format(1.5, spec)
            except ValueError as exc:
                c.error(node, f"{what}: bad format {spec!r} for {match.group(1)}: {exc}")
    leftover = TEMPLATE.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        c.error(node, f"{what}: malformed template; write {{{{ name }}}} or {{{{ name:.0% }}}}")


def _string_map(
    c: _Collector, node: Node | None, what: str, templates: dict[str, Where]
) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node, MappingNode):
        c.error(node, f"{what} must be a mapping of names to strings")
        return {}
    out: dict[str, str] = {}
    for name, _, value in _items(node):
        text = _scalar(value)
        if not isinstance(text, (str, int, float)) or isinstance(text, bool):
            c.error(value, f"{what}.{name} must be a string")
            continue
        out[name] = str(text)
        templates[f"{what}.{name}"] = c.where(value)
        _check_template(c, value, out[name], f"{what}.{name}")
    return out


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def parse_actions(c: _Collector, node: Node | None) -> tuple[dict[str, Any], ...]:
    """A list of actions: bare kinds (``hold_orders``) or mappings with ``kind``."""
    if node is None:
        return ()
    if not isinstance(node, SequenceNode):
        c.error(node, "actions must be a list")
        return ()
    out: list[dict[str, Any]] = []
    for item in node.value:
        if isinstance(item, ScalarNode):
            action: dict[str, Any] = {"kind": _scalar(item)}
        elif isinstance(item, MappingNode):
            action = {name: _scalar(value) for name, _, value in _items(item)}
            nested = [name for name, _, value in _items(item) if not isinstance(value, ScalarNode)]
            if nested:
                c.error(item, f"action parameters must be plain values: {', '.join(nested)}")
                continue
        else:
            c.error(item, "an action is a kind (hold_orders) or a mapping with 'kind'")
            continue
        kind = action.get("kind")
        if kind not in ACTION_KINDS:
            c.error(item, f"unknown action {kind!r} (known: {', '.join(ACTION_KINDS)})")
            continue
        one_of, optional = ACTION_KINDS[str(kind)]
        unknown = sorted(set(action) - {"kind", *one_of, *optional})
        if unknown:
            c.error(item, f"{kind}: unknown parameters {unknown}")
            continue
        given = [p for p in one_of if p in action]
        if one_of and len(given) != 1:
            c.error(item, f"{kind} needs exactly one of {', '.join(one_of)}")
            continue
        if kind == "reduce_credit_limit":
            value = action[given[0]]
            if not _positive_number(value) or (given[0] == "to_share" and value >= 1):
                limit = "a share in (0, 1)" if given[0] == "to_share" else "a positive amount"
                c.error(item, f"reduce_credit_limit {given[0]} must be {limit}, got {value!r}")
                continue
        if kind == "increase_credit_limit":
            value = action[given[0]]
            if not _positive_number(value):
                c.error(item, f"increase_credit_limit {given[0]} must be positive, got {value!r}")
                continue
        if kind in ("shorten_terms", "extend_terms"):
            days = action["days"]
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                c.error(item, f"{kind} days must be a whole number >= 0, got {days!r}")
                continue
        out.append(action)
    return tuple(out)


_RULE_KEYS = (
    "name",
    "expr",
    "for",
    "level",
    "cooldown",
    "segments",
    "labels",
    "annotations",
    "actions",
    "escalate",
)


def _segments(c: _Collector, node: Node | None) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    keys = _mapping(c, node, "segments", SEGMENT_FIELDS)
    out: dict[str, tuple[str, ...]] = {}
    for name, value in keys.items():
        values = (
            [_scalar(v) for v in value.value]
            if isinstance(value, SequenceNode)
            else [_scalar(value)]
        )
        if not values or not all(isinstance(v, str) and v for v in values):
            c.error(value, f"segments.{name} must be a string or a list of strings")
            continue
        if name == "tier" and not set(values) <= set(TIERS):
            c.error(value, f"segments.tier values must be among {', '.join(TIERS)}")
            continue
        out[name] = tuple(str(v) for v in values)
    return out


def _escalations(c: _Collector, node: Node | None, level: str | None) -> tuple[EscalationSpec, ...]:
    if node is None:
        return ()
    if not isinstance(node, SequenceNode):
        c.error(node, "escalate must be a list of {level, expr}")
        return ()
    out: list[EscalationSpec] = []
    previous = LEVELS.index(level) if level in LEVELS else -1
    for item in node.value:
        keys = _mapping(c, item, "escalate", ("level", "expr", "actions"))
        if not keys:
            continue
        lvl = _level(c, keys.get("level"), item)
        expr = _expr(c, keys.get("expr"), "escalate.expr") if "expr" in keys else None
        if "expr" not in keys:
            c.error(item, "escalate.expr is required")
        actions = parse_actions(c, keys.get("actions"))
        if lvl is not None and LEVELS.index(lvl) <= previous:
            c.error(keys["level"], "escalation levels must rise above the rule's level, in order")
            continue
        if lvl is None or expr is None:
            continue
        previous = LEVELS.index(lvl)
        out.append(EscalationSpec(lvl, expr, c.where(keys["expr"]), actions))
    return tuple(out)


def _rule(c: _Collector, node: Node, group: str, group_cooldown: float) -> RuleSpec | None:
    c.rule = "-"
    c.rule_errors = 0
    keys = _mapping(c, node, "rule", _RULE_KEYS)
    if not keys and not isinstance(node, MappingNode):
        return None
    name = _name(c, keys.get("name"), "rule name", node)
    if name is not None:
        c.rule = name
    expr = _expr(c, keys.get("expr"), "expr")
    if "expr" not in keys:
        c.error(node, "expr is required")
    level = _level(c, keys.get("level"), node)
    hold = _duration(c, keys.get("for"), "for", 0.0)
    cooldown = _duration(c, keys.get("cooldown"), "cooldown", group_cooldown)
    templates: dict[str, Where] = {}
    labels = _string_map(c, keys.get("labels"), "labels", templates)
    annotations = _string_map(c, keys.get("annotations"), "annotations", templates)
    segments = _segments(c, keys.get("segments"))
    actions = parse_actions(c, keys.get("actions"))
    escalate = _escalations(c, keys.get("escalate"), level)
    if name is None or expr is None:
        return None
    return RuleSpec(
        name=name,
        group=group,
        expr=expr,
        expr_at=c.where(keys["expr"]),
        level=level or "low",
        hold=hold,
        cooldown=cooldown,
        segments=segments,
        labels=labels,
        annotations=annotations,
        actions=actions,
        escalate=escalate,
        at=c.where(node),
        templates_at=templates,
        valid=level is not None and not c.rule_errors,
    )


def _group(c: _Collector, node: Node) -> GroupSpec | None:
    c.group, c.rule = "-", "-"
    keys = _mapping(c, node, "group", ("name", "cooldown", "rules"))
    if not keys:
        return None
    name = _name(c, keys.get("name"), "group name", node)
    if name is not None:
        c.group = name
    cooldown = _duration(c, keys.get("cooldown"), "cooldown", 0.0)
    rules_node = keys.get("rules")
    rules: list[RuleSpec] = []
    if rules_node is None:
        c.error(node, "rules is required")
    elif not isinstance(rules_node, SequenceNode) or not rules_node.value:
        c.error(rules_node, "rules must be a non-empty list")
    else:
        for item in rules_node.value:
            rule = _rule(c, item, name or "-", cooldown)
            if rule is not None:
                rules.append(rule)
        c.rule = "-"
    if name is None:
        return None
    return GroupSpec(name, tuple(rules), c.where(node))


def _tiers(c: _Collector, node: Node) -> TierPolicySpec:
    c.group, c.rule = "tiers", "-"
    keys = _mapping(c, node, "tiers", ("down_after", "actions"))
    down_after = _duration(c, keys.get("down_after"), "down_after", 30 * DAY)
    actions: dict[str, tuple[dict[str, Any], ...]] = {}
    node_actions = keys.get("actions")
    if node_actions is not None:
        for tier, value in _mapping(c, node_actions, "tiers.actions", TIERS).items():
            c.rule = tier
            actions[tier] = parse_actions(c, value)
    c.group, c.rule = "-", "-"
    return TierPolicySpec(down_after, actions, c.where(node))


def parse_file(text: str, file: str) -> tuple[FileSpec, list[RuleError]]:
    """Parse one rule file; return what it declares and every error found in it."""
    c = _Collector(file)
    spec = FileSpec(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc)
        c.errors.append(RuleError(file, line, col, "-", "-", f"not valid YAML: {problem}"))
        return spec, c.errors
    if root is None:
        c.errors.append(RuleError(file, 1, 1, "-", "-", "empty rule file"))
        return spec, c.errors
    keys = _mapping(c, root, "rule file", ("groups", "tiers", "credit_policy"))
    groups = keys.get("groups")
    declared = {"tiers", "credit_policy"} & set(keys)
    if groups is None and not declared and isinstance(root, MappingNode):
        c.error(root, "a rule file needs 'groups' (and may have 'tiers', 'credit_policy')")
    if groups is not None:
        if not isinstance(groups, SequenceNode):
            c.error(groups, "groups must be a list")
        else:
            for node in groups.value:
                group = _group(c, node)
                if group is not None:
                    spec.groups.append(group)
    if "tiers" in keys:
        spec.tiers = _tiers(c, keys["tiers"])
    if "credit_policy" in keys:
        from stream_risk.core import creditpolicy  # it builds on this module's helpers

        spec.credit_policy = creditpolicy.parse(c, keys["credit_policy"])
    return spec, c.errors
