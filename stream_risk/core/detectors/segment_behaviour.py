"""Population anomaly detection: HalfSpaceTrees over the behaviour vector, per segment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from stream_risk.core.detectors.base import Explanation

if TYPE_CHECKING:
    from river.anomaly import HalfSpaceTrees

#: The shared segment of every segment beyond the cap.
OTHER = "other"

#: Behaviour inputs and the value that maps to 1.0 (inputs are clipped to [0, 1]).
BEHAVIOUR_SCALE: dict[str, float] = {
    "credit_utilisation": 1.5,
    "days_past_due": 180.0,
    "bounced_payments_90d": 3.0,
    "partial_payment_share_90d": 1.0,
    "broken_promises_90d": 3.0,
    "order_count_30d": 20.0,
    "exposure_growth_30d": 2.0,
    "cancellation_share_90d": 1.0,
    "delinquent_streak": 6.0,
}


def behaviour_vector(features: Mapping[str, Any]) -> dict[str, float]:
    """The features HalfSpaceTrees sees, scaled to [0, 1] (missing counts as 0).

    >>> behaviour_vector({"credit_utilisation": 0.75, "days_past_due": 360})["days_past_due"]
    1.0
    """
    out = {}
    for name, full in BEHAVIOUR_SCALE.items():
        value = features.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out[name] = 0.0
        else:
            out[name] = min(max(float(value) / full, 0.0), 1.0)
    return out


class SegmentBehaviour:
    """One HalfSpaceTrees forest per segment, scoring a customer against its peers.

    Held per worker and shared by all its customers (not written to the
    changelog); :meth:`to_dict` and :meth:`from_dict` (or :meth:`restore`, in
    place) convert it to and from plain JSON data, :meth:`save` and
    :meth:`load` to a local file.
    Scores are ``None`` until a segment's forest has seen ``warm_up``
    customers' updates; a score of ``confirm`` or more is a confirmed anomaly
    and is not learned.

    >>> peers = SegmentBehaviour(warm_up=50, window_size=25, seed=1)
    >>> for i in range(200):
    ...     peers.learn_one("retail", {"credit_utilisation": 0.3 + (i % 5) / 50})
    >>> usual = peers.score_one("retail", {"credit_utilisation": 0.32})
    >>> odd = peers.score_one("retail", {"credit_utilisation": 1.5, "days_past_due": 120})
    >>> odd > usual
    True
    >>> peers.score_one("wholesale", {}) is None
    True

    At most ``max_segments`` segments get a forest of their own (about 1 MB
    each); customers of any further segment share the :data:`OTHER` forest, so
    memory and snapshots stay bounded however many distinct values arrive.

    >>> capped = SegmentBehaviour(max_segments=2)
    >>> for industry in ("retail", "steel", "textiles", "mining"):
    ...     capped.learn_one(industry, {"credit_utilisation": 0.3})
    >>> sorted(capped.forests), capped.bucket("mining"), capped.bucket("retail")
    (['other', 'retail', 'steel'], 'other', 'retail')
    """

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        warm_up: int = 500,
        confirm: float = 0.95,
        seed: int = 42,
        max_segments: int = 200,
    ) -> None:
        if max_segments < 1:
            raise ValueError("max_segments must be at least 1")
        self.max_segments = max_segments
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.warm_up = warm_up
        self.confirm = confirm
        self.seed = seed
        self.forests: dict[str, HalfSpaceTrees] = {}
        self.seen: dict[str, int] = {}

    def _new_forest(self) -> HalfSpaceTrees:
        # Imported when first needed: river's trees pull in SciPy, a second or more of
        # start-up for every command that never scores behaviour.
        from river.anomaly import HalfSpaceTrees

        return HalfSpaceTrees(
            n_trees=self.n_trees,
            height=self.height,
            window_size=self.window_size,
            limits=dict.fromkeys(BEHAVIOUR_SCALE, (0.0, 1.0)),
            seed=self.seed,
        )

    def bucket(self, segment: str) -> str:
        """The forest ``segment`` is scored by: its own, or :data:`OTHER` beyond the cap."""
        if segment in self.forests:
            return segment
        named = len(self.forests) - (OTHER in self.forests)
        return segment if named < self.max_segments else OTHER

    def _forest(self, segment: str) -> HalfSpaceTrees:
        forest = self.forests.get(segment)
        if forest is None:
            forest = self.forests[segment] = self._new_forest()
        return forest

    def score_one(self, segment: str, features: Mapping[str, Any]) -> float | None:
        """Anomaly score in [0, 1] against the segment's peers (``None`` warming up)."""
        segment = self.bucket(segment)
        if self.seen.get(segment, 0) < self.warm_up:
            return None
        forest = self._forest(segment)
        return float(forest.score_one(behaviour_vector(features)))  # type: ignore[no-untyped-call]

    def learn_one(
        self, segment: str, features: Mapping[str, Any], score: float | None = None
    ) -> None:
        """Learn this behaviour unless it is a confirmed anomaly.

        ``score`` is the :meth:`score_one` just computed for the same input, if any
        (scoring costs as much as learning).
        """
        segment = self.bucket(segment)
        if score is None:
            score = self.score_one(segment, features)
        if score is not None and score >= self.confirm:
            return
        self._forest(segment).learn_one(behaviour_vector(features))  # type: ignore[no-untyped-call]
        self.seen[segment] = self.seen.get(segment, 0) + 1

    def explain_one(self, features: Mapping[str, Any], top: int = 3) -> list[Explanation]:
        """The inputs furthest from the usual (scaled value closest to 1)."""
        vector = behaviour_vector(features)
        ranked = sorted(vector.items(), key=lambda item: -item[1])[:top]
        return [
            {
                "feature": name,
                "value": features.get(name),
                "op": "unusual",
                "threshold": None,
                "text": f"{name} at {scaled:.0%} of its scale ({BEHAVIOUR_SCALE[name]:g})",
            }
            for name, scaled in ranked
            if scaled > 0
        ]

    def to_dict(self) -> dict[str, Any]:
        """Every segment's forest as plain JSON data (tree splits and masses)."""
        return {
            "v": 1,
            "seen": dict(self.seen),
            "forests": {
                segment: {
                    "counter": forest.counter,
                    "first_window": forest._first_window,
                    "trees": [_tree_data(tree) for tree in forest.trees],
                }
                for segment, forest in self.forests.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, **params: Any) -> SegmentBehaviour:
        """A detector with ``params`` and the forests in ``data`` (none when ``None``)."""
        detector = cls(**params)
        if data:
            detector.restore(data)
        return detector

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load what :meth:`to_dict` gave (the parameters stay those of this object)."""
        if data.get("v") != 1:
            raise ValueError(f"unsupported behaviour snapshot version {data.get('v')!r}")
        forests = {}
        for segment, saved in data["forests"].items():
            forest = self._new_forest()
            forest.trees = [_tree(node) for node in saved["trees"]]
            forest._tree_nodes = [
                list(tree.iter_dfs())  # type: ignore[no-untyped-call]
                for tree in forest.trees
            ]
            forest.counter = int(saved["counter"])
            forest._first_window = bool(saved["first_window"])
            forests[segment] = forest
        self.forests = forests
        self.seen = {str(k): int(v) for k, v in data["seen"].items()}

    def save(self, path: Path) -> None:
        """Write :meth:`to_dict` to ``path`` atomically (a worker's periodic snapshot)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.to_dict()))
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        """Restore a file written by :meth:`save`; ``False`` when there is none."""
        if not path.exists():
            return False
        self.restore(orjson.loads(path.read_bytes()))
        return True


def _tree_data(node: Any) -> list[Any]:
    from river.tree.padded import PaddedBranch

    if isinstance(node, PaddedBranch):
        return [
            node.feature,
            node.threshold,
            node.l_mass,
            node.r_mass,
            _tree_data(node.left),
            _tree_data(node.right),
        ]
    return [node.l_mass, node.r_mass]


def _tree(data: list[Any]) -> Any:
    from river.tree.padded import PaddedBranch, PaddedLeaf

    if len(data) == 2:
        return PaddedLeaf(l_mass=data[0], r_mass=data[1])  # type: ignore[no-untyped-call]
    feature, threshold, l_mass, r_mass, left, right = data
    return PaddedBranch(  # type: ignore[no-untyped-call]
        left=_tree(left),
        right=_tree(right),
        feature=feature,
        threshold=threshold,
        l_mass=l_mass,
        r_mass=r_mass,
    )
