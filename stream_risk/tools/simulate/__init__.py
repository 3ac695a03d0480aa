"""Realistic credit-risk traffic: a simulated B2B portfolio as contract events.

:func:`generate` yields the input events of EVENTS.md (plain, JSON-ready
dicts) for a portfolio of trade-credit customers, in event-time order:

* one ``customer`` event per customer at the start (credit limit, terms,
  segment, rating, financials),
* ``order`` events on business days (a Poisson number per day, lognormal
  amounts around the customer's usual order size), a few of them
  ``cancelled`` again shortly after,
* an ``invoice`` per order that was not cancelled, due after the payment terms,
* ``payment`` events that settle the invoices, mostly around the due date,
  now and then a ``bounced`` one that is presented again later,
* a monthly ``statement`` (an AR aging snapshot: open balance, days past due
  of the oldest open invoice),
* with ``outcomes=True``, one ``outcome`` per customer at the end.

A share of the customers deteriorates from a random point in time on: their
orders spike (x3..x5), they pay 20..120 days late, in part, with bounced
payments, and finally stop paying, so invoices go 30+ and 90+ days overdue.
Most of them end in ``default``; a few catch up on everything (a "cure")
before the horizon ends and end ``current``. :func:`plan_portfolio` exposes
who is who, for tests and demos.

:func:`produce` sends events to Kafka, :func:`write_jsonl` to a ``.jsonl`` or
``.jsonl.gz`` file, both optionally paced (a fixed rate, or event time
replayed at a speed-up). :func:`configure_parser` and :func:`run` are the
``stream-risk simulate`` command; ``python -m stream_risk.tools.simulate`` runs it
standalone.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import heapq
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, TypeAlias

import kafka.errors
import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from stream_risk.kafka_security import KafkaSecurity

#: One event of the wire contract, as a JSON-ready dict.
Event: TypeAlias = dict[str, Any]

#: Where a simulated portfolio starts unless told otherwise.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

# --- portfolio make-up ---------------------------------------------------------------------------

INDUSTRIES = (
    "manufacturing",
    "wholesale",
    "retail",
    "construction",
    "transport_logistics",
    "food_beverage",
    "healthcare",
    "it_services",
    "automotive",
    "agriculture",
    "hospitality",
)
REGIONS = ("DACH", "Benelux", "France", "Iberia", "Italy", "Nordics", "CEE", "UK_IE")
PAYMENT_TERMS_DAYS = (30, 45, 60)
RATINGS = ("AA", "A", "BBB", "BB", "B", "CCC")
# Customers headed for trouble are already a little weaker on paper, as in real books, but
# not so much that the rating alone gives them away.
_RATING_WEIGHTS_HEALTHY = (5, 20, 35, 25, 12, 3)
_RATING_WEIGHTS_DETERIORATING = (2, 10, 28, 30, 20, 10)
CHANNELS = ("edi", "web_portal", "sales_rep", "email")
PAYMENT_METHODS = ("sepa_credit_transfer", "sepa_direct_debit", "card", "cheque")


@dataclass(frozen=True, slots=True)
class _SizeBand:
    """How a company size translates into trading volume with us."""

    weight: float
    mean_order_amount: float
    orders_per_week: float


SIZE_BANDS: Mapping[str, _SizeBand] = {
    "micro": _SizeBand(0.30, 600.0, 1.0),
    "small": _SizeBand(0.35, 2_500.0, 1.8),
    "medium": _SizeBand(0.25, 9_000.0, 3.0),
    "large": _SizeBand(0.10, 30_000.0, 5.0),
}

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
_CURE_PROBABILITY = 0.15  # deteriorating customers that catch up on everything later
_UNREFERENCED_PAYMENT_PROBABILITY = 0.1  # payments without invoice_id (settle oldest first)

_PROGRESS_EVERY_S = 2.0


# --- the portfolio plan ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """One simulated customer: static profile and behaviour parameters.

    Attributes
    ----------
    customer_id : str
        ``sim-0001`` style id.
    number : int
        1-based position in the portfolio (used in document numbers).
    industry, size, region : str
        The segment.
    rating : str
        External rating at onboarding (``AA`` .. ``CCC``).
    payment_terms_days : int
        Net payment terms: 30, 45 or 60 days.
    credit_limit : float
        The approved credit limit.
    mean_order_amount : float
        Usual order size while healthy.
    orders_per_week : float
        Mean order frequency.
    channel, payment_method : str
        Preferred order channel and payment method.
    payment_delay_days : float
        Habitual days paid after (positive) or before (negative) the due date.
    statement_day : int
        Day of month (1..28) the AR statement is cut.
    financials : dict
        Balance-sheet figures reported at onboarding.
    seed : int
        Seed of the customer's own random stream.
    deteriorates_at : datetime or None
        When the customer starts to deteriorate; ``None`` for healthy customers.
    stops_paying_at : datetime or None
        When a deteriorating customer stops paying altogether.
    cures_at : datetime or None
        When a deteriorating customer catches up on everything (may lie after
        the horizon, then it never happens).
    order_spike : float
        Factor on order amounts while deteriorating (3..5).
    """

    customer_id: str
    number: int
    industry: str
    size: str
    region: str
    rating: str
    payment_terms_days: int
    credit_limit: float
    mean_order_amount: float
    orders_per_week: float
    channel: str
    payment_method: str
    payment_delay_days: float
    statement_day: int
    financials: dict[str, float]
    seed: int
    deteriorates_at: datetime | None = None
    stops_paying_at: datetime | None = None
    cures_at: datetime | None = None
    order_spike: float = 1.0

    @property
    def deteriorating(self) -> bool:
        """Whether the customer deteriorates at some point."""
        return self.deteriorates_at is not None

    def in_distress(self, when: datetime) -> bool:
        """Whether the customer is deteriorating at ``when`` (and not cured yet)."""
        if self.deteriorates_at is None or when < self.deteriorates_at:
            return False
        return self.cures_at is None or when < self.cures_at

    def paying_stopped(self, when: datetime) -> bool:
        """Whether the customer has stopped paying at ``when`` (and not cured yet)."""
        if self.stops_paying_at is None or when < self.stops_paying_at:
            return False
        return self.cures_at is None or when < self.cures_at


def _check_portfolio_args(customers: int, days: int, deteriorating_share: float) -> None:
    if customers < 0:
        raise ValueError(f"customers must be >= 0, got {customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not 0.0 <= deteriorating_share <= 1.0:
        raise ValueError(f"deteriorating_share must be in [0, 1], got {deteriorating_share}")


def _aware(start: datetime) -> datetime:
    """``start`` with an offset: a naive time is taken as UTC (the contract needs offsets)."""
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def plan_portfolio(
    customers: int = 300,
    days: int = 180,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    deteriorating_share: float = 0.1,
) -> list[CustomerProfile]:
    """Draw the customers of a simulated portfolio.

    :func:`generate` with the same arguments simulates exactly these
    customers; call this to know who deteriorates, and when.

    Parameters
    ----------
    customers : int
        Number of customers.
    days : int
        Length of the simulated horizon in days.
    seed : int
        Seed; the same arguments always give the same portfolio.
    start : datetime
        Start of the horizon (naive means UTC).
    deteriorating_share : float
        Share of customers (0..1, rounded to a whole number) that deteriorate.

    Returns
    -------
    list of CustomerProfile
        In customer-id order.

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    _check_portfolio_args(customers, days, deteriorating_share)
    start = _aware(start)
    rng = random.Random(seed)
    # One seed per customer drawn first, so a customer's behaviour does not depend on how many
    # random numbers the customers before it happened to use.
    seeds = [rng.getrandbits(64) for _ in range(customers)]
    troubled = set(rng.sample(range(customers), round(customers * deteriorating_share)))
    sizes = list(SIZE_BANDS)
    size_weights = [band.weight for band in SIZE_BANDS.values()]
    profiles: list[CustomerProfile] = []
    for index in range(customers):
        crng = random.Random(seeds[index])
        deteriorating = index in troubled
        size = crng.choices(sizes, size_weights)[0]
        band = SIZE_BANDS[size]
        mean_order = band.mean_order_amount * crng.lognormvariate(0.0, 0.4)
        # At least ~one order a week, so every customer leaves a behavioural trail to monitor.
        per_week = max(0.8, band.orders_per_week * crng.lognormvariate(0.0, 0.3))
        terms = crng.choice(PAYMENT_TERMS_DAYS)
        monthly_volume = mean_order * per_week * 52 / 12
        # Limits cover the receivables a customer normally carries (terms plus slack), with the
        # usual spread of generous and tight credit decisions; rounded as credit committees do.
        headroom = (terms / 30 + 0.5) * crng.uniform(0.8, 1.6)
        credit_limit = max(1_000.0, math.ceil(monthly_volume * headroom / 1_000) * 1_000.0)
        weights = _RATING_WEIGHTS_DETERIORATING if deteriorating else _RATING_WEIGHTS_HEALTHY
        revenue = monthly_volume * 12 / crng.uniform(0.02, 0.15)  # we hold a 2..15 % wallet share
        current_ratio = crng.lognormvariate(0.25 if deteriorating else 0.4, 0.3)
        debt_ratio = crng.uniform(0.4, 0.85) if deteriorating else crng.uniform(0.2, 0.7)
        financials = {
            "revenue": round(revenue, -3),
            "current_ratio": round(current_ratio, 2),
            "debt_ratio": round(debt_ratio, 2),
        }
        profile = CustomerProfile(
            customer_id=f"sim-{index + 1:04d}",
            number=index + 1,
            industry=crng.choice(INDUSTRIES),
            size=size,
            region=crng.choice(REGIONS),
            rating=crng.choices(RATINGS, weights)[0],
            payment_terms_days=terms,
            credit_limit=credit_limit,
            mean_order_amount=round(mean_order, 2),
            orders_per_week=round(per_week, 3),
            channel=crng.choices(CHANNELS, (4, 3, 2, 1))[0],
            payment_method=crng.choices(PAYMENT_METHODS, (6, 3, 1, 1))[0],
            payment_delay_days=round(min(12.0, max(-10.0, crng.gauss(-1.0, 4.0))), 1),
            statement_day=crng.randint(1, 28),
            financials=financials,
            seed=crng.getrandbits(64),
        )
        if deteriorating:
            profile = _with_deterioration(profile, crng, start, days)
        profiles.append(profile)
    return profiles


def _with_deterioration(
    profile: CustomerProfile, rng: random.Random, start: datetime, days: int
) -> CustomerProfile:
    """Give ``profile`` a deterioration episode inside the horizon."""
    # Early enough that an invoice due around the onset can run 90+ days overdue before the
    # horizon ends (needs about 120 days left), but never on day one: there has to be a healthy
    # history to deviate from.
    earliest = 0.15 * days
    latest = max(earliest, days - 120.0)
    onset = start + timedelta(days=rng.uniform(earliest, latest))
    stops = onset + timedelta(days=rng.uniform(30.0, 60.0))
    cures: datetime | None = None
    if rng.random() < _CURE_PROBABILITY:
        cures = stops + timedelta(days=rng.uniform(45.0, 75.0))
    return replace(
        profile,
        deteriorates_at=_whole_seconds(onset),
        stops_paying_at=_whole_seconds(stops),
        cures_at=_whole_seconds(cures) if cures is not None else None,
        order_spike=round(rng.uniform(3.0, 5.0), 2),
    )


def _whole_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


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
            self._schedule(_whole_seconds(usual), self._payment, item.invoice_id, None, False)
            return
        # In distress: some invoices are left unpaid, the rest paid late, often in part.
        if rng.random() < _DISTRESSED_UNPAID_PROBABILITY:
            return
        late = item.due_at + timedelta(days=rng.uniform(20.0, 120.0), hours=rng.uniform(0, 10))
        late = _whole_seconds(late)
        if rng.random() < _DISTRESSED_PARTIAL_PROBABILITY:
            self._schedule(late, self._payment, item.invoice_id, rng.uniform(0.3, 0.7), True)
            rest = late + timedelta(days=rng.uniform(15.0, 60.0))
            self._schedule(_whole_seconds(rest), self._payment, item.invoice_id, None, True)
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
                _whole_seconds(returned),
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
            self._schedule(_whole_seconds(again), self._payment, invoice_id, None, distressed)
        return event

    def _cure(self, when: datetime) -> None:
        """A refinancing comes through: everything open is paid within a few days."""
        for item in list(self.open_items.values()):
            at = when + timedelta(days=self.rng.uniform(0.0, 5.0))
            self._schedule(_whole_seconds(at), self._payment, item.invoice_id, None, False)
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
    start = _aware(start)
    profiles = plan_portfolio(customers, days, seed, start, deteriorating_share)
    end = start + timedelta(days=days)
    streams = [
        _CustomerSimulation(profile, currency, start, end).events(outcomes) for profile in profiles
    ]
    # Each stream is in time order, so a k-way merge orders the portfolio while holding only
    # one pending event per customer; ties keep customer order, which keeps it deterministic.
    for _, event in heapq.merge(*streams, key=itemgetter(0)):
        yield event


# --- pacing and progress --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """A progress report of :func:`produce` or :func:`write_jsonl`.

    Attributes
    ----------
    sent : int
        Events sent (or written) so far.
    elapsed : float
        Wall-clock seconds since the first event.
    event_time : str or None
        ``occurred_at`` of the last event sent.
    final : bool
        Whether this is the last report (done, or interrupted).
    interrupted : bool
        Whether sending was interrupted (Ctrl-C).
    """

    sent: int
    elapsed: float
    event_time: str | None = None
    final: bool = False
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Events per wall-clock second so far."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback: TypeAlias = Callable[[Progress], None]


def stderr_progress(progress: Progress) -> None:
    """Print a progress line on stderr (the default reporter of :func:`run`)."""
    if progress.interrupted:
        text = f"interrupted: {progress.sent:,} events sent and flushed"
    elif progress.final:
        text = f"done: {progress.sent:,} events"
    else:
        text = f"{progress.sent:,} events"
    text += f" in {progress.elapsed:.1f} s ({progress.rate:,.0f} ev/s)"
    if progress.event_time:
        text += f", event time {progress.event_time}"
    print(f"simulate: {text}", file=sys.stderr, flush=True)


class SimulationInterrupted(KeyboardInterrupt):
    """Ctrl-C while sending; what was sent before has been flushed.

    Parameters
    ----------
    sent : int
        How many events had been sent (and flushed) when interrupted.
    """

    def __init__(self, sent: int) -> None:
        super().__init__(f"interrupted after {sent} events")
        self.sent = sent


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge some events."""


@dataclass(slots=True)
class _Deliveries:
    """Counts the broker's acknowledgements.

    On Ctrl-C the interrupt may land inside ``send`` after the record was queued, so
    counting sends could be off by one; after a flush, acknowledgements are exact.
    """

    acknowledged: int = 0
    failures: list[BaseException] = field(default_factory=list)

    def ok(self, _metadata: object) -> None:
        self.acknowledged += 1

    def failed(self, error: BaseException) -> None:
        self.failures.append(error)


class KafkaUnavailable(ConnectionError):
    """No Kafka broker answered at the bootstrap address."""


# How "nobody answers" surfaces: kafka-python 2.x raises NoBrokersAvailable, 3.x removed that
# class and times out bootstrapping instead.
_NO_BROKER_ERRORS: tuple[type[BaseException], ...] = tuple(
    error
    for error in (getattr(kafka.errors, "NoBrokersAvailable", None), KafkaTimeoutError)
    if error is not None
)


def _check_pacing(rate: float | None, speed: float | None) -> None:
    if rate is not None and speed is not None:
        raise ValueError("give either rate or speed, not both")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 events per second, got {rate}")
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0 simulated seconds per second, got {speed}")


class _Pacer:
    """Holds events back to a wall-clock schedule and reports progress while doing so."""

    def __init__(
        self, rate: float | None, speed: float | None, progress: ProgressCallback | None
    ) -> None:
        _check_pacing(rate, speed)
        self.rate = rate
        self.speed = speed
        self.progress = progress
        self.sent = 0
        self.event_time: str | None = None
        # The clock starts with the first event, not while connecting to the broker.
        self.started = self.last_report = 0.0
        self.first_event_time: datetime | None = None

    def wait(self, event: Mapping[str, Any]) -> None:
        """Sleep until ``event`` is due."""
        if not self.started:
            self.started = self.last_report = time.monotonic()
        if self.rate is not None:
            self._sleep_until(self.started + self.sent / self.rate)
        elif self.speed is not None:
            when = datetime.fromisoformat(event["occurred_at"])
            if self.first_event_time is None:
                self.first_event_time = when
            lag = (when - self.first_event_time).total_seconds() / self.speed
            self._sleep_until(self.started + lag)

    def _sleep_until(self, deadline: float) -> None:
        # Sleep in slices so that long quiet stretches of event time still report progress.
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.5))
            self.maybe_report()

    def sent_one(self, event: Mapping[str, Any]) -> None:
        self.sent += 1
        self.event_time = event.get("occurred_at")
        if self.sent % 256 == 0:  # checking the clock per event would cost more than sending
            self.maybe_report()

    def maybe_report(self) -> None:
        now = time.monotonic()
        if self.progress is not None and now - self.last_report >= _PROGRESS_EVERY_S:
            self.last_report = now
            self.progress(Progress(self.sent, now - self.started, self.event_time))

    def finish(self, interrupted: bool = False) -> None:
        if self.progress is not None:
            elapsed = time.monotonic() - self.started if self.started else 0.0
            self.progress(
                Progress(self.sent, elapsed, self.event_time, final=True, interrupted=interrupted)
            )


# --- sinks ----------------------------------------------------------------------------------------


def produce(
    events: Iterable[Event],
    bootstrap: str,
    topics: Mapping[str, str],
    rate: float | None = None,
    speed: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    connect_timeout: float = 10.0,
) -> int:
    """Send events to Kafka, one topic per event type.

    Each message has key ``customer_id`` (UTF-8), so a customer's events stay in
    order on one partition, and value the compact JSON of the event.

    Parameters
    ----------
    events : iterable of dict
        Contract events, e.g. from :func:`generate`.
    bootstrap : str
        Kafka bootstrap servers, comma separated.
    topics : mapping of str to str
        Event type -> topic, e.g. ``Settings().input_topics()``.
    rate : float, optional
        Send at this many events per second.
    speed : float, optional
        Replay event time at this many simulated seconds per wall-clock second
        (86400: one simulated day per second). At most one of ``rate`` and ``speed``;
        with neither, send as fast as possible.
    progress : callable, optional
        Called with a :class:`Progress` about every 2 s and once at the end
        (:func:`stderr_progress` prints it).
    connect_timeout : float
        Seconds to wait for the broker before giving up.

    Returns
    -------
    int
        The number of events sent, all of them acknowledged by the broker.

    Raises
    ------
    KafkaUnavailable
        If no broker answers at ``bootstrap`` within ``connect_timeout``.
    ValueError
        If pacing is invalid or an event type has no topic.
    DeliveryError
        If the broker rejected some events.
    SimulationInterrupted
        On Ctrl-C, after flushing what was sent; ``.sent`` says how many the broker
        acknowledged.
    """
    pacer = _Pacer(rate, speed, progress)
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]
    try:
        producer = KafkaProducer(
            bootstrap_servers=servers,
            client_id="stream-risk-simulator",
            linger_ms=20,  # batch a little: throughput matters more than latency here
            bootstrap_timeout_ms=int(connect_timeout * 1000),
            **KafkaSecurity.from_environment().kafka_python(),
        )
    except _NO_BROKER_ERRORS as exc:
        raise KafkaUnavailable(f"no Kafka broker answered at {bootstrap}") from exc
    deliveries = _Deliveries()
    try:
        try:
            for event in events:
                topic = topics.get(event["type"])
                if topic is None:
                    raise ValueError(f"no topic configured for event type {event['type']!r}")
                pacer.wait(event)
                future = producer.send(
                    topic,
                    key=str(event["customer_id"]).encode("utf-8"),
                    value=orjson.dumps(event),
                )
                future.add_callback(deliveries.ok)
                future.add_errback(deliveries.failed)
                pacer.sent_one(event)
        except KeyboardInterrupt:
            producer.flush()
            pacer.sent = deliveries.acknowledged
            pacer.finish(interrupted=True)
            raise SimulationInterrupted(deliveries.acknowledged) from None
        producer.flush()
    finally:
        producer.close(timeout=5)
    if deliveries.failures:
        raise DeliveryError(
            f"{len(deliveries.failures)} of {pacer.sent} events were not delivered; "
            f"first error: {deliveries.failures[0]}"
        )
    pacer.finish()
    return pacer.sent


def write_jsonl(
    events: Iterable[Event],
    out: str | Path,
    rate: float | None = None,
    speed: float | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Write events as JSON lines.

    Parameters
    ----------
    events : iterable of dict
        Contract events, e.g. from :func:`generate`.
    out : str or Path
        A ``.jsonl`` file, a ``.jsonl.gz`` file (gzip), or ``-`` for stdout.
    rate, speed : float, optional
        Pacing as in :func:`produce` (useful when piping stdout into another tool).
    progress : callable, optional
        As in :func:`produce`.

    Returns
    -------
    int
        The number of events written.

    Raises
    ------
    SimulationInterrupted
        On Ctrl-C, after flushing what was written; ``.sent`` says how many.
    """
    pacer = _Pacer(rate, speed, progress)
    with contextlib.ExitStack() as closing:
        sink: IO[bytes] | gzip.GzipFile
        if str(out) == "-":
            sink = sys.stdout.buffer
        elif str(out).endswith(".gz"):
            sink = closing.enter_context(gzip.open(out, "wb", compresslevel=6))
        else:
            sink = closing.enter_context(open(out, "wb"))
        try:
            for event in events:
                pacer.wait(event)
                sink.write(orjson.dumps(event) + b"\n")
                if pacer.rate is not None or pacer.speed is not None:
                    sink.flush()  # paced output is meant to be read as it comes
                pacer.sent_one(event)
        except KeyboardInterrupt:
            sink.flush()
            pacer.finish(interrupted=True)
            raise SimulationInterrupted(pacer.sent) from None
        sink.flush()
    pacer.finish()
    return pacer.sent


# --- command line ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _start_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO date/time: {text!r} (e.g. 2026-01-01 or 2026-01-01T00:00:00+01:00)"
        ) from None
    return _aware(value)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the options of ``stream-risk simulate`` to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The (sub)command parser to configure.
    """
    p.description = (
        "Simulate a B2B credit portfolio (customers, orders, invoices, payments, monthly "
        "statements) as contract events and send them to Kafka, or write them to a file. "
        "A share of the customers deteriorates: order spikes, late, partial and bounced "
        "payments, invoices 90+ days overdue. Deterministic for a seed."
    )
    g = p.add_argument_group("portfolio")
    g.add_argument(
        "--customers",
        type=_positive_int,
        default=300,
        metavar="N",
        help="number of customers, sim-0001 ... (default: %(default)s)",
    )
    g.add_argument(
        "--days",
        type=_positive_int,
        default=180,
        metavar="N",
        help="simulated days; invoices of deteriorating customers need about 180 days "
        "to run 90+ days overdue (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=7,
        metavar="N",
        help="random seed; the same options give the same events (default: %(default)s)",
    )
    g.add_argument(
        "--start",
        type=_start_time,
        default=DEFAULT_START,
        metavar="ISO",
        help="start of the simulated horizon, ISO 8601; without an offset it is UTC "
        "(default: 2026-01-01T00:00:00+00:00)",
    )
    g.add_argument(
        "--currency",
        default=None,
        metavar="CODE",
        help="currency of all amounts (default: the base currency, "
        "$STREAM_RISK_BASE_CURRENCY or EUR)",
    )
    g.add_argument(
        "--deteriorating-share",
        type=_share,
        default=0.1,
        metavar="SHARE",
        help="share of customers (0..1) that deteriorate (default: %(default)s)",
    )
    g.add_argument(
        "--outcomes",
        action="store_true",
        help="end with one outcome event per customer (default for deteriorating "
        "customers that did not cure, current otherwise): labels for learning "
        "and backtests",
    )
    pacing = p.add_argument_group("pacing (default: as fast as possible)")
    pace = pacing.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        metavar="EV_PER_S",
        help="send this many events per second",
    )
    pace.add_argument(
        "--speed",
        type=_positive_float,
        default=None,
        metavar="SIM_SECONDS_PER_SECOND",
        help="replay event time at this speed-up, e.g. 86400 = one simulated day per second",
    )
    dest = p.add_argument_group("destination (default: Kafka)")
    dest.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write JSON lines to FILE instead of Kafka: .jsonl, .jsonl.gz (gzip), or - for stdout",
    )
    dest.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (default: $STREAM_RISK_KAFKA_BOOTSTRAP or "
        "127.0.0.1:9092); topics are the input topics of the settings "
        "($STREAM_RISK_TOPIC_PREFIX, $STREAM_RISK_TOPICS)",
    )


def _fail(message: str) -> None:
    print(f"stream-risk simulate: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run ``stream-risk simulate`` with parsed options.

    Parameters
    ----------
    args : argparse.Namespace
        Options as defined by :func:`configure_parser`.

    Returns
    -------
    int
        Exit code: 0 done, 1 Kafka unreachable or failing (or the file cannot be
        written), 2 bad arguments or settings, 130 interrupted.
    """
    # Imported here so that `--out` works even where the environment's settings are broken.
    from pydantic import ValidationError

    from stream_risk.config import Settings

    out: str | None = args.out
    if out is not None and out != "-":
        parent = Path(out).parent
        if not parent.is_dir():
            _fail(f"--out: directory {str(parent)!r} does not exist")
            return 2
    try:
        # Settings() reads the environment; mypy without the pydantic plugin sees required args.
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        _fail(f"invalid STREAM_RISK_* settings:\n{exc}")
        return 2
    try:
        start = args.start if isinstance(args.start, datetime) else _start_time(str(args.start))
        _check_portfolio_args(args.customers, args.days, args.deteriorating_share)
        _check_pacing(args.rate, args.speed)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        _fail(str(exc))
        return 2
    events = generate(
        customers=args.customers,
        days=args.days,
        seed=args.seed,
        start=start,
        currency=args.currency or settings.base_currency,
        deteriorating_share=args.deteriorating_share,
        outcomes=args.outcomes,
    )
    bootstrap = args.bootstrap or settings.kafka_bootstrap
    try:
        if out is not None:
            write_jsonl(events, out, args.rate, args.speed, stderr_progress)
        else:
            produce(
                events, bootstrap, settings.input_topics(), args.rate, args.speed, stderr_progress
            )
    except SimulationInterrupted:
        return 130  # the final progress line already said how many were sent
    except KeyboardInterrupt:  # while still connecting: nothing was sent
        print("simulate: interrupted before anything was sent", file=sys.stderr)
        return 130
    except KafkaUnavailable:
        _fail(
            f"cannot reach Kafka at {bootstrap}. Start the local services with "
            "`docker/services.sh start` (or point --bootstrap / STREAM_RISK_KAFKA_BOOTSTRAP at "
            "a running broker), or write to a file with --out."
        )
        return 1
    except (KafkaError, DeliveryError) as exc:
        _fail(f"Kafka at {bootstrap} failed: {exc}")
        return 1
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        _fail(f"cannot write {out}: {exc}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m stream_risk.tools.simulate --help``."""
    parser = argparse.ArgumentParser(prog="stream-risk simulate")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
