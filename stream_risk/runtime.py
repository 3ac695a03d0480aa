"""Process-wide settings that every long-running command shares.

The engine keeps one state per customer in memory and allocates many small
objects per event. With Python's default thresholds (700, 10, 10) the cyclic
garbage collector walks that whole heap every few seconds: 18% of a replay's
time, and pauses of 100-600 ms in a worker's event loop.

The core makes no reference cycles (states, evaluations and outputs are plain
data; ``tests/unit/test_detectors.py`` holds the one river detector that made
some to account): what it leaves behind goes by reference counting alone. So a
bounded job (a replay, a backtest) needs no cyclic collection after start-up,
and a worker only needs it for the young objects of its Kafka client, Faust and
asyncio, never for the states it keeps.
"""

from __future__ import annotations

import gc
from typing import Any

#: Collector thresholds of a running command (Python's: 700, 10, 10). Young
#: collections every 5,000 new objects instead of 700: most objects of one event die
#: before they are promoted. The middle generation every 5 young collections: its
#: survivors are frozen after it (:func:`_freeze_survivors`), so it only ever walks
#: what 5 young collections promoted; every 20 (as before) it walked up to 300,000
#: objects, and the one full collection of a 100,000-event bench 350 ms, against 73
#: and 91 ms at most now (one run each, the same total time collecting).
GC_THRESHOLDS = (5_000, 5, 50)


def tune_garbage_collection() -> None:
    """Leave the objects alive now out of every later collection; collect young ones less
    often; and leave out, from then on, whatever survives a young collection.

    The start-up heap (modules, Faust and aiokafka, the detectors, the rule set,
    the model) lives as long as the process, and every full collection walked it
    all. So did it walk the customers' states and evaluations, kept in memory,
    which young objects become as they survive: 0.7 s per 5,000 customers of the
    UCI stream, seconds with a large portfolio, the event loop stopped meanwhile.
    Frozen objects are still freed by reference counting; only a cycle among
    them would never be collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """After a collection of the middle generation (its survivors have just joined the
    oldest), freeze them: a full collection then walks nothing the process keeps."""
    if phase == "stop" and info["generation"] == 1:
        gc.freeze()


def stop_cyclic_collection() -> None:
    """For a bounded job (replay, backtest, costs): no cyclic collection at all from now
    on. What the core leaves behind goes by reference counting; the collector only
    walked the states it keeps, about a tenth of a replay's time."""
    gc.disable()
