"""What ``stream-risk replay`` gives for a deployment's input: the integration tests' reference."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from stream_risk.schemas.events import EVENT_TYPES

from .conftest import Env
from .topics import read_all

#: What every worker must agree with ``replay`` on: balances, counts and delinquency. The
#: segment-behaviour detector learns from a worker's own customers, so scores may differ.
OWN_FEATURES = ("open_balance", "overdue_balance", "order_count_30d", "days_past_due")
#: How long profiles may still move after every customer's latest event time is read.
SETTLE_SECONDS = 30.0


def replay_of(
    env: Env, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``stream-risk replay`` of ``events``, one file per input topic in the topics' order."""
    files = []
    for type_ in EVENT_TYPES:
        path = env.tmp / f"{type_}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in events if e["type"] == type_))
        files.append(str(path))
    warnings_path, profiles_path = env.tmp / "warnings.jsonl", env.tmp / "profiles.jsonl"
    subprocess.run(
        [
            *(sys.executable, "-m", "stream_risk.cli", "replay", "-q", *files),
            *("--warnings-out", str(warnings_path), "--profiles-out", str(profiles_path)),
        ],
        env=env.settings_env,
        check=True,
        capture_output=True,
    )
    warnings = [json.loads(line) for line in warnings_path.read_text().splitlines()]
    profiles = {
        p["customer_id"]: p for p in map(json.loads, profiles_path.read_text().splitlines())
    }
    return warnings, profiles


def caught_up_with(
    expected_profiles: dict[str, Any],
) -> Callable[[list[dict[str, Any]]], bool]:
    """Whether profile records read so far hold every customer's expected latest profile
    (by its event time), for ``Env.consume``."""

    def caught_up(records: list[dict[str, Any]]) -> bool:
        latest = {r["value"]["customer_id"]: r["value"] for r in records}
        return all(
            latest.get(cid, {}).get("updated_at") == p["updated_at"]
            for cid, p in expected_profiles.items()
        )

    return caught_up


def settled_profiles(
    env: Env,
    expected_profiles: dict[str, Any],
    timeout: float,
    same: Callable[[dict[str, Any], dict[str, Any]], bool],
) -> dict[str, Any]:
    """Each customer's latest profile, read once every customer's latest event time is
    the expected one (within ``timeout``) and then, for up to :data:`SETTLE_SECONDS`
    more, until ``same(got, want)`` holds for every customer.

    A customer's profile at its latest event time can be followed by one of a timer
    (an order leaving a window) that another customer's later event fired: profiles
    of different customers are on different partitions, read in any order. What still
    differs after the wait is left to the caller's assertions.
    """
    profiles = env.consume("profiles", caught_up_with(expected_profiles), timeout=timeout)

    def agreed(records: list[dict[str, Any]]) -> bool:
        latest = {r["value"]["customer_id"]: r["value"] for r in records}
        return all(same(latest[cid], p) for cid, p in expected_profiles.items())

    with contextlib.suppress(AssertionError):
        profiles = env.consume("profiles", agreed, timeout=SETTLE_SECONDS)
    return {r["value"]["customer_id"]: r["value"] for r in profiles}


def assert_as_replay(
    env: Env,
    expected_profiles: dict[str, Any],
    timeout: float,
    features: tuple[str, ...] = OWN_FEATURES,
) -> dict[str, Any]:
    """Read profiles until every customer's latest is the expected one; assert that no
    record was dead-lettered and that ``features`` equal replay's. Returns the latest
    profile of each customer."""

    def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
        return all(got["features"].get(n) == want["features"].get(n) for n in features)

    latest = settled_profiles(env, expected_profiles, timeout, same)
    assert [r["value"]["reason"] for r in read_all(env, "dead-letters")] == []
    for customer_id, profile in expected_profiles.items():
        got, want = latest[customer_id]["features"], profile["features"]
        for name in features:
            assert got.get(name) == want.get(name), (customer_id, name, got, want)
    return latest
