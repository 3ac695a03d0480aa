"""Reference tests of the feature set: every statistic recomputed from the raw events.

Seeded random scripts for one customer (orders and cancellations, invoices, payments
with and without ``invoice_id``, bounces and reversals, statements, promises to pay,
credit assessments, outcomes) are applied with ``step``. After EVERY step the engine's
``compute(state, state.clock)`` is compared with an independent recomputation from the
raw prefix of events applied so far: numpy over arrays built from the event dicts, and
a small receivables model in integer cents for what depends on settlement (open
invoices, when and how late they closed, partial payments). Half of the scripts arrive
out of order within the allowed lateness. After the last event the customer is
advanced without new events (window boundaries, its own wake-ups, far later times)
and compared again.

Every window is ``(now - width, now]`` on event time. There is one test per feature, so
a mismatch names the feature, the script (seed), the step and both values.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pytest
from risk_factory import T0S, iso_ts, late_arrival_order, parse, same_value

from stream_risk.core import Context, CustomerState, advance, step
from stream_risk.core.features import REGISTRY, compute
from stream_risk.core.running_totals import RunningTotals
from stream_risk.core.state import encode, encode_after, order_totals

DAY = 86_400.0
MONTH = 30 * DAY
LATENESS = Context().allowed_lateness
SEEDS = range(36)
KINDS = ("statements", "invoices", "mixed")


# =============================================================== event scripts


def _event(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "customer_id": "c1", "occurred_at": t, **fields}


def script(seed: int) -> list[dict[str, Any]]:
    """A customer's events in event-time order, all at distinct whole seconds.

    ``seed % 3`` picks a statement customer, an invoice customer, or one with both.
    Bounces of payments never settled only go to statement customers.
    """
    rng = random.Random(seed)
    kind = KINDS[seed % 3]
    span = rng.choice([45, 120, 240]) * DAY
    out: list[dict[str, Any]] = []

    def when(lo: float, hi: float) -> float:
        return T0S + rng.randint(int(lo), int(hi))

    # -- credit assessments
    for n in range(rng.choice([1, 1, 2, 3])):
        t = when(0, 2 * DAY) if n == 0 else when(0, span)
        extra: dict[str, Any] = {}
        if rng.random() < 0.7:
            extra["segment"] = {
                k: rng.choice(v)
                for k, v in (
                    ("industry", ["retail", "steel"]),
                    ("size", ["sme", "large"]),
                    ("region", ["EU", "APAC"]),
                )
                if rng.random() < 0.8
            }
        if rng.random() < 0.6:
            extra["rating"] = rng.choice(["BB+", "A", 640, 712.5])
        if rng.random() < 0.6:
            extra["financials"] = {
                k: round(rng.uniform(0.1, 3.0), 3)
                for k in ("current_ratio", "debt_ratio", "revenue")
                if rng.random() < 0.7
            }
        out.append(
            _event(
                "customer",
                t,
                credit_limit=rng.choice([0.0, 500.0, 2000.0, 10_000.0, 50_000.0]),
                currency="EUR",
                payment_terms_days=rng.choice([0, 14, 30, 60]),
                **extra,
            )
        )

    # -- orders: steady, bursty, or stopping early (silence)
    order_span = span * rng.choice([1.0, 1.0, 0.3])
    orders: list[tuple[float, float, str]] = []
    for n in range(rng.randint(0, 28)):
        t = when(0, order_span)
        if orders and rng.random() < 0.2:  # a burst right after another order
            t = orders[-1][0] + rng.randint(60, int(DAY))
        amount = round(rng.lognormvariate(5.5, 0.8), 2) if rng.random() > 0.03 else 0.0
        if rng.random() < 0.05:
            amount = round(amount * 12, 2)  # an outlier
        orders.append((t, amount, f"o{n}"))
        out.append(_event("order", t, order_id=f"o{n}", amount=amount, status="placed"))
        if rng.random() < 0.15:
            ct = t + rng.randint(60, int(5 * DAY))
            if rng.random() < 0.2:
                ct = t - rng.randint(60, int(2 * DAY))  # cancellation before placement
            out.append(_event("order", ct, order_id=f"o{n}", amount=amount, status="cancelled"))
    for n in range(rng.choice([0, 0, 1, 2])):
        out.append(
            _event("order", when(0, span), order_id=f"ghost{n}", amount=5.0, status="cancelled")
        )

    payments: list[tuple[float, float, str]] = []

    def pay(t: float, amount: float, invoice_id: str | None = None) -> None:
        if len(payments) >= 30 or amount <= 0:  # engine remembers 32 payments for undoing
            return
        pid = f"p{len(payments)}"
        payments.append((t, amount, pid))
        extra = {"invoice_id": invoice_id} if invoice_id is not None else {}
        out.append(_event("payment", t, payment_id=pid, amount=amount, status="settled", **extra))

    # -- invoices and the payments that settle them
    if kind != "statements":
        invoices: list[tuple[float, float, float, str]] = []
        sources = [(t, a) for t, a, _ in orders if a > 0 and rng.random() < 0.7]
        sources += [
            (when(0, span), round(rng.uniform(20, 3000), 2)) for _ in range(rng.randint(1, 3))
        ]
        for n, (t, amount) in enumerate(sources[:30]):
            it = t + rng.randint(0, int(2 * DAY))
            due = it + rng.choice([-5, 0, 14, 30, 45, 60]) * DAY + rng.randint(0, int(DAY))
            invoices.append((it, amount, due, f"i{n}"))
            out.append(_event("invoice", it, invoice_id=f"i{n}", amount=amount, due_at=due))
        for it, amount, due, iid in invoices:
            if rng.random() > 0.75:
                continue
            pt = max(due + rng.randint(int(-20 * DAY), int(60 * DAY)), it + 60)
            if rng.random() < 0.06:
                pt = it - rng.randint(3600, int(3 * DAY))  # paid before it was invoiced
            ref = iid if rng.random() < 0.6 else None
            mode = rng.random()
            if mode < 0.55:
                pay(pt, amount, ref)
            elif mode < 0.75:
                first = round(amount * rng.choice([0.3, 0.5, 0.9]), 2)
                pay(pt, first, ref)
                pay(pt + rng.randint(3600, int(40 * DAY)), round(amount - first, 2), ref)
            elif mode < 0.85:
                pay(pt, round(amount * 1.25, 2), ref)  # overpaid: credit for later invoices
            else:
                pay(pt, round(amount * 0.4, 2), ref)  # partly paid, rest left open
        for _ in range(rng.choice([0, 1, 3])):
            pay(when(0, span), round(rng.uniform(10, 1500), 2))

    # -- statements, monthly, and the payments towards them
    if kind != "invoices":
        t = when(0, 30 * DAY)
        balance = round(rng.uniform(0, 3000), 2)
        levels = [0, 30, 60, 90, 120]
        level = 0
        n = 0
        while t <= T0S + span:
            r = rng.random()
            level = min(level + 1, 4) if r < 0.2 else max(level - 1, 0) if r < 0.45 else level
            dpd = levels[level]
            if dpd:
                status = "delinquent" if rng.random() < 0.8 else "revolving"
            else:
                status = rng.choice(["revolving", "revolving", "paid_in_full", "no_balance"])
            balance = 0.0 if status == "no_balance" else round(balance + rng.gauss(0, 900), 2)
            balance = max(balance, -250.0)
            out.append(
                _event(
                    "statement",
                    t,
                    statement_id=f"s{n}",
                    balance=balance,
                    days_past_due=dpd,
                    status=status,
                )
            )
            if rng.random() < 0.7:
                share = rng.choice([1.0, 0.5, 0.1, 1.2])
                pay(t + rng.randint(int(DAY), int(25 * DAY)), round(max(balance, 40.0) * share, 2))
            t += rng.choice([30, 31]) * DAY + rng.randint(0, 6 * 3600)
            n += 1

    # -- bounces and reversals
    for pt, amount, pid in list(payments):
        if rng.random() < 0.12:
            status = rng.choice(["bounced", "reversed"])
            bt = pt + rng.randint(3600, int(10 * DAY))
            out.append(_event("payment", bt, payment_id=pid, amount=amount, status=status))
    if kind == "statements":
        for n in range(rng.choice([0, 1, 2])):
            out.append(
                _event("payment", when(0, span), payment_id=f"x{n}", amount=9.0, status="bounced")
            )

    # -- collections feedback: promises to pay (some without an amount), contacts
    for _ in range(rng.choice([0, 1, 2, 4])):
        t = when(0, span)
        extra = {"promised_at": t + rng.randint(int(DAY), int(30 * DAY))}
        if rng.random() < 0.85:
            extra["promised_amount"] = round(rng.uniform(50, 2500), 2)
        out.append(_event("collection", t, action="promise_to_pay", **extra))
    for _ in range(rng.choice([0, 1])):
        out.append(_event("collection", when(0, span), action="contacted"))
    if rng.random() < 0.3:
        out.append(_event("outcome", when(0, span), outcome=rng.choice(["current", "default"])))

    # Event-time order at distinct whole seconds (shifting keeps the relative order), ids.
    out.sort(key=lambda e: e["occurred_at"])
    last = -math.inf
    for i, e in enumerate(out):
        t = max(e["occurred_at"], last + 1)
        last = t
        e["occurred_at"] = iso_ts(t)
        e["event_id"] = f"s{seed}-e{i}"
        if "due_at" in e:
            e["due_at"] = iso_ts(e["due_at"])
        if "promised_at" in e:
            e["promised_at"] = iso_ts(e["promised_at"])
        if e["type"] in {"order", "invoice", "payment", "statement"}:
            e["currency"] = "EUR"
    return out


def arrival(seed: int, events: list[dict[str, Any]]) -> list[int]:
    """In event-time order for even seeds; odd seeds hold a third of the events back by up
    to the allowed lateness (sometimes exactly that)."""
    if seed % 2 == 0:
        return list(range(len(events)))
    rng = random.Random(-seed)
    delays = [
        (rng.choice([rng.randint(1, int(LATENESS)), LATENESS]) if rng.random() < 0.35 else 0)
        for _ in events
    ]
    return late_arrival_order([_ts(e["occurred_at"]) for e in events], delays, LATENESS)


# =============================================================== the reference


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _cents(amount: float) -> int:
    return round(amount * 100)


@dataclass
class _Invoice:
    open: int
    amount: int
    due: float
    issued: float


@dataclass
class RefBook:
    """Receivables in integer cents, applied in event-time order.

    The contract: a payment settles its ``invoice_id`` first, then the oldest open invoices
    (earliest due date, then issue time, then id); what is left is unapplied credit, which
    later invoices consume, oldest payment first. A bounce or reversal re-opens exactly
    what that payment settled. An invoice is closed when nothing is left open.
    """

    inv: dict[str, _Invoice] = field(default_factory=dict)
    #: payment_id -> [unapplied cents, [(invoice_id, cents, due, issued, amount)]]
    pay: dict[str, list[Any]] = field(default_factory=dict)
    credit: int = 0
    #: (closed_at, due, amount, days_late, invoice_id)
    closed: list[tuple[float, float, int, int, str]] = field(default_factory=list)
    #: (occurred_at, cents, partial, payment_id) of settled payments not bounced
    paid: list[tuple[float, int, bool, str]] = field(default_factory=list)
    bounced: list[float] = field(default_factory=list)
    #: (occurred_at, change of the net receivable in cents)
    net: list[tuple[float, int]] = field(default_factory=list)

    def invoice(self, iid: str, amount: int, due: float, t: float) -> None:
        self.net.append((t, amount))
        inv = self.inv[iid] = _Invoice(amount, amount, due, t)
        if self.credit <= 0:
            return
        for pid, (unapplied, allocations) in self.pay.items():
            if inv.open <= 0:
                break
            if unapplied <= 0:
                continue
            used = min(unapplied, inv.open)
            self.pay[pid][0] -= used
            self.credit -= used
            inv.open -= used
            allocations.append((iid, used, inv.due, inv.issued, inv.amount))
        if inv.open <= 0:
            self._close(iid, t)

    def _close(self, iid: str, t: float) -> None:
        inv = self.inv.pop(iid)
        self.closed.append((t, inv.due, inv.amount, max(math.floor((t - inv.due) / DAY), 0), iid))

    def settle(self, pid: str, amount: int, iid: str | None, t: float) -> None:
        self.net.append((t, -amount))
        targets = sorted(
            (k for k, v in self.inv.items() if v.open > 0),
            key=lambda k: (self.inv[k].due, self.inv[k].issued, k),
        )
        if iid in targets:
            targets.remove(iid)
            targets.insert(0, iid)
        remaining = amount
        allocations = []
        for k in targets:
            if remaining <= 0:
                break
            inv = self.inv[k]
            used = min(inv.open, remaining)
            inv.open -= used
            remaining -= used
            allocations.append((k, used, inv.due, inv.issued, inv.amount))
            if inv.open <= 0:
                self._close(k, t)
        self.credit += remaining
        self.pay[pid] = [remaining, allocations]
        # Partial: the invoice it reached last is already due and still open.
        last = self.inv.get(allocations[-1][0]) if allocations else None
        partial = last is not None and last.open > 0 and last.due <= t
        self.paid.append((t, amount, partial, pid))

    def bounce(self, pid: str, amount: int, t: float) -> None:
        self.bounced.append(t)
        # The money comes back: the net receivable grows by the bounced amount, also while
        # the payment it undoes has not arrived yet (it may arrive late; the two then net out).
        self.net.append((t, amount))
        self.paid = [p for p in self.paid if p[3] != pid]
        rec = self.pay.pop(pid, None)
        if rec is None:
            return
        unapplied, allocations = rec
        self.credit = max(self.credit - unapplied, 0)
        for iid, used, due, issued, original in allocations:
            if iid in self.inv:
                self.inv[iid].open += used
            else:
                self.inv[iid] = _Invoice(used, original, due, issued)
                self.closed = [c for c in self.closed if c[4] != iid]


def _window(times: np.ndarray, now: float, width: float) -> np.ndarray:
    return (times > now - width) & (times <= now)


def _slope_per_month(points: Iterable[tuple[float, float]]) -> float | None:
    pts = list(points)
    if len(pts) < 2:
        return None
    t = np.array([p[0] for p in pts], dtype=float)
    v = np.array([p[1] for p in pts], dtype=float)
    if np.ptp(t) == 0:
        return None
    return float(np.polyfit(t - t.mean(), v, 1)[0] * MONTH)


def _bucket(days: int) -> int:
    return 0 if days <= 0 else 1 if days <= 30 else 2 if days <= 60 else 3 if days <= 90 else 4


def reference(events: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Every feature of the customer as of event time ``now``, from the raw ``events``."""
    evs = sorted(events, key=lambda e: _ts(e["occurred_at"]))  # distinct times
    f: dict[str, Any] = {}
    first_seen = min(_ts(e["occurred_at"]) for e in evs)

    # -- replay what needs event-time order
    book = RefBook()
    profile: dict[str, Any] | None = None
    statements: list[tuple[float, int, int, str]] = []  # (t, balance cents, dpd, status)
    placed: list[tuple[float, float, str]] = []
    cancelled_at: list[float] = []
    cancelled_ids: set[str] = set()
    promises: list[tuple[float, float, int]] = []
    invoiced = False
    for e in evs:
        t = _ts(e["occurred_at"])
        kind = e["type"]
        if kind == "customer":
            profile = e
        elif kind == "order":
            if e["status"] == "placed":
                placed.append((t, e["amount"], e["order_id"]))
            else:
                cancelled_at.append(t)
                cancelled_ids.add(e["order_id"])
        elif kind == "invoice":
            invoiced = True
            book.invoice(e["invoice_id"], _cents(e["amount"]), _ts(e["due_at"]), t)
        elif kind == "payment":
            if e["status"] == "settled":
                book.settle(e["payment_id"], _cents(e["amount"]), e.get("invoice_id"), t)
            else:
                book.bounce(e["payment_id"], _cents(e["amount"]), t)
        elif kind == "statement":
            statements.append((t, _cents(e["balance"]), e["days_past_due"], e["status"]))
        elif (
            kind == "collection"
            and e["action"] == "promise_to_pay"
            and e.get("promised_at") is not None
            and e.get("promised_amount") is not None
        ):
            promises.append((t, _ts(e["promised_at"]), _cents(e["promised_amount"])))
    stmts = [s for s in statements if s[0] <= now]
    latest = stmts[-1] if stmts else None

    # -- orders
    orders = [(t, a) for t, a, oid in placed if oid not in cancelled_ids and t <= now]
    ot = np.array([o[0] for o in orders], dtype=float)
    oa = np.array([o[1] for o in orders], dtype=float)
    for days in (7, 30, 90):
        m = _window(ot, now, days * DAY)
        f[f"order_count_{days}d"] = int(m.sum())
        f[f"order_amount_{days}d"] = float(oa[m].sum())
    a90 = oa[_window(ot, now, 90 * DAY)]
    f["order_amount_mean_90d"] = float(a90.mean()) if a90.size else None
    f["order_amount_std_90d"] = float(np.std(a90, ddof=1)) if a90.size >= 2 else None
    f["order_amount_zscore_90d"] = None
    if orders and orders[-1][0] > now - 90 * DAY:
        lt, la = orders[-1]
        base = oa[:-1][ot[:-1] > lt - 90 * DAY]
        if base.size >= 3 and np.std(base, ddof=1) > 0:
            f["order_amount_zscore_90d"] = float((la - base.mean()) / np.std(base, ddof=1))
    earlier = int(_window(ot, now - 30 * DAY, 90 * DAY).sum())
    f["order_frequency_change"] = f["order_count_30d"] / (earlier / 3.0) - 1.0 if earlier else None
    f["days_since_last_order"] = float((now - ot.max()) / DAY) if ot.size else None
    n_cancelled = int(_window(np.array(cancelled_at, dtype=float), now, 90 * DAY).sum())
    total = f["order_count_90d"] + n_cancelled
    f["cancellation_share_90d"] = n_cancelled / total if total else None

    # -- exposure
    open_inv = {k: v for k, v in book.inv.items()}
    if invoiced:
        open_balance = sum(v.open for v in open_inv.values()) / 100
        overdue = sum(v.open for v in open_inv.values() if v.due < now) / 100
    elif latest is not None:
        open_balance = max(latest[1], 0) / 100
        overdue = open_balance if latest[2] > 0 else 0.0
    else:
        open_balance = overdue = 0.0
    limit = profile["credit_limit"] if profile is not None else None
    f["open_balance"] = open_balance
    f["overdue_balance"] = overdue
    f["credit_limit"] = limit
    f["credit_utilisation"] = open_balance / limit if limit else None
    f["limit_headroom"] = limit - open_balance if limit is not None else None
    f["receivables_source"] = (
        "invoices" if invoiced else "statements" if latest is not None else None
    )

    def exposure_at(t: float) -> int | None:
        if invoiced:
            # The engine keeps the net receivable per day: "at t" includes all of t's day.
            day = math.floor(t / DAY)
            return sum(d for at, d in book.net if math.floor(at / DAY) <= day)
        before = [s for s in statements if s[0] <= t]
        return before[-1][1] if before else None

    current = exposure_at(now)
    for days in (30, 90):
        then = exposure_at(now - days * DAY)
        f[f"exposure_growth_{days}d"] = (
            current / then - 1.0 if current is not None and then is not None and then > 0 else None
        )

    # -- aging
    buckets = [0, 0, 0, 0, 0]
    invoice_dpd = 0
    overdue_count = 0
    month_late = 0
    for v in open_inv.values():
        if v.open <= 0:
            continue
        days = math.floor((now - v.due) / DAY) if now > v.due else 0
        month_late += days >= 30
        if v.due < now:
            overdue_count += 1
            invoice_dpd = max(invoice_dpd, days)
        buckets[_bucket(days)] += v.open
    statement_dpd = latest[2] if latest is not None else 0
    if not invoiced and latest is not None:
        buckets[_bucket(statement_dpd)] += max(latest[1], 0)
    f["days_past_due"] = max(invoice_dpd, statement_dpd)
    f["invoice_days_past_due"] = invoice_dpd
    f["statement_days_past_due"] = statement_dpd
    for name, cents in zip(
        ("aging_current", "aging_1_30", "aging_31_60", "aging_61_90", "aging_90_plus"),
        buckets,
        strict=True,
    ):
        f[name] = cents / 100
    f["overdue_invoice_count"] = overdue_count
    f["invoices_30dpd"] = month_late
    recent_closed = [c for c in book.closed if now - 90 * DAY < c[0] <= now]
    weight = sum(c[2] for c in recent_closed)
    f["avg_days_late_90d"] = (
        sum(c[2] * c[3] for c in recent_closed) / weight if weight > 0 else None
    )
    sales = f["order_amount_90d"]
    f["dso"] = open_balance / sales * 90 if sales > 0 else None

    # -- repayment
    pt = np.array([p[0] for p in book.paid], dtype=float)
    pa = np.array([p[1] for p in book.paid], dtype=float) / 100
    for days in (30, 90):
        m = _window(pt, now, days * DAY)
        f[f"payment_count_{days}d"] = int(m.sum())
        f[f"payment_amount_{days}d"] = float(pa[m].sum())
    all_invoices = [(v.due, v.amount) for v in book.inv.values()] + [
        (c[1], c[2]) for c in book.closed
    ]
    due = sum(a for d, a in all_invoices if now - 90 * DAY < d <= now)
    due += sum(max(s[1], 0) for s in stmts if s[0] > now - 90 * DAY)
    f["paid_to_due_ratio_90d"] = f["payment_amount_90d"] / (due / 100) if due > 0 else None
    window_paid = [p for p in book.paid if now - 90 * DAY < p[0] <= now]
    if not window_paid:
        f["partial_payment_share_90d"] = None
    elif invoiced:
        f["partial_payment_share_90d"] = sum(p[2] for p in window_paid) / len(window_paid)
    else:
        partial = 0
        for p in window_paid:
            before = [s for s in statements if s[0] < p[0]]
            if before and before[-1][1] > 0 and p[1] < before[-1][1]:
                partial += 1
        f["partial_payment_share_90d"] = partial / len(window_paid)
    f["bounced_payments_90d"] = int(
        _window(np.array(book.bounced, dtype=float), now, 90 * DAY).sum()
    )
    f["days_since_last_payment"] = (
        float((now - pt[pt <= now].max()) / DAY) if (pt <= now).any() else None
    )

    # -- delinquency
    reached: list[float] = []  # times at which 30, 60, 90 days past due were reached
    levels: list[int] = []
    for t, _, dpd, _ in stmts:
        for level in (30, 60, 90):
            if dpd >= level:
                reached.append(t)
                levels.append(level)
    for v in open_inv.values():
        for level in (30, 60, 90):
            if v.open > 0 and now - v.due >= level * DAY:
                reached.append(v.due + level * DAY)
                levels.append(level)
    for _, due_at, _, days_late, _ in book.closed:
        for level in (30, 60, 90):
            if days_late >= level:
                reached.append(due_at + level * DAY)
                levels.append(level)
    rt = np.array(reached, dtype=float)
    lv = np.array(levels, dtype=int)
    for level in (30, 60, 90):
        for months, width in ((6, 182 * DAY), (12, 365 * DAY)):
            m = (lv == level) & (rt <= now) & (now - rt < width)
            f[f"times_{level}dpd_{months}m"] = int(m.sum())
    obs = sorted(
        [(c[0], float(c[3])) for c in book.closed if now - 365 * DAY < c[0] <= now]
        + [(s[0], float(s[2])) for s in stmts if s[0] > now - 365 * DAY]
    )[-24:]
    recent = [o for o in obs if o[0] > now - 180 * DAY]
    f["days_late_trend"] = _slope_per_month(recent) if len(recent) >= 3 else None
    broken = 0
    for made, promised_at, amount in promises:
        if now - 90 * DAY < promised_at <= now:
            kept = sum(p[1] for p in book.paid if made <= p[0] <= promised_at)
            broken += kept < amount
    f["broken_promises_90d"] = broken
    f["open_promises"] = sum(1 for p in promises if p[1] > now)

    # -- profile
    segment = (profile or {}).get("segment") or {}
    f["segment_industry"] = segment.get("industry")
    f["segment_size"] = segment.get("size")
    f["segment_region"] = segment.get("region")
    f["rating"] = (profile or {}).get("rating")
    financials = (profile or {}).get("financials") or {}
    f["current_ratio"] = financials.get("current_ratio")
    f["debt_ratio"] = financials.get("debt_ratio")
    f["payment_terms_days"] = profile["payment_terms_days"] if profile is not None else None
    f["months_on_book"] = (now - first_seen) / MONTH

    # -- statements
    last6 = stmts[-6:]
    f["statement_balance"] = last6[-1][1] / 100 if last6 else None
    f["balance_trend"] = _slope_per_month((s[0], s[1] / 100) for s in last6)
    trend = f["balance_trend"]
    f["utilisation_trend"] = trend / limit if trend is not None and limit else None
    for status in ("revolving", "delinquent"):
        streak = 0
        for s in reversed(stmts):
            if s[3] != status:
                break
            streak += 1
        f[f"{status}_streak"] = streak
    return f


# =============================================================== observations


@dataclass(frozen=True)
class Observation:
    seed: int
    where: str
    now: float
    engine: dict[str, Any]
    ref: dict[str, Any]
    #: The features computed with what earlier computations of the script kept.
    reused: dict[str, Any]


def _later_times(seed: int, events: list[dict[str, Any]], clock: float) -> list[float]:
    """Times after the last event: every window boundary of a recent record (and the
    second before it), and a spread of later times up to more than a year."""
    rng = random.Random(seed * 7 + 1)
    bounds = set()
    for e in events:
        t = _ts(e["occurred_at"])
        for days in (7, 30, 90, 180, 182, 365):
            for edge in (t + days * DAY, t + days * DAY - 1):
                if edge > clock:
                    bounds.add(edge)
        if "due_at" in e:
            # An invoice falls due, changes aging bucket and reaches delinquency levels.
            due = _ts(e["due_at"])
            for days in (0, 1, 30, 31, 60, 61, 90, 91, 212, 395):
                for edge in (due + days * DAY, due + days * DAY + 1):
                    if edge > clock:
                        bounds.add(edge)
    picked = rng.sample(sorted(bounds), min(16, len(bounds)))
    spread = [clock + d for d in (1, 3600, DAY, 6 * DAY, 45 * DAY, 95 * DAY, 150 * DAY, 400 * DAY)]
    return sorted(set(picked) | set(spread))


@functools.cache
def observations() -> tuple[Observation, ...]:
    out: list[Observation] = []
    ctx = Context()
    for seed in SEEDS:
        events = script(seed)
        state = CustomerState("c1")
        kept: dict[str, Any] = {}
        applied: list[dict[str, Any]] = []
        for n, i in enumerate(arrival(seed, events)):
            event = events[i]
            step(state, parse(event), ctx)
            applied.append(event)
            assert state.clock is not None
            where = f"step {n}: {event['type']} {event['event_id']} at {event['occurred_at']}"
            out.append(
                Observation(
                    seed,
                    where,
                    state.clock,
                    compute(state, state.clock),
                    reference(applied, state.clock),
                    compute(state, state.clock, None, kept),
                )
            )
        assert state.clock is not None
        # No new events: advance to window edges, and through the customer's own wake-ups.
        targets = _later_times(seed, events, state.clock)
        wakeups = 0
        while targets:
            wake = state.next_wakeup
            if wake is not None and wake < targets[0] and wakeups < 15:
                now, label = wake, "wake-up"
                wakeups += 1
            else:
                now, label = targets.pop(0), "advance"
            advance(state, now, ctx)
            where = f"{label} to {iso_ts(now)} (no new events)"
            out.append(
                Observation(
                    seed,
                    where,
                    now,
                    compute(state, now),
                    reference(events, now),
                    compute(state, now, None, kept),
                )
            )
    return tuple(out)


# =============================================================== the tests


#: Everything but the online detectors' scores, which learn in arrival order and are
#: checked against their own definitions in test_detectors.py and test_step.py, and the
#: credit report and assessment features, checked in test_credit_policy.py.
OFFLINE = sorted(
    name for name, f in REGISTRY.items() if f.group not in ("detectors", "credit", "assessment")
)


def test_the_scripts_cover_what_the_features_read() -> None:
    """The scripts are rich enough that every feature takes several distinct values."""
    obs = observations()
    assert len(obs) > 2000
    for name in OFFLINE:
        values = {repr(o.ref[name]) for o in obs}
        assert len(values) >= 2, (name, values)
    kinds = {e["type"] for seed in SEEDS for e in script(seed)}
    assert kinds == {
        "customer",
        "order",
        "invoice",
        "payment",
        "statement",
        "collection",
        "outcome",
    }


def test_the_reference_covers_every_feature() -> None:
    ref = observations()[0].ref
    assert set(ref) == set(OFFLINE)
    assert set(observations()[0].engine) == set(REGISTRY)


@pytest.mark.parametrize("name", OFFLINE)
def test_feature_matches_the_reference_after_every_step(name: str) -> None:
    mismatches = [
        f"seed {o.seed}, {o.where}, now {iso_ts(o.now)}: engine {o.engine.get(name)!r}, "
        f"reference {o.ref.get(name, '<no reference>')!r}"
        for o in observations()
        if name not in o.ref or not same_value(o.engine.get(name), o.ref[name])
    ]
    total = len(observations())
    assert not mismatches, f"{name}: {len(mismatches)} of {total} differ; first:\n" + "\n".join(
        mismatches[:4]
    )


def test_reused_groups_give_what_is_computed_afresh() -> None:
    """Groups kept from earlier computations (of the same script, through its events,
    window edges and wake-ups) give every feature as a computation from the state alone."""
    mismatches = [
        f"seed {o.seed}, {o.where}: {name} reused {o.reused.get(name)!r}, "
        f"afresh {o.engine.get(name)!r}"
        for o in observations()
        for name in sorted(set(o.engine) | set(o.reused))
        if not same_value(o.reused.get(name), o.engine.get(name))
    ]
    assert not mismatches, f"{len(mismatches)} differ; first:\n" + "\n".join(mismatches[:6])


def test_what_is_derived_from_the_orders_is_kept_in_step_through_steps_and_expiry() -> None:
    """The running totals and the encoded orders that ``step`` and expiry keep in step
    (orders arriving late, cancelled, expiring) are what is built afresh from the orders."""
    ctx = Context()
    checked = 0
    for seed in SEEDS:
        events = script(seed)
        state = CustomerState("c1")
        for i in arrival(seed, events):
            totals, encoded = state.order_totals, state.orders_encoded
            step(state, parse(events[i]), ctx)
            n = len(state.orders)
            # Kept in step, not built afresh (a cancellation drops them: they are built
            # afresh when next read).
            if events[i].get("status") != "cancelled":
                assert totals is None or state.order_totals is totals
                assert encoded is None or state.orders_encoded is encoded
            assert state.orders_encoded is None or len(state.orders_encoded) == n
            kept = order_totals(state)
            fresh = RunningTotals(o[1] for o in state.orders)
            assert [kept.mean_std(lo, n) for lo in range(n)] == [
                fresh.mean_std(lo, n) for lo in range(n)
            ]
            assert encode_after(state) == encode(state)
            if state.orders:  # (no orders: none encoded)
                assert state.orders_encoded == [orjson.dumps(o) for o in state.orders]
            checked += n
    assert checked > 1000


# --------------------------------------------------------------- exact window edges


def _placed(t: float, oid: str, amount: float) -> dict[str, Any]:
    return {
        "type": "order",
        "event_id": f"{oid}@{t}",
        "customer_id": "c1",
        "occurred_at": iso_ts(t),
        "order_id": oid,
        "amount": amount,
        "currency": "EUR",
        "status": "placed",
    }


def _paid(t: float, pid: str, amount: float, status: str = "settled") -> dict[str, Any]:
    return {
        "type": "payment",
        "event_id": f"{pid}:{status}@{t}",
        "customer_id": "c1",
        "occurred_at": iso_ts(t),
        "payment_id": pid,
        "amount": amount,
        "currency": "EUR",
        "status": status,
    }


@pytest.mark.parametrize("width", [7, 30, 90])
def test_an_order_leaves_its_window_exactly_width_days_later_without_new_events(
    width: int,
) -> None:
    ctx = Context()
    t0 = T0S + 1234
    state = CustomerState("c1")
    step(state, parse(_placed(t0, "o1", 100.0)), ctx)
    step(state, parse(_placed(t0 + 2 * DAY, "o2", 50.0)), ctx)
    count, amount = f"order_count_{width}d", f"order_amount_{width}d"
    for now, n, total in [
        (t0 + width * DAY - 1, 2, 150.0),
        (t0 + width * DAY, 1, 50.0),  # (now - width, now]: o1 is out exactly now
        (t0 + (width + 2) * DAY - 1, 1, 50.0),
        (t0 + (width + 2) * DAY, 0, 0.0),
    ]:
        advance(state, now, ctx)
        got = compute(state, state.clock or now)
        assert (got[count], got[amount]) == (n, pytest.approx(total)), (width, now - t0)
        want = reference([_placed(t0, "o1", 100.0), _placed(t0 + 2 * DAY, "o2", 50.0)], now)
        assert (want[count], want[amount]) == (n, pytest.approx(total))


def test_payments_and_bounces_leave_their_windows_exactly_without_new_events() -> None:
    ctx = Context()
    t0 = T0S + 99
    state = CustomerState("c1")
    for event in (_paid(t0, "p1", 80.0), _paid(t0 + DAY, "p2", 20.0, "bounced")):
        step(state, parse(event), ctx)
    checks = [
        (t0 + 30 * DAY - 1, 1, 80.0, 1, 1),
        (t0 + 30 * DAY, 0, 0.0, 1, 1),
        (t0 + 90 * DAY - 1, 0, 0.0, 1, 1),
        (t0 + 90 * DAY, 0, 0.0, 0, 1),
        (t0 + 91 * DAY - 1, 0, 0.0, 0, 1),
        (t0 + 91 * DAY, 0, 0.0, 0, 0),
    ]
    for now, count_30, amount_30, count_90, bounced in checks:
        advance(state, now, ctx)
        got = compute(state, now)
        assert got["payment_count_30d"] == count_30, now - t0
        assert got["payment_amount_30d"] == pytest.approx(amount_30), now - t0
        assert got["payment_count_90d"] == count_90, now - t0
        assert got["bounced_payments_90d"] == bounced, now - t0


# ----------------------------------------------------- minimal cases found by the reference


def test_silence_is_measured_however_long_it_lasts() -> None:
    """``days_since_last_order`` / ``days_since_last_payment`` are the silence features: a
    customer who stopped ordering 200 days ago has 200 days of silence, not ``None`` (the
    records a window no longer needs must not take the latest one with them)."""
    ctx = Context()
    t0 = T0S
    state = CustomerState("c1")
    step(state, parse(_placed(t0, "o1", 100.0)), ctx)
    step(state, parse(_paid(t0 + 10, "p1", 40.0)), ctx)
    got = {}
    for days in (100, 126, 128, 200, 365, 367, 500):
        advance(state, t0 + days * DAY, ctx)
        f = compute(state, t0 + days * DAY)
        got[days] = (f["days_since_last_order"], f["days_since_last_payment"])
    want = {d: (pytest.approx(d), pytest.approx(d - 10 / DAY)) for d in got}
    assert got == want


def test_order_zscore_is_stable_while_no_order_arrives() -> None:
    """The z-score compares the latest order with the other orders of the 90 days before
    *it*; with no new order it does not change as the clock moves on, until the latest
    order is 90 days old and there is nothing new to compare."""
    ctx = Context()
    amounts = [(0, 100.0), (20, 900.0), (45, 110.0), (50, 90.0), (60, 400.0)]
    events = [_placed(T0S + d * DAY, f"o{d}", a) for d, a in amounts]
    state = CustomerState("c1")
    for event in events:
        step(state, parse(event), ctx)
    base = np.array([a for d, a in amounts[:-1]])
    want = (400.0 - base.mean()) / np.std(base, ddof=1)
    for days in (60, 100, 140, 149):
        advance(state, T0S + days * DAY, ctx)
        got = compute(state, T0S + days * DAY)["order_amount_zscore_90d"]
        assert got == pytest.approx(want), days
        assert reference(events, T0S + days * DAY)["order_amount_zscore_90d"] == pytest.approx(want)
    for days in (150, 200, 400):
        advance(state, T0S + days * DAY, ctx)
        assert compute(state, T0S + days * DAY)["order_amount_zscore_90d"] is None, days
        assert reference(events, T0S + days * DAY)["order_amount_zscore_90d"] is None


def _invoice(
    t: float, iid: str, amount: float, due: float, eid: str | None = None
) -> dict[str, Any]:
    return {
        "type": "invoice",
        "event_id": eid or f"{iid}@{t}",
        "customer_id": "c1",
        "occurred_at": iso_ts(t),
        "invoice_id": iid,
        "amount": amount,
        "currency": "EUR",
        "due_at": iso_ts(due),
    }


def test_exposure_growth_is_none_when_the_receivable_was_paid_down_to_zero() -> None:
    """0.1 + 0.2 invoiced and 0.3 paid leave nothing owed; 30 days later a new invoice of
    100 must not make the growth 1.8e18 (float dust of 5.6e-17 taken as "30 days ago")."""
    ctx = Context()
    events = [
        _invoice(T0S, "i1", 0.1, T0S + 60 * DAY),
        _invoice(T0S + DAY / 2, "i2", 0.2, T0S + 60 * DAY),
        _paid(T0S + DAY, "p1", 0.3),
        _invoice(T0S + 35 * DAY, "i3", 100.0, T0S + 90 * DAY),
    ]
    state = CustomerState("c1")
    for event in events:
        step(state, parse(event), ctx)
    assert reference(events, T0S + 35 * DAY)["exposure_growth_30d"] is None
    assert compute(state, T0S + 35 * DAY)["exposure_growth_30d"] is None


@pytest.mark.parametrize(("corrected", "growth"), [(100.0, 0.0), (150.0, 0.5)])
def test_a_resent_invoice_counts_once_in_the_exposure(corrected: float, growth: float) -> None:
    """A re-sent invoice corrects the amount (EVENTS.md); the net receivable follows the
    correction, it does not add the invoice a second time."""
    ctx = Context()
    state = CustomerState("c1")
    step(state, parse(_invoice(T0S, "i1", 100.0, T0S + 300 * DAY)), ctx)
    resent = _invoice(T0S + 35 * DAY, "i1", corrected, T0S + 300 * DAY, eid="resent")
    step(state, parse(resent), ctx)
    f = compute(state, T0S + 35 * DAY)
    assert f["open_balance"] == pytest.approx(corrected)
    assert f["exposure_growth_30d"] == pytest.approx(growth)


def _statement(t: float, n: int, dpd: int, status: str) -> dict[str, Any]:
    return {
        "type": "statement",
        "event_id": f"s{n}",
        "customer_id": "c1",
        "occurred_at": iso_ts(t),
        "statement_id": f"s{n}",
        "balance": 500.0,
        "currency": "EUR",
        "days_past_due": dpd,
        "status": status,
    }


def test_weekly_statements_count_over_the_whole_12_months() -> None:
    """Statements are periodic (also weekly AR aging snapshots, EVENTS.md): the 12-month
    delinquency counts and the streaks cover every statement of the period, not the
    last 13 statements."""
    ctx = Context()
    events = [
        _statement(
            T0S + 7 * k * DAY, k, 30 if k < 10 else 0, "delinquent" if k < 10 else "revolving"
        )
        for k in range(30)
    ]
    state = CustomerState("c1")
    for event in events:
        step(state, parse(event), ctx)
    now = T0S + 7 * 29 * DAY
    want = reference(events, now)
    assert (want["times_30dpd_12m"], want["revolving_streak"]) == (10, 20)
    got = compute(state, now)
    assert (got["times_30dpd_12m"], got["revolving_streak"]) == (10, 20)
