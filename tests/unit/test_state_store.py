"""The state store settings and the customer-state accessor, without Kafka."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import rocksdict

from stream_risk.agents.state_store import CustomerStates, store_url
from stream_risk.config import ConfigurationError, load_settings

CHANGELOG = "app-customer-state-changelog"


def test_the_store_defaults_to_memory_and_accepts_rocksdb(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (load_settings().store, load_settings().standby_replicas) == ("memory", 1)
    assert store_url("memory") == "memory://"
    monkeypatch.setenv("STREAM_RISK_STORE", "rocksdb")
    monkeypatch.setenv("STREAM_RISK_STANDBY_REPLICAS", "0")
    settings = load_settings()
    assert (settings.store, settings.standby_replicas) == ("rocksdb", 0)
    assert store_url(settings.store) == "rocksdb://"


@pytest.mark.parametrize(
    ("name", "value"), [("STREAM_RISK_STORE", "redis"), ("STREAM_RISK_STANDBY_REPLICAS", "-1")]
)
def test_a_bad_store_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_rocksdb_without_its_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail, as when the package is missing.
    monkeypatch.setitem(sys.modules, "rocksdict", None)
    with pytest.raises(ConfigurationError, match=r"stream-risk\[rocksdb\]"):
        store_url("rocksdb")
    assert store_url("memory") == "memory://"


class _RocksStore:
    """The parts of Faust's RocksDB store the accessor uses, over real databases."""

    def __init__(self, path: Path, partitions: int) -> None:
        self._dbs = {p: rocksdict.Rdict(str(path / f"p{p}")) for p in range(partitions)}
        self.offsets: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.offsets[tp] = offset

    def _dbs_for_actives(self) -> Any:
        return iter(self._dbs.values())

    def _visible_items(self, db: Any) -> Any:
        return db.items()

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


@pytest.fixture
def rocks(tmp_path: Path) -> Any:
    store = _RocksStore(tmp_path, 2)
    table = SimpleNamespace(
        data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG)
    )
    yield CustomerStates(table, persistent=True), store
    store.close()


class _Delivery:
    """A changelog send's delivery, resolved when the test says so."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.offset = -1
        self.error: Exception | None = None

    def add_done_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def cancelled(self) -> bool:
        return False

    def exception(self) -> Exception | None:
        return self.error

    def result(self) -> Any:
        return SimpleNamespace(offset=self.offset)

    def resolve(self, offset: int = -1, error: Exception | None = None) -> None:
        self.offset, self.error = offset, error
        for callback in self.callbacks:
            callback(self)


def test_a_state_reaches_disk_with_its_offset_only_once_the_changelog_has_it(rocks: Any) -> None:
    states, store = rocks
    delivery = _Delivery()
    states.put(1, b"c1", b"v1", delivery)
    # Readable at once, but not on disk: a kill now recovers it from the changelog tail.
    assert states.get(b"c1") == b"v1"
    assert store._dbs[1].get(b"c1") is None and store.offsets == {}
    delivery.resolve(41)
    assert store._dbs[1].get(b"c1") == b"v1"
    assert [(tp.topic, tp.partition, o) for tp, o in store.offsets.items()] == [(CHANGELOG, 1, 41)]
    assert states.pending == {}
    assert states.get(b"c1") == b"v1"
    assert states.get(b"other") is None


def test_a_failed_changelog_send_writes_nothing_to_disk(rocks: Any) -> None:
    states, store = rocks
    failed = _Delivery()
    states.put(0, b"c2", b"v2", failed)
    failed.resolve(error=RuntimeError("broker gone"))
    assert store._dbs[0].get(b"c2") is None and store.offsets == {}


def test_a_newer_unacknowledged_state_wins_over_the_acknowledged_older_one(rocks: Any) -> None:
    states, store = rocks
    first = _Delivery()
    states.put(0, b"c3", b"old", first)
    states.put(0, b"c3", b"new", _Delivery())
    first.resolve(7)
    assert store._dbs[0].get(b"c3") == b"old"
    assert states.get(b"c3") == b"new"
    assert dict(states.items())[b"c3"] == b"new"


def test_revoked_partitions_drop_their_unacknowledged_states(rocks: Any) -> None:
    states, store = rocks
    late = _Delivery()
    states.put(0, b"a", b"1", _Delivery())
    states.put(1, b"b", b"2", late)
    states.revoked([1])
    assert states.get(b"a") == b"1"
    assert states.get(b"b") is None
    # Acknowledged after the partition's database was closed: not reopened.
    del store._dbs[1]
    late.resolve(5)
    assert 1 not in store._dbs and store.offsets == {}


def test_the_memory_store_is_written_at_once() -> None:
    data: dict[bytes, bytes] = {}
    table = SimpleNamespace(
        data=data, changelog_topic=SimpleNamespace(get_topic_name=lambda: CHANGELOG)
    )
    states = CustomerStates(table)
    states.put(0, b"c", b"v", _Delivery())
    assert data == {b"c": b"v"}
    assert states.get(b"c") == b"v"
    assert list(states.items()) == [(b"c", b"v")]
