"""One simulated customer's event stream, and the portfolio's streams merged in time.

:func:`generate` turns the plan of :mod:`.model` into the input events of
EVENTS.md, in event-time order.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, TypeAlias

from stream_risk.tools.simulate.model import (
    DEFAULT_START,
    RATINGS,
    CustomerProfile,
    Event,
    aware_start,
    plan_portfolio,
    whole_seconds,
)

# --- behaviour ------------------------------------------------------------------------------------

_ORDER_AMOUNT_SIGMA = 0.55  # lognormal spread of order amounts around the customer's mean
_CANCEL_PROBABILITY = 0.03
_HEALTHY_LATE_PROBABILITY = 0.04  # an occasional invoice slips 10..35 days (dispute, holidays)
_HEALTHY_BOUNCE_PROBABILITY = 0.005
_HEALTHY_RETRY_PROBABILITY = 1.0  # a sound customer always pays a returned payment again
_DISTRESSED_UNPAID_PROBABILITY = 0.25  # invoices simply left unpaid while in distress
_DISTRESSED_PARTIAL_PROBABILITY = 0.5
_DISTRESSED_BOUNCE_PROBABILITY = 0.2
_DISTRESSED_RETRY_PROBABILITY = 0.4
_UNREFERENCED_PAYMENT_PROBABILITY = 0.1  # payments without invoice_id (settle oldest first)


# --- one customer's event stream ------------------------------------------------------------------


def _ts(when: datetime) -> str:
    """RFC 3339 with offset, to the second."""
    return when.isoformat(timespec="seconds")


def _money(cents: int) -> float:
    return round(cents / 100, 2)


@dataclass(slots=True)
class _Receivable:
    """An invoice as the customer's account sees it."""

    invoice_id: str
    issued_at: datetime
    due_at: datetime
    outstanding: int  # cents; integers so that partial payments add up exactly


# A scheduled step of one customer: when, tie-breaker, handler, handler arguments.
_Step: TypeAlias = tuple[datetime, int, Callable[..., Event | None], tuple[Any, ...]]


@dataclass(slots=True)
class _CustomerSimulation:
    """Discrete-event simulation of one customer's account, emitted lazily in time order.

    Steps (a day's orders, an invoice, a payment, a statement ...) sit in a small heap;
    handling one may schedule later ones (an order schedules its invoice, an invoice its
    payments). Account state is updated in event-time order, so each statement reports
    exactly what the events before it imply.
    """

    profile: CustomerProfile
    currency: str
    start: datetime
    end: datetime
    rng: random.Random = field(init=False)
    steps: list[_Step] = field(default_factory=list)
    seq: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    open_items: dict[str, _Receivable] = field(default_factory=dict)  # oldest first
    receivables: dict[str, _Receivable] = field(default_factory=dict)
    last_payment_at: datetime | None = None
    last_statement_at: datetime | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.profile.seed)

    # -- plumbing

    def _schedule(self, when: datetime, handler: Callable[..., Event | None], *args: Any) -> None:
        """Queue a step; anything at or after the end of the horizon never happens."""
        if when >= self.end:
            return
        self.seq += 1
        heapq.heappush(self.steps, (when, self.seq, handler, args))

    def _next(self, kind: str) -> int:
        n = self.counters.get(kind, 0) + 1
        self.counters[kind] = n
        return n

    def _envelope(self, kind: str, when: datetime, counter: str | None = None) -> Event:
        n = self._next(counter or kind)
        return {
            "type": kind,
            "event_id": f"{self.profile.customer_id}-{counter or kind}-{n}",
            "customer_id": self.profile.customer_id,
            "occurred_at": _ts(when),
        }

    def _doc_id(self, prefix: str, n: int) -> str:
        """A document number as an ERP prints it, e.g. ``INV-0007-00012``."""
        return f"{prefix}-{self.profile.number:04d}-{n:05d}"

    def events(self, outcomes: bool) -> Iterator[tuple[datetime, Event]]:
        """The customer's events as ``(event time, event)``, in time order."""
        yield self.start, self._onboarding(self.start)
        # A bureau report soon after onboarding; a deteriorating customer's next one shows it.
        self._schedule(self.start + timedelta(days=1), self._credit_report)
        if self.profile.deteriorates_at is not None:
            self._schedule(self.profile.deteriorates_at + timedelta(days=30), self._credit_report)
        midnight = self.start.replace(hour=0, minute=0, second=0, microsecond=0)
        self._schedule(midnight, self._business_day)
        self._schedule(self._next_statement_time(self.start), self._statement)
        if self.profile.cures_at is not None:
            self._schedule(self.profile.cures_at, self._cure)
        while self.steps:
            when, _, handler, args = heapq.heappop(self.steps)
            event = handler(when, *args)
            if event is not None:
                yield when, event
        if outcomes:
            yield self.end, self._outcome(self.end)

    # -- steps

    def _onboarding(self, when: datetime) -> Event:
        p = self.profile
        event = self._envelope("customer", when)
        event.update(
            credit_limit=p.credit_limit,
            currency=self.currency,
            payment_terms_days=p.payment_terms_days,
            segment={"industry": p.industry, "size": p.size, "region": p.region},
            rating=p.rating,
            financials={**p.financials, **self._statements()},
        )
        return event

    def _statements(self) -> dict[str, float]:
        """Income statement, balance sheet and cash flow figures beside the ratios.

        Drawn from a stream of their own, so adding them changes no other event.
        """
        p = self.profile
        rng = random.Random(p.seed ^ 0x5EED)
        revenue = p.financials["revenue"]
        assets = revenue * rng.uniform(0.4, 0.9)
        debt = assets * p.financials["debt_ratio"]
        margin = rng.gauss(0.0 if p.deteriorating else 0.06, 0.03)
        interest = debt * 0.05
        net_income = revenue * margin
        return {
            "net_income": round(net_income, -2),
            "ebit": round(net_income * 1.3 + interest, -2),
            "interest_expense": round(interest, -2),
            "operating_cash_flow": round(net_income * 1.2 + revenue * 0.02, -2),
            "total_debt": round(debt, -3),
            "equity": round(assets - debt, -3),
        }

    def _credit_report(self, when: datetime) -> Event:
        """A bureau report: a score on 300..850 near the rating; records once in distress."""
        p = self.profile
        rng = random.Random(p.seed ^ 0xB0EA ^ int(when.timestamp()))
        distress = p.in_distress(when)
        centre = 780 - 60 * RATINGS.index(p.rating) - (120 if distress else 0)
        event = self._envelope("credit_report", when)
        event.update(
            report_id=self._doc_id("CR", self.counters["credit_report"]),
            source="simulated-bureau",
            report_date=_ts(when - timedelta(days=1)),
            score=float(min(850, max(300, round(rng.gauss(centre, 30))))),
            score_min=300.0,
            score_max=850.0,
            currency=self.currency,
            reported_limits=float(round(p.credit_limit * rng.uniform(1.0, 4.0), -2)),
            arrears_elsewhere=float(round(p.credit_limit * rng.uniform(0.1, 0.6), -2))
            if distress
            else 0.0,
            lawsuits=rng.randint(1, 3) if distress else 0,
            tax_arrears=rng.randint(0, 1) if distress else 0,
        )
        return event

    def _business_day(self, when: datetime) -> None:
        """Draw the day's orders (none at weekends) and schedule the next day."""
        if when.weekday() < 5:
            for _ in range(_poisson(self.rng, self.profile.orders_per_week / 5)):
                # Office hours: orders come in between 07:00 and 19:00.
                at = when + timedelta(seconds=self.rng.randint(7 * 3600, 19 * 3600))
                if at > self.start:
                    self._schedule(at, self._order)
        self._schedule(when + timedelta(days=1), self._business_day)
        return None

    def _order(self, when: datetime) -> Event:
        p = self.profile
        mean = p.mean_order_amount * (p.order_spike if p.in_distress(when) else 1.0)
        mu = math.log(mean) - _ORDER_AMOUNT_SIGMA**2 / 2  # so that the mean is `mean`
        cents = max(1_000, round(self.rng.lognormvariate(mu, _ORDER_AMOUNT_SIGMA) * 100))
        event = self._envelope("order", when)
        order_id = self._doc_id("SO", self.counters["order"])
        event.update(
            order_id=order_id,
            amount=_money(cents),
            currency=self.currency,
            status="placed",
            channel=p.channel,
        )
        if self.rng.random() < _CANCEL_PROBABILITY:
            # Cancelled before it ships, so it is never invoiced.
            delay = timedelta(minutes=self.rng.randint(30, 36 * 60))
            self._schedule(when + delay, self._cancellation, order_id, cents)
        else:
            delay = timedelta(minutes=self.rng.randint(4 * 60, 72 * 60))  # invoiced on shipment
            self._schedule(when + delay, self._invoice, order_id, cents)
        return event

    def _cancellation(self, when: datetime, order_id: str, cents: int) -> Event:
        event = self._envelope("order", when, counter="cancel")
        event.update(
            order_id=order_id,
            amount=_money(cents),
            currency=self.currency,
            status="cancelled",
            channel=self.profile.channel,
        )
        return event

    def _invoice(self, when: datetime, order_id: str, cents: int) -> Event:
        p = self.profile
        event = self._envelope("invoice", when)
        invoice_id = self._doc_id("INV", self.counters["invoice"])
        due = when + timedelta(days=p.payment_terms_days)
        event.update(
            invoice_id=invoice_id,
            amount=_money(cents),
            currency=self.currency,
            due_at=_ts(due),
            order_id=order_id,
        )
        receivable = _Receivable(invoice_id, when, due, cents)
        self.receivables[invoice_id] = receivable
        self.open_items[invoice_id] = receivable
        self._plan_payments(receivable)
        return event

    def _plan_payments(self, item: _Receivable) -> None:
        """Decide when (and how) the invoice will be paid, as the customer would."""
        p, rng = self.profile, self.rng
        offset = rng.gauss(p.payment_delay_days, 3.0)
        if rng.random() < _HEALTHY_LATE_PROBABILITY:
            offset += rng.uniform(10.0, 35.0)
        usual = item.due_at + timedelta(days=offset)
        # Nobody pays an invoice in the first hours after receiving it.
        usual = max(usual, item.issued_at + timedelta(days=1))
        if not p.in_distress(usual):
            self._schedule(whole_seconds(usual), self._payment, item.invoice_id, None, False)
            return
        # In distress: some invoices are left unpaid, the rest paid late, often in part.
        if rng.random() < _DISTRESSED_UNPAID_PROBABILITY:
            return
        late = item.due_at + timedelta(days=rng.uniform(20.0, 120.0), hours=rng.uniform(0, 10))
        late = whole_seconds(late)
        if rng.random() < _DISTRESSED_PARTIAL_PROBABILITY:
            self._schedule(late, self._payment, item.invoice_id, rng.uniform(0.3, 0.7), True)
            rest = late + timedelta(days=rng.uniform(15.0, 60.0))
            self._schedule(whole_seconds(rest), self._payment, item.invoice_id, None, True)
        else:
            self._schedule(late, self._payment, item.invoice_id, None, True)

    def _payment(
        self, when: datetime, invoice_id: str, fraction: float | None, distressed: bool
    ) -> Event | None:
        """Pay ``fraction`` of what is still open on the invoice (all of it if ``None``)."""
        if self.profile.paying_stopped(when):
            return None
        item = self.receivables[invoice_id]
        if item.outstanding <= 0:  # settled meanwhile (a cure, or a re-presented payment)
            return None
        cents = item.outstanding if fraction is None else max(1, round(item.outstanding * fraction))
        event = self._envelope("payment", when)
        payment_id = self._doc_id("PAY", self.counters["payment"])
        event.update(payment_id=payment_id, amount=_money(cents), currency=self.currency)
        event["status"] = "settled"
        # Some remittances carry no invoice reference; the contract then settles the oldest open
        # invoice first, so drop the reference only where that is this very invoice.
        oldest = next(iter(self.open_items))
        referenced = oldest != invoice_id or self.rng.random() >= _UNREFERENCED_PAYMENT_PROBABILITY
        if referenced:
            event["invoice_id"] = invoice_id
        event["method"] = self.profile.payment_method
        self._settle(item, cents, when)
        bounce = _DISTRESSED_BOUNCE_PROBABILITY if distressed else _HEALTHY_BOUNCE_PROBABILITY
        if self.rng.random() < bounce:
            returned = when + timedelta(days=self.rng.uniform(2.0, 6.0))
            self._schedule(
                whole_seconds(returned),
                self._bounce,
                payment_id,
                invoice_id,
                cents,
                referenced,
                distressed,
            )
        return event

    def _settle(self, item: _Receivable, cents: int, when: datetime) -> None:
        item.outstanding -= cents
        self.last_payment_at = when
        if item.outstanding <= 0:
            del self.open_items[item.invoice_id]

    def _bounce(
        self,
        when: datetime,
        payment_id: str,
        invoice_id: str,
        cents: int,
        referenced: bool,
        distressed: bool,
    ) -> Event:
        """The bank returns a payment: the invoice is open again by that amount."""
        event = self._envelope("payment", when, counter="bounce")
        event.update(payment_id=payment_id, amount=_money(cents), currency=self.currency)
        event["status"] = "bounced"
        if referenced:
            event["invoice_id"] = invoice_id
        event["method"] = self.profile.payment_method
        item = self.receivables[invoice_id]
        item.outstanding += cents
        if invoice_id not in self.open_items:
            self.open_items[invoice_id] = item
            # Keep oldest-first order: the contract's unreferenced payments depend on it.
            ordered = sorted(self.open_items.values(), key=lambda r: (r.issued_at, r.invoice_id))
            self.open_items = {r.invoice_id: r for r in ordered}
        retry = _DISTRESSED_RETRY_PROBABILITY if distressed else _HEALTHY_RETRY_PROBABILITY
        if self.rng.random() < retry:
            again = when + timedelta(days=self.rng.uniform(3.0, 21.0))
            self._schedule(whole_seconds(again), self._payment, invoice_id, None, distressed)
        return event

    def _cure(self, when: datetime) -> None:
        """A refinancing comes through: everything open is paid within a few days."""
        for item in list(self.open_items.values()):
            at = when + timedelta(days=self.rng.uniform(0.0, 5.0))
            self._schedule(whole_seconds(at), self._payment, item.invoice_id, None, False)
        return None

    def _next_statement_time(self, after: datetime) -> datetime:
        day = self.profile.statement_day
        year, month = after.year, after.month
        while True:
            at = after.replace(
                year=year, month=month, day=day, hour=3, minute=0, second=0, microsecond=0
            )
            if at > after:
                return at
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def _statement(self, when: datetime) -> Event:
        """Month-end AR snapshot: open balance and the age of the oldest overdue invoice."""
        balance = overdue = 0
        oldest_due: datetime | None = None
        for item in self.open_items.values():
            balance += item.outstanding
            if item.due_at < when:
                overdue += item.outstanding
                if oldest_due is None or item.due_at < oldest_due:
                    oldest_due = item.due_at
        days_past_due = (when - oldest_due).days if oldest_due is not None else 0
        if balance <= 0:
            paid_lately = self.last_payment_at is not None and (
                self.last_statement_at is None or self.last_payment_at > self.last_statement_at
            )
            status = "paid_in_full" if paid_lately else "no_balance"
        else:
            status = "delinquent" if days_past_due > 0 else "revolving"
        event = self._envelope("statement", when)
        event.update(
            statement_id=self._doc_id("ST", self.counters["statement"]),
            balance=_money(balance),
            currency=self.currency,
            days_past_due=days_past_due,
            status=status,
            minimum_due=_money(overdue),  # what is past due must be paid now
        )
        self.last_statement_at = when
        self._schedule(self._next_statement_time(when), self._statement)
        return event

    def _outcome(self, when: datetime) -> Event:
        p = self.profile
        cured = p.cures_at is not None and p.cures_at < self.end
        event = self._envelope("outcome", when)
        event["outcome"] = "default" if p.deteriorating and not cured else "current"
        return event


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method; fine for the small daily rates used here)."""
    limit = math.exp(-lam)
    k, product = 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def generate(
    customers: int = 300,
    days: int = 180,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    currency: str = "EUR",
    deteriorating_share: float = 0.1,
    outcomes: bool = False,
) -> Iterator[Event]:
    """Simulate a portfolio: its contract events in non-decreasing event time.

    Parameters
    ----------
    customers : int
        Number of customers (``sim-0001`` ...).
    days : int
        Simulated horizon in days from ``start``; nothing happens at or after its end
        except the ``outcome`` events.
    seed : int
        Seed; the same arguments always give the same events.
    start : datetime
        Start of the horizon (naive means UTC); timestamps carry its offset.
    currency : str
        Currency of every amount.
    deteriorating_share : float
        Share of customers that deteriorate (see :func:`plan_portfolio`). Their invoices
        only reach 90+ days overdue if ``days`` leaves room for payment terms plus 90 days
        (about 180 days or more).
    outcomes : bool
        Also yield one ``outcome`` event per customer at the end of the horizon:
        ``default`` for deteriorating customers that did not cure, ``current`` otherwise.

    Yields
    ------
    dict
        JSON-ready events of the contract (EVENTS.md), RFC 3339 timestamps with offset,
        amounts rounded to cents.

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    start = aware_start(start)
    profiles = plan_portfolio(customers, days, seed, start, deteriorating_share)
    end = start + timedelta(days=days)
    streams = [
        _CustomerSimulation(profile, currency, start, end).events(outcomes) for profile in profiles
    ]
    # Each stream is in time order, so a k-way merge orders the portfolio while holding only
    # one pending event per customer; ties keep customer order, which keeps it deterministic.
    for _, event in heapq.merge(*streams, key=itemgetter(0)):
        yield event
