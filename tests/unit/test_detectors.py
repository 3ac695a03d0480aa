"""Online detectors: warm-up, score before learn, confirmed anomalies, state round trips."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream_risk.core.detectors import DaysLateShift, RobustZScore, SegmentBehaviour


@pytest.mark.parametrize(
    ("history", "x", "expected"),
    [
        ([], 100.0, None),  # warming up
        ([100.0] * 4, 100.0, None),  # still warming up (5 needed)
        ([100.0] * 5, 100.0, 0.0),
        ([100.0] * 5, 105.0, 1.0),  # flat history: spread floor of 5 % of the median
        ([90.0, 100.0, 110.0, 100.0, 100.0], 100.0, 0.0),
        ([90.0, 100.0, 110.0, 100.0, 100.0], 70.0, -6.0),
    ],
)
def test_robust_zscore_table(history: list[float], x: float, expected: float | None) -> None:
    detector = RobustZScore(values=history)
    score = detector.score_one(x)
    assert score == (None if expected is None else pytest.approx(expected))


def test_one_outlier_does_not_hide_the_next() -> None:
    detector = RobustZScore(values=[100.0, 102.0, 98.0, 101.0, 99.0, 5_000.0])
    score = detector.score_one(4_000.0)
    assert score is not None and score > 6


def test_confirmed_anomalies_are_not_learned_and_the_window_is_bounded() -> None:
    detector = RobustZScore(window=6, values=[100.0, 101.0, 99.0, 100.0, 102.0])
    detector.learn_one(10_000.0)
    assert 10_000.0 not in detector.values
    for _ in range(20):
        detector.learn_one(100.0)
    assert len(detector.values) == 6


def test_robust_zscore_state_round_trips_through_json() -> None:
    detector = RobustZScore(values=[1.0, 2.0, 3.0, 4.0, 5.0])
    again = RobustZScore.from_dict(orjson.loads(orjson.dumps(detector.to_dict())))
    assert again.score_one(9.0) == detector.score_one(9.0)
    reason = again.explain_one(9.0, "order_amount", 3.0)
    assert reason["feature"] == "order_amount" and "robust standard deviations" in reason["text"]


def test_days_late_shift_flags_a_sustained_rise_and_not_a_steady_payer() -> None:
    steady = DaysLateShift()
    rising = DaysLateShift()
    flags_steady = []
    flags_rising = []
    for month in range(12):
        flags_steady.append(steady.score_one(0.0))
        steady.learn_one(0.0)
        late = 0.0 if month < 6 else 60.0
        flags_rising.append(rising.score_one(late))
        rising.learn_one(late)
    assert flags_steady[:2] == [None, None]
    assert 1.0 not in flags_steady
    assert 1.0 in flags_rising[6:]


def test_days_late_shift_state_round_trips_through_json() -> None:
    detector = DaysLateShift()
    for late in (0.0, 5.0, 0.0, 30.0):
        detector.learn_one(late)
    again = DaysLateShift(state=orjson.loads(orjson.dumps(detector.to_dict())))
    for late in (60.0, 0.0, 90.0):
        assert again.score_one(late) == detector.score_one(late)
        again.learn_one(late)
        detector.learn_one(late)
    assert again.to_dict() == detector.to_dict()


def test_days_late_shift_detects_what_rivers_page_hinkley_detects() -> None:
    from river.drift import PageHinkley

    rng = random.Random(3)
    ours = DaysLateShift()
    river_ph = PageHinkley(min_instances=3, delta=5.0, threshold=45.0, mode="up")
    for _ in range(400):  # long enough to detect shifts and restart after them
        late = rng.choice([0.0, 0.0, 5.0, 30.0, 60.0, 120.0])
        ours.learn_one(late)
        river_ph.update(late)
        assert ours._detector.drift_detected == river_ph.drift_detected
        assert ours._detector._sum_increase == river_ph._sum_increase


def test_a_dropped_days_late_shift_is_freed_without_the_cyclic_collector() -> None:
    """One is rebuilt from the customer's state for every days-late observation: a
    reference cycle in each would pile up until a collection walks them all."""
    import gc
    import weakref

    enabled = gc.isenabled()
    gc.disable()
    try:
        shift = DaysLateShift()
        for late in (0.0, 0.0, 0.0, 90.0, 90.0, 90.0):  # detects, then restarts
            assert shift.score_one(late) in (None, 0.0, 1.0)
            shift.learn_one(late)
        detector = weakref.ref(shift._detector)
        del shift
        assert detector() is None
    finally:
        if enabled:
            gc.enable()


def _peers(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [
        {"credit_utilisation": rng.uniform(0.2, 0.6), "order_count_30d": rng.randint(2, 6)}
        for _ in range(n)
    ]


def test_segment_behaviour_warms_up_per_segment_and_ranks_the_unusual_higher() -> None:
    peers = SegmentBehaviour(warm_up=300, window_size=100)
    assert peers.score_one("retail", {}) is None
    for x in _peers(400, 1):
        peers.learn_one("retail", x)
    usual = [peers.score_one("retail", x) for x in _peers(50, 2)]
    odd = peers.score_one(
        "retail", {"credit_utilisation": 1.5, "days_past_due": 150, "bounced_payments_90d": 3}
    )
    assert odd is not None and all(u is not None and odd > u for u in usual)
    assert peers.score_one("wholesale", {"credit_utilisation": 0.3}) is None
    reasons = peers.explain_one({"credit_utilisation": 1.5, "days_past_due": 150})
    assert [r["feature"] for r in reasons][:2] == ["credit_utilisation", "days_past_due"]


def test_segment_behaviour_snapshot_restores_the_same_scores(tmp_path: Path) -> None:
    peers = SegmentBehaviour(warm_up=50, window_size=40)
    for x in _peers(120, 3):
        peers.learn_one("retail", x)
    path = tmp_path / "behaviour.json"
    peers.save(path)
    again = SegmentBehaviour(warm_up=50, window_size=40)
    assert again.load(path) and not SegmentBehaviour().load(tmp_path / "missing.json")
    for x in _peers(30, 4):
        assert again.score_one("retail", x) == peers.score_one("retail", x)
        again.learn_one("retail", x)
        peers.learn_one("retail", x)
    assert again.to_dict() == peers.to_dict()


# The state each detector wrote before they shared one to_dict/from_dict shape:
# stored customer states and worker snapshots must keep loading.
OLD_ROBUST_ZSCORE = {"values": [100.0, 110.0, 90.0, 105.0, 95.0]}
OLD_DAYS_LATE_SHIFT = {
    "n": 4.0,
    "mean": 1.25,
    "drift": False,
    "sum_increase": -16.247000199995,
    "sum_decrease": 23.747000199995,
    "min_increase": -16.247000199995,
    "max_decrease": 23.747000199995,
}


def test_every_detector_reads_the_state_older_versions_wrote() -> None:
    amounts = RobustZScore.from_dict(OLD_ROBUST_ZSCORE)
    assert amounts.to_dict() == OLD_ROBUST_ZSCORE
    assert amounts.score_one(100.0) == 0.0
    shift = DaysLateShift.from_dict(OLD_DAYS_LATE_SHIFT)
    assert shift.to_dict() == OLD_DAYS_LATE_SHIFT
    assert shift.seen == 4 and shift.score_one(90.0) == 1.0
    peers = SegmentBehaviour(warm_up=1, window_size=5, seed=1)
    for i in range(20):
        peers.learn_one("retail", {"credit_utilisation": 0.3 + (i % 5) / 50})
    # The file a worker saved: a v1 snapshot read by from_dict and by restore alike.
    saved = orjson.loads(orjson.dumps(peers.to_dict()))
    again = SegmentBehaviour.from_dict(saved, warm_up=1, window_size=5, seed=1)
    probe = {"credit_utilisation": 0.9, "days_past_due": 30}
    assert again.score_one("retail", probe) == peers.score_one("retail", probe)
    assert again.to_dict() == saved


def test_a_detector_without_state_is_new() -> None:
    assert RobustZScore.from_dict(None, warm_up=3).warm_up == 3
    assert DaysLateShift.from_dict(None).seen == 0
    assert SegmentBehaviour.from_dict(None, max_segments=2).forests == {}


def test_import_river_loads_the_libraries_the_first_event_would_wait_for() -> None:
    # A fresh interpreter: this one may have imported them already.
    code = (
        "import sys\n"
        "from stream_risk.core.detectors import import_river\n"
        "lazy = ('river.anomaly', 'river.drift')\n"
        "assert not any(m in sys.modules for m in lazy), 'imported with the detectors'\n"
        "import_river()\n"
        "assert all(m in sys.modules for m in lazy)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
