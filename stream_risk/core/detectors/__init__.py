"""Online anomaly detectors: each one a small object that is its own state.

Every detector offers ``score_one`` (before learning, ``None`` while warming
up), ``learn_one`` and ``explain_one``, and is a :class:`Detector`: it converts
to and from plain JSON data (``to_dict``/``from_dict``), so per-customer
detectors live in the customer's state.

* :class:`RobustZScore`: a value against the customer's own recent history
  (median and MAD), e.g. order amounts and order frequency;
* :class:`DaysLateShift`: river's PageHinkley change detector on days late;
* :class:`SegmentBehaviour`: river's HalfSpaceTrees over the behaviour
  vector, one forest per segment, held per worker (not per customer).
"""

from stream_risk.core.detectors.base import Detector, Explanation
from stream_risk.core.detectors.days_late_shift import DaysLateShift
from stream_risk.core.detectors.robust_zscore import RobustZScore
from stream_risk.core.detectors.segment_behaviour import SegmentBehaviour, behaviour_vector

#: Every detector kind (mypy checks each against :class:`Detector`).
DETECTORS: tuple[type[Detector], ...] = (RobustZScore, DaysLateShift, SegmentBehaviour)


def import_river() -> None:
    """Import river's trees and drift detectors now, not at the first event that needs them.

    They pull in SciPy: a second or more that a short command is spared, but that a
    long-running worker would otherwise spend inside its first batch, with its event
    loop blocked (no heartbeat, no commit, no other partition's batch).
    """
    import river.anomaly
    import river.drift  # noqa: F401


__all__ = [
    "DETECTORS",
    "DaysLateShift",
    "Detector",
    "Explanation",
    "RobustZScore",
    "SegmentBehaviour",
    "behaviour_vector",
    "import_river",
]
