"""The customer-state table: where it is kept (memory or RocksDB) and how it is read and written.

With the memory store a (re)started worker reads its partitions' whole changelog
before it processes anything, and the changelog grows with the number of
customers. The RocksDB store keeps the states on local disk with, per partition,
the changelog offset they reflect: a restarted worker reads only the changelog
records written after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import faust
from faust.types import TP

from stream_risk.config import ConfigurationError

log = logging.getLogger(__name__)

#: Faust store URL of each ``STREAM_RISK_STORE`` value.
STORE_URLS = {"memory": "memory://", "rocksdb": "rocksdb://"}

#: RocksDB options per partition database: Faust's defaults (a 2 GiB block cache and
#: three 64 MiB write buffers per database) are sized for a dedicated host.
ROCKSDB_OPTIONS = {
    "driver": "rocksdict",
    "block_cache_size": 64 * 1024**2,
    "write_buffer_size": 16 * 1024**2,
    "max_write_buffer_number": 2,
}


def store_url(store: str) -> str:
    """The Faust store URL for a ``STREAM_RISK_STORE`` value.

    Raises
    ------
    ConfigurationError
        The RocksDB store is chosen but its driver (``rocksdict``) is not installed.
    """
    if store == "rocksdb":
        try:
            import rocksdict  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "STREAM_RISK_STORE=rocksdb needs the rocksdict package: "
                "pip install 'stream-risk[rocksdb]'"
            ) from None
    return STORE_URLS[store]


class StateTable(faust.Table[bytes, bytes]):  # type: ignore[misc]
    """Faust's table, counting the changelog records it reads to rebuild its states."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Changelog records read into the store since the worker started.
        self.changelog_records_read = 0
        self._reported = 0

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        records = list(batch)
        self.changelog_records_read += len(records)
        super().apply_changelog_batch(records)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        read = self.changelog_records_read - self._reported
        self._reported = self.changelog_records_read
        log.info(
            "customer states recovered: %d changelog records read for %d partitions",
            read,
            len(active_tps),
        )


class CustomerStates:
    """Reads and writes the encoded customer states by the customer's partition.

    Parameters
    ----------
    table
        The Faust table (its ``data`` is the store, its changelog the topic states go to).
    persistent
        Whether the store is RocksDB. Faust's own accessors of a RocksDB store pick
        the database of the partition of the event being processed, which in an
        aligned batch is not every customer's; and a state is written to disk only
        once its changelog record is acknowledged, with that record's offset: the
        disk never runs ahead of the changelog, so a worker killed in between
        recovers the state from the changelog tail (the other order would keep a
        state locally that no other worker could ever recover).
    """

    def __init__(self, table: Any, *, persistent: bool = False) -> None:
        self.table = table
        self.persistent = persistent
        self.changelog: str = table.changelog_topic.get_topic_name()
        #: Written but not yet acknowledged by the broker (RocksDB store): key ->
        #: (partition, state). What the worker reads meanwhile.
        self.pending: dict[bytes, tuple[int, bytes]] = {}

    def get(self, key: bytes) -> bytes | None:
        """The stored state of ``key``, or None."""
        data = self.table.data
        if not self.persistent:
            raw = data.get(key)
            return raw if raw is None or isinstance(raw, bytes) else bytes(raw)
        pending = self.pending.get(key)
        if pending is not None:
            return pending[1]
        # A key lives in one partition's database; the bloom filters rule out the others.
        for db in list(data._dbs.values()):
            if db.key_may_exist(key):
                value = db.get(key)
                if value is not None:
                    return bytes(value)
        return None

    def put(self, partition: int, key: bytes, raw: bytes, delivered: asyncio.Future[Any]) -> None:
        """Store ``raw`` for ``key``, whose changelog record ``delivered`` is being sent."""
        if not self.persistent:
            self.table.data[key] = raw
            return
        self.pending[key] = (partition, raw)
        delivered.add_done_callback(partial(self._persist, partition, key, raw))

    def _persist(self, partition: int, key: bytes, raw: bytes, delivered: Any) -> None:
        """Write an acknowledged state and its changelog offset to disk."""
        entry = self.pending.get(key)
        if entry is not None and entry[1] is raw:
            del self.pending[key]
        if delivered.cancelled() or delivered.exception() is not None:
            return  # the sender stops the worker: nothing more is committed
        store = self.table.data
        db = store._dbs.get(partition)
        if db is None:
            # Revoked meanwhile: whoever owns it reads the record from the changelog.
            return
        db.put(key, raw)
        store.set_persisted_offset(TP(self.changelog, partition), delivered.result().offset)

    def revoked(self, partitions: Iterable[int]) -> None:
        """Forget unacknowledged states of partitions this worker no longer owns."""
        gone = set(partitions)
        if gone and self.pending:
            self.pending = {k: v for k, v in self.pending.items() if v[0] not in gone}

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        """Every stored state of the partitions this worker owns.

        What may change meanwhile (the memory store's dict, the set of open
        databases, the unacknowledged states) is copied here, so that the states
        can be read on another thread; a RocksDB iterator reads a consistent view.
        """
        data = self.table.data
        if not self.persistent:
            return [(k, v if isinstance(v, bytes) else bytes(v)) for k, v in data.items()]
        return self._stored(list(data._dbs_for_actives()), dict(self.pending))

    def _stored(
        self, dbs: list[Any], pending: dict[bytes, tuple[int, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        visible = self.table.data._visible_items
        for db in dbs:
            for key, value in visible(db):
                if key not in pending:
                    yield key, bytes(value)
        for key, (_, raw) in pending.items():
            yield key, raw
