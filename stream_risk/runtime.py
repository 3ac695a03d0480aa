"""Process-wide settings that every long-running command shares.

The engine keeps one state per customer in memory and allocates many small
objects per event. With Python's default thresholds (700, 10, 10) the cyclic
garbage collector walks that whole heap every few seconds: 18% of a replay's
time, and pauses of 100-600 ms in a worker's event loop.
"""

from __future__ import annotations

import gc

#: Collector thresholds of a running command (Python's: 700, 10, 10). Young
#: collections every 10,000 new objects instead of 700: the objects of one event
#: or batch die before they are promoted, so the full collections are rare.
GC_THRESHOLDS = (10_000, 20, 50)


def tune_garbage_collection() -> None:
    """Leave the objects alive now out of every later collection; collect young ones less often.

    The start-up heap (modules, Faust and aiokafka, the detectors, the rule set,
    the model) lives as long as the process, and every full collection walked it
    all. Frozen objects are still freed by reference counting; only a cycle among
    them would never be collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
