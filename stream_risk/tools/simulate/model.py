"""The simulated portfolio: who the customers are and which of them deteriorate.

:func:`plan_portfolio` draws every customer's profile (segment, size, rating,
terms, usual order size) and, for a share of them, when and how their payment
behaviour turns bad; the event stream follows from it (:mod:`.simulation`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

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

_CURE_PROBABILITY = 0.15  # deteriorating customers that catch up on everything later


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


def check_portfolio_args(customers: int, days: int, deteriorating_share: float) -> None:
    if customers < 0:
        raise ValueError(f"customers must be >= 0, got {customers}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not 0.0 <= deteriorating_share <= 1.0:
        raise ValueError(f"deteriorating_share must be in [0, 1], got {deteriorating_share}")


def aware_start(start: datetime) -> datetime:
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
    check_portfolio_args(customers, days, deteriorating_share)
    start = aware_start(start)
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
        deteriorates_at=whole_seconds(onset),
        stops_paying_at=whole_seconds(stops),
        cures_at=whole_seconds(cures) if cures is not None else None,
        order_spike=round(rng.uniform(3.0, 5.0), 2),
    )


def whole_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)
