"""Per-customer state and its safe, versioned codec.

The state is plain data (numbers, strings, lists, dicts), encoded as JSON with a
format version, so a state table can be read by any later version and nothing
ever unpickles bytes from a topic anyone can write to. :func:`decode` upgrades
every earlier version it knows.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

import orjson

from stream_risk.core import receivables
from stream_risk.core.receivables import Book, new_book
from stream_risk.core.running_totals import RunningTotals

#: Bumped whenever the encoded layout changes; :func:`decode` upgrades older ones.
#: Version 3 keeps, per recent receivables entry, the changes that undo it instead
#: of a copy of the whole book from before the oldest one. Version 4 keeps each
#: model-input snapshot after the first as the inputs that changed since the one
#: before it (see :func:`snapshot_changes`). Version 5 keeps the de-duplication
#: digests as one base64 string (see :func:`pack_seen`).
STATE_VERSION = 5

# Positions inside the compact list records below (lists keep the encoding small).
ORD_TS, ORD_AMOUNT, ORD_ID = 0, 1, 2
STMT_TS, STMT_BALANCE, STMT_DPD, STMT_STATUS, STMT_ID = 0, 1, 2, 3, 4
PROMISE_MADE, PROMISE_DUE, PROMISE_AMOUNT = 0, 1, 2


class SnapshotPart(NamedTuple):
    """How :func:`snapshot_changes` encoded one snapshot, and against which before it.

    It holds the snapshot, so the snapshot's ``id`` (its key) is not reused meanwhile.
    """

    snapshot: list[Any]
    before: list[Any] | None
    encoded: list[Any]


@dataclass(slots=True)
class CustomerState:
    """Everything the engine knows about one customer.

    Times are event times in seconds since the epoch (UTC); amounts are in the
    base currency.
    """

    customer_id: str
    # -- credit assessment (the latest customer event)
    credit_limit: float | None = None
    payment_terms_days: int | None = None
    segment: dict[str, Any] | None = None
    rating: str | float | None = None
    financials: dict[str, Any] | None = None
    profile_at: float | None = None
    first_seen: float | None = None
    # -- receivables: the book, and the journal of the entries within the allowed
    #: lateness, each with what undoes it: ``[[ts, kind, ...], undo]`` in event-time
    #: order (see :func:`stream_risk.core.receivables.record`).
    book: Book = field(default_factory=new_book)
    journal: list[list[Any]] = field(default_factory=list)
    #: True once the customer has had an invoice: open balance then comes from invoices.
    invoiced: bool = False
    #: [day number, net change of the receivable that day] for the last 100 days.
    ledger: list[list[Any]] = field(default_factory=list)
    #: Net receivable before the first ledger day.
    ledger_base: float = 0.0
    # -- statements, orders, promises (sorted by event time)
    #: [occurred_at, balance, days_past_due, status, statement_id] of the last year.
    statements: list[list[Any]] = field(default_factory=list)
    #: [occurred_at, amount, order_id] of placed orders in the last 120 days.
    orders: list[list[Any]] = field(default_factory=list)
    #: Latest placed order no longer in ``orders`` (for the silence feature).
    last_order_at: float | None = None
    #: [occurred_at, order_id] of cancellations in the last 120 days.
    cancelled: list[list[Any]] = field(default_factory=list)
    #: [made_at, promised_at, promised_amount] of promises to pay in the last year.
    promises: list[list[Any]] = field(default_factory=list)
    # -- bookkeeping
    #: Digests of recent event ids (insertion ordered) for de-duplication.
    seen: dict[str, None] = field(default_factory=dict)
    #: Input topic -> offset of the last message applied (set by the streaming
    #: driver): a redelivered message at or below it is skipped exactly.
    offsets: dict[str, int] = field(default_factory=dict)
    #: The partition the customer's messages arrive on (set by the streaming
    #: driver): timers rebuilt after a restart fire on that partition.
    partition: int | None = None
    #: Per-customer detector state and their latest scores as [event time, score]
    #: (see :mod:`stream_risk.core.detectors` and the ``detectors`` feature group).
    detectors: dict[str, Any] = field(default_factory=dict)
    #: [taken_at, [value per model input]]: the learned model's inputs over time
    #: (in :data:`~stream_risk.core.trainer.MODEL_FEATURES` order), so an outcome
    #: can be labelled with the features of ``horizon`` before it.
    snapshots: list[list[Any]] = field(default_factory=list)
    #: rule name -> [warning_id, level, fired_at] while the rule fires.
    alerts: dict[str, list[Any]] = field(default_factory=dict)
    #: rule name -> lifecycle episode of a rule that holds but does not fire (pending,
    #: muted) or has just resolved (cooling); see :mod:`stream_risk.core.lifecycle`.
    watch: dict[str, list[Any]] = field(default_factory=dict)
    #: The published tier's hysteresis: [tier, since, improving_since, improving_worst].
    tier_hold: list[Any] | None = None
    last_outcome: str | None = None
    outcome_at: float | None = None
    #: Latest event time applied, and the latest time the customer was advanced to.
    updated_at: float | None = None
    clock: float | None = None
    #: When the customer needs re-evaluating next (event time), if ever.
    next_wakeup: float | None = None
    risk_score: float = 0.0
    tier: str = "low"
    # -- credit policy (see :mod:`stream_risk.core.creditreport`, :mod:`stream_risk.core.review`)
    #: The latest credit report, one small record (None: no report yet).
    credit_report: dict[str, Any] | None = None
    #: The latest assessment, the next review, the on-time record and the last
    #: increase proposed: a fixed set of scalars.
    credit_review: dict[str, Any] | None = None
    #: The encoded parts of :data:`KEPT_ENCODED` fields from the latest
    #: :func:`encode_after`, and which of them ``step`` and ``advance`` have not
    #: changed since. Not encoded.
    encoded_parts: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)
    unchanged: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    #: The bytes of the latest :func:`encode_after`, while ``step`` and ``advance``
    #: have not changed the state since (a customer touched again in a later batch
    #: needs them as the state to go back to). Not encoded.
    encoding: bytes | None = field(default=None, compare=False, repr=False)
    #: The encoding of each snapshot (see :func:`snapshot_changes`) from the latest
    #: :func:`encode_after`: a snapshot, once taken, never changes. Not encoded.
    snapshot_parts: dict[int, SnapshotPart] = field(default_factory=dict, compare=False, repr=False)
    #: What the invoices give the features at the latest time they were aged (see
    #: :func:`stream_risk.core.features.invoice_ages`): derived from ``book``, dropped
    #: whenever ``step`` changes the book. Not encoded.
    invoice_ages: Any = field(default=None, compare=False, repr=False)
    #: The net receivable at the end of each ledger day, ``ledger_base`` first (see
    #: :func:`stream_risk.core.features.exposures_at`): derived from ``ledger``,
    #: dropped whenever ``step`` or expiry changes it. Not encoded.
    ledger_totals: list[float] | None = field(default=None, compare=False, repr=False)
    #: The order amounts' running totals (see :func:`order_totals`): derived from
    #: ``orders``, kept in step by ``step`` and expiry. Not encoded.
    order_totals: RunningTotals | None = field(default=None, compare=False, repr=False)
    #: The encoding of each of ``orders``, in order (see :func:`encode_after`): a new
    #: order re-encodes itself, not the whole list. Kept in step like ``order_totals``.
    orders_encoded: list[bytes] | None = field(default=None, compare=False, repr=False)


#: Fields in the encoding: those a state's equality compares. What is kept beside a
#: state (encoded parts, what is derived from its fields) is neither.
_FIELDS = tuple(f.name for f in fields(CustomerState) if f.compare)
#: The large fields that only some events and expiry change: their encoded parts are
#: kept between encodings (see :func:`encode_after`).
KEPT_ENCODED = frozenset(
    {
        "seen",
        "book",
        "journal",
        "orders",
        "cancelled",
        "ledger",
        "statements",
        "promises",
        "snapshots",
    }
)
#: Fields left out of the encoding while they hold their (empty) default.
_EMPTY_BY_DEFAULT = frozenset(
    {
        "journal",
        "ledger",
        "statements",
        "orders",
        "cancelled",
        "promises",
        "seen",
        "offsets",
        "alerts",
        "watch",
        "detectors",
        "snapshots",
    }
)


def encode(state: CustomerState) -> bytes:
    """Encode ``state`` as versioned JSON bytes."""
    data: dict[str, Any] = {"v": STATE_VERSION}
    for name in _FIELDS:
        value = getattr(state, name)
        if _omitted(name, value):
            continue
        data[name] = _encodable(name, value)
    return orjson.dumps(data)


def _encodable(name: str, value: Any, parts: dict[int, SnapshotPart] | None = None) -> Any:
    """Field ``name``'s value as the encoding holds it (``parts``: see :func:`snapshot_changes`)."""
    if name == "seen":
        return pack_seen(value)
    if name == "snapshots":
        return snapshot_changes(value, parts)
    return value


#: Hex characters of one de-duplication digest (:func:`stream_risk.core.step.event_key`).
SEEN_DIGEST_CHARS = 16


def pack_seen(seen: Iterable[str]) -> str | list[str]:
    """The de-duplication digests as the encoding keeps them: their bytes, in order, as
    one base64 string (12 bytes of JSON for 3 digests instead of 57). Digests that are
    not all 16 hex characters stay a list.

    >>> pack_seen(["0123456789abcdef", "fedcba9876543210"])
    'ASNFZ4mrze/+3LqYdlQyEA=='
    >>> unpack_seen(pack_seen(["0123456789abcdef", "fedcba9876543210"]))
    ['0123456789abcdef', 'fedcba9876543210']
    >>> pack_seen(["not-a-digest"])
    ['not-a-digest']
    >>> pack_seen(["0123456789abcde", "f0123456789abcdef"])
    ['0123456789abcde', 'f0123456789abcdef']
    """
    digests = list(seen)
    # Each one 16 long, not only all of them together: "0123", "4567..." would split anew.
    if set(map(len, digests)) <= {SEEN_DIGEST_CHARS}:
        joined = "".join(digests)
        try:
            packed = bytes.fromhex(joined)
        except ValueError:
            return digests
        # Upper-case hex would read back lower-case: only what reads back exactly is packed.
        if packed.hex() == joined:
            return base64.b64encode(packed).decode()
    return digests


def unpack_seen(encoded: Any) -> list[str]:
    """The digests :func:`pack_seen` encoded (a list as version 4 and earlier kept them,
    or a string); raises ``ValueError`` for anything else."""
    if isinstance(encoded, list):
        return encoded
    if not isinstance(encoded, str):
        raise ValueError("seen must be a list or a string")
    try:
        hex_digits = base64.b64decode(encoded, validate=True).hex()
    except binascii.Error as exc:
        raise ValueError(f"seen is not base64: {exc}") from None
    if len(hex_digits) % SEEN_DIGEST_CHARS:
        raise ValueError("seen does not hold whole digests")
    width = SEEN_DIGEST_CHARS
    return [hex_digits[i : i + width] for i in range(0, len(hex_digits), width)]


def snapshot_changes(
    snapshots: list[list[Any]], parts: dict[int, SnapshotPart] | None = None
) -> list[list[Any]]:
    """The snapshots as the encoding keeps them: the first whole, ``[taken_at, values]``,
    each later one as ``[taken_at, {index: value}]`` of the values that differ from
    the one before it (in value or in type: ``0`` is not ``0.0``) when fewer than
    half of them do.

    A week apart, most of a quiet customer's model inputs have not moved: half the
    bytes. ``parts`` (:attr:`CustomerState.snapshot_parts`) holds each snapshot's
    encoding from the previous call, by identity: only new ones are compared.

    >>> snapshot_changes([[7.0, [1, 2.5, None]], [14.0, [1, 3.0, None]], [21.0, [1, 3.0, None]]])
    [[7.0, [1, 2.5, None]], [14.0, {'1': 3.0}], [21.0, {}]]
    >>> snapshots_from_changes(snapshot_changes([[7.0, [0]], [14.0, [0.0]]]))
    [[7.0, [0]], [14.0, [0.0]]]
    """
    out: list[list[Any]] = []
    kept_parts: dict[int, SnapshotPart] = {}
    before: list[Any] | None = None
    for snapshot in snapshots:
        taken_at, values = snapshot
        part = parts.get(id(snapshot)) if parts is not None else None
        if part is None or part.before is not before:
            kept: list[Any] | dict[str, Any] = values
            # The first whole, and any whose inputs mostly moved (a busy customer's
            # week: the changes would be longer) or are other inputs (the model changed).
            if before is not None and len(values) == len(before):
                changes = _changes(before, values)
                if 2 * len(changes) < len(values):
                    kept = changes
            part = SnapshotPart(snapshot, before, [taken_at, kept])
        kept_parts[id(snapshot)] = part
        out.append(part.encoded)
        before = values
    if parts is not None:
        parts.clear()
        parts.update(kept_parts)
    return out


def _changes(before: list[Any], values: list[Any]) -> dict[str, Any]:
    """The values that do not encode as those ``before`` do, by index (NaN, never
    equal to itself, is one; so is ``-0.0`` after ``0.0``)."""
    copysign = math.copysign
    return {
        str(i): value
        for i, (value, was) in enumerate(zip(values, before, strict=True))
        if value != was
        or type(value) is not type(was)
        or (value == 0 and type(value) is float and copysign(1.0, value) != copysign(1.0, was))
    }


def snapshots_from_changes(encoded: Any) -> list[list[Any]]:
    """The snapshots that :func:`snapshot_changes` encoded (also whole ones, as version
    3 and earlier kept them); raises ``ValueError`` for a malformed list."""
    if not isinstance(encoded, list):
        raise ValueError("snapshots must be a list")
    snapshots: list[list[Any]] = []
    before: list[Any] | None = None
    for item in encoded:
        if not (isinstance(item, list) and len(item) == 2):
            raise ValueError(f"malformed snapshot {item!r}")
        taken_at, values = item
        if isinstance(values, dict):
            if before is None:
                raise ValueError("the first snapshot must be whole")
            whole = list(before)
            for key, value in values.items():
                index = int(key)
                if not 0 <= index < len(whole):
                    raise ValueError(f"snapshot input {key!r} out of range")
                whole[index] = value
            values = whole
        elif not isinstance(values, list):
            raise ValueError(f"malformed snapshot {item!r}")
        snapshots.append([taken_at, values])
        before = values
    return snapshots


def _omitted(name: str, value: Any) -> bool:
    """Whether the encoding leaves field ``name`` out: unset, or at its empty default."""
    return (
        value is None
        or (name in _EMPTY_BY_DEFAULT and not value)
        or (name == "ledger_base" and value == 0.0)
    )


def encode_after(state: CustomerState) -> bytes:
    """:func:`encode` of ``state`` right after ``step`` or ``advance``, the same bytes.

    The parts of the large fields those left unchanged (:attr:`CustomerState.unchanged`)
    are not encoded again: a timer wake-up re-encodes little more than what the
    evaluation decided. Only for states that change through ``step`` and ``advance``
    alone (a driver's), since any other change is not noted.
    """
    if state.encoding is not None:
        return state.encoding
    parts = state.encoded_parts
    unchanged = state.unchanged
    out = [b'{"v":%d' % STATE_VERSION]
    # orjson writes an object as its members, comma-separated, without spaces: the
    # fields between two kept parts are encoded together, as one object's members.
    run: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(state, name)
        if _omitted(name, value):
            parts.pop(name, None)
            continue
        if name not in KEPT_ENCODED:
            run[name] = value
            continue
        if run:
            out.append(orjson.dumps(run)[1:-1])
            run = {}
        part = parts.get(name) if name in unchanged else None
        if part is None:
            if name == "orders":
                part = b'"orders":[%s]' % b",".join(_orders_encoded(state))
            else:
                part = orjson.dumps({name: _encodable(name, value, state.snapshot_parts)})[1:-1]
            parts[name] = part
        out.append(part)
    if run:
        out.append(orjson.dumps(run)[1:-1])
    state.unchanged = KEPT_ENCODED
    state.encoding = b",".join(out) + b"}"
    return state.encoding


def order_totals(state: CustomerState) -> RunningTotals:
    """The running totals of the order amounts (:attr:`CustomerState.order_totals`)."""
    totals = state.order_totals
    if totals is None or len(totals) != len(state.orders):
        totals = state.order_totals = RunningTotals(o[ORD_AMOUNT] for o in state.orders)
    return totals


def _orders_encoded(state: CustomerState) -> list[bytes]:
    encoded = state.orders_encoded
    if encoded is None or len(encoded) != len(state.orders):
        encoded = state.orders_encoded = list(map(orjson.dumps, state.orders))
    return encoded


def orders_inserted(state: CustomerState, at: int) -> None:
    """Keep what is derived from ``state.orders`` in step with the order inserted at ``at``."""
    order = state.orders[at]
    if state.order_totals is not None:
        state.order_totals.insert(at, order[ORD_AMOUNT])
    if state.orders_encoded is not None:
        state.orders_encoded.insert(at, orjson.dumps(order))


def orders_expired(state: CustomerState, count: int) -> None:
    """Keep what is derived from ``state.orders`` in step with its first ``count`` expiring."""
    if state.order_totals is not None:
        state.order_totals.drop_front(count)
    if state.orders_encoded is not None:
        del state.orders_encoded[:count]


def orders_replaced(state: CustomerState, orders: list[list[Any]]) -> None:
    """Replace ``state.orders``; what is derived from them is built afresh when next read."""
    state.orders = orders
    state.order_totals = None
    state.orders_encoded = None


def _parse(raw: bytes | str) -> tuple[dict[str, Any], int]:
    """The fields of an encoded state and its format version, without the version."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"customer state is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("customer state must be a JSON object")
    version = data.pop("v", None)
    if type(version) is not int or version not in (1, 2, 3, 4, STATE_VERSION):
        raise ValueError(f"unsupported customer state version {version!r}")
    return data, version


def decode(raw: bytes | str) -> CustomerState:
    """Decode bytes written by :func:`encode` of this or an earlier version."""
    data, version = _parse(raw)
    try:
        if version == 1:
            data = _upgrade_v1(data)
        if version <= 2:
            data = _upgrade_v2(data)
        if "snapshots" in data:
            data["snapshots"] = snapshots_from_changes(data["snapshots"])
        seen = unpack_seen(data.pop("seen", []))
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"malformed version {version} customer state: {exc!r}") from None
    book = data.get("book")
    if isinstance(book, dict) and not isinstance(book, Book):
        # A Book keeps its settlement order beside it; one an upgrade built keeps its own.
        data["book"] = Book(book)
    unknown = set(data) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown customer state fields: {sorted(unknown)}")
    try:
        state = CustomerState(**data)
        state.seen = dict.fromkeys(seen)
    except TypeError as exc:
        raise ValueError(f"malformed customer state: {exc}") from None
    return state


class TimerFields(NamedTuple):
    """What rebuilding the timers needs of a stored state."""

    partition: int | None
    updated_at: float | None
    next_wakeup: float | None


def timer_fields(raw: bytes | str) -> TimerFields:
    """The partition, latest event time and next wake-up of an encoded state.

    Rebuilding the timers after a restart reads every stored state: parsing alone,
    without building the state, takes about a third of :func:`decode`'s time.
    Rejects with ``ValueError`` what :func:`decode` would not read for want of a
    version, an object or a customer id. Every version keeps these fields as is.
    """
    data, _ = _parse(raw)
    if not isinstance(data.get("customer_id"), str):
        raise ValueError("customer state without a customer id")
    partition = data.get("partition")
    updated_at = data.get("updated_at")
    next_wakeup = data.get("next_wakeup")
    if not (partition is None or type(partition) is int) or not all(
        t is None or isinstance(t, int | float) for t in (updated_at, next_wakeup)
    ):
        raise ValueError("malformed customer state: bad partition or event times")
    return TimerFields(partition, updated_at, next_wakeup)


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept only the latest statement and no payment or closing history."""
    book = new_book()
    book["inv"] = {str(k): [float(x) for x in v[:4]] for k, v in data.pop("invoices", {}).items()}
    payments = data.pop("payments", {})
    if not isinstance(payments, dict):
        raise TypeError("payments must be an object")
    book["pay"] = payments
    book["credit"] = float(data.pop("unapplied_credit", 0.0))
    data.pop("bounced_payments", None)
    data["book"] = book
    # The net receivable so far: what is open minus unapplied credit.
    data["ledger_base"] = sum(v[0] for v in book["inv"].values()) - book["credit"]
    statement = data.pop("statement", None)
    if statement is not None:
        ts, balance, dpd, status = statement[:4]
        data["statements"] = [[float(ts), float(balance), int(dpd), str(status), None]]
    data["orders"] = [[float(o[0]), float(o[1]), str(o[2])] for o in data.get("orders", [])]
    return data


def _upgrade_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 kept a copy of the book from before the journal (``book_base``).

    The journal is re-applied to that copy, recording what undoes each entry:
    the book is then the one version 2 held, and a late entry can still be
    placed among the journal's.
    """
    base = data.pop("book_base", None)
    entries = data.pop("journal", [])
    if not isinstance(entries, list):
        raise TypeError("journal must be a list")
    if base is None or not entries:
        return data  # nothing recent to re-order: the book stands as it is
    if not isinstance(base, dict):
        raise TypeError("book_base must be an object")
    journal: list[list[Any]] = []
    book = Book(base)
    for entry in entries:
        receivables.record(book, journal, list(entry))
    data["book"] = book
    data["journal"] = journal
    return data
