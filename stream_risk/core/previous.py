"""What a customer's previous evaluation saw and decided, kept beside its state.

An evaluation recomputes only what its inputs moved: a rule none of whose
inputs changed keeps its previous result, the score and the segment detector
are not re-run on unchanged inputs, and unchanged model inputs are not
reformatted. What the previous evaluation saw lives in an
:class:`EvaluationMemory` held by the context, never in the encoded state: it
is a cache. Every reuse compares values, not flags, so a memory that is lost
(evicted, a restarted worker) or that saw an evaluation whose state was later
undone only costs a full evaluation, never a different answer.

>>> memory = EvaluationMemory(capacity=2)
>>> first = memory.of("c-1")
>>> sorted(first.changed({"a": 1.0, "b": None}) or ["(everything)"])
['(everything)']
>>> first.remember({"a": 1.0, "b": None})
>>> sorted(first.changed({"a": 2.0, "b": None}))
['a']
>>> _ = memory.of("c-2"), memory.of("c-3")  # c-1 is the least recently used
>>> memory.of("c-1").values is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MISSING = object()


class PreviousEvaluation:
    """One customer's previous evaluation: its values and the results derived from them."""

    __slots__ = (
        "counts",
        "groups",
        "names",
        "peer",
        "peer_key",
        "rules",
        "score",
        "score_key",
        "seq",
        "values",
        "view",
    )

    def __init__(self, counts: Reuse | None = None) -> None:
        #: Where reuse is counted (shared by a memory's customers).
        self.counts = counts if counts is not None else Reuse()
        #: Evaluations of this customer so far (what a rule result was last confirmed at).
        self.seq = 0
        #: Feature names and values of the previous evaluation, score included.
        self.names: tuple[str, ...] | None = None
        self.values: tuple[Any, ...] | None = None
        #: What reusable feature groups computed (see :func:`stream_risk.core.features.compute`).
        self.groups: dict[str, Any] = {}
        #: The rule set's results (a :class:`stream_risk.core.ruleset.RuleResults`, updated
        #: in place from one evaluation to the next), or ``None``.
        self.rules: Any = None
        #: The segment detector's score, and what it was computed for.
        self.peer: float | None = None
        self.peer_key: tuple[Any, ...] | None = None
        #: The risk score and the learned model's weight in it, and the scorer and
        #: seasoning they were computed with.
        self.score: tuple[float, float] | None = None
        self.score_key: tuple[Any, ...] | None = None
        #: The rule set, what the tier and the credit policy saw, and where the
        #: customer's history stood (a wake-up that would see the same, and leave every
        #: rule's inputs where they were, is not evaluated).
        self.view: tuple[Any, tuple[Any, ...], tuple[Any, ...]] | None = None

    def changed(self, features: Mapping[str, Any]) -> set[str] | None:
        """Names whose value differs from the previous evaluation; ``None``: no previous one."""
        names, values = self.names, self.values
        if names is None or values is None:
            return None
        out: set[str] = set()
        # Every evaluation computes the same names in the same order (the score's
        # last): compare side by side, by name only when the names differ.
        if names[: len(features)] == tuple(features):
            for (name, value), old in zip(features.items(), values, strict=False):
                # ``1.0 == True``: a value of another type is a change too.
                if old is not value and (old != value or type(old) is not type(value)):
                    out.add(name)
            return out
        before = dict(zip(names, values, strict=True))
        for name, value in features.items():
            old = before.get(name, _MISSING)
            if old is not value and (old != value or type(old) is not type(value)):
                out.add(name)
        return out

    def remember(self, features: Mapping[str, Any]) -> None:
        """Keep ``features`` as what this evaluation saw."""
        names = tuple(features)
        # Every evaluation computes the same names: share one tuple of them.
        self.names = self.names if self.names == names else names
        self.values = tuple(features.values())


class Reuse:
    """How often a part of an evaluation was redone, and how often kept.

    >>> r = Reuse()
    >>> r.rules_kept, r.rules_evaluated = 3, 1
    >>> r.lines()[0]
    'rules: 1 of 4 rule checks evaluated (75% kept from the previous evaluation)'
    """

    __slots__ = (
        "peers_kept",
        "peers_scored",
        "rules_evaluated",
        "rules_kept",
        "scores_computed",
        "scores_kept",
        "wakeups_looked",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Count from zero again."""
        self.rules_evaluated = self.rules_kept = 0
        self.scores_computed = self.scores_kept = 0
        self.peers_scored = self.peers_kept = 0
        self.wakeups_looked = 0

    def lines(self) -> list[str]:
        """One line per part: how many were redone, and the share kept."""
        out = []
        for what, done, kept in (
            ("rules", self.rules_evaluated, self.rules_kept),
            ("risk score", self.scores_computed, self.scores_kept),
            ("segment detector", self.peers_scored, self.peers_kept),
        ):
            total = done + kept
            share = kept / total if total else 0.0
            unit = "rule checks" if what == "rules" else "evaluations"
            out.append(
                f"{what}: {done} of {total} {unit} evaluated "
                f"({share:.0%} kept from the previous evaluation)"
            )
        return out


class EvaluationMemory:
    """The previous evaluation of at most ``capacity`` recently evaluated customers.

    About 8 KB per customer with the default pack: the default keeps a worker's
    busiest customers within about 130 MB; a replay keeps every customer of its stream.
    """

    __slots__ = ("_by_customer", "capacity", "counts")

    def __init__(self, capacity: int = 16_384) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._by_customer: dict[str, PreviousEvaluation] = {}
        #: What the evaluations of this memory's customers redid and kept.
        self.counts = Reuse()

    def of(self, customer_id: str) -> PreviousEvaluation:
        """The customer's previous evaluation (an empty one if none is remembered)."""
        by_customer = self._by_customer
        found = by_customer.pop(customer_id, None)
        if found is None:
            found = PreviousEvaluation(self.counts)
            if len(by_customer) >= self.capacity:
                del by_customer[next(iter(by_customer))]
        by_customer[customer_id] = found  # most recently used last
        return found

    def clear(self) -> None:
        self._by_customer.clear()

    def __len__(self) -> int:
        return len(self._by_customer)


class Evaluated(dict[str, Any]):
    """The features of one evaluation, with what changed since the previous one.

    Rule evaluation (:meth:`stream_risk.core.ruleset.RuleSet.results`) reuses the
    previous result of a rule none of whose inputs is in ``changed``.
    """

    __slots__ = ("changed", "previous")

    def __init__(
        self,
        values: Mapping[str, Any],
        previous: PreviousEvaluation,
        changed: set[str] | None,
    ) -> None:
        super().__init__(values)
        self.previous = previous
        self.changed = changed
