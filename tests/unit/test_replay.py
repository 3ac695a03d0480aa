"""``stream-risk replay``: bad lines, outputs, determinism, and the real UCI data."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from risk_factory import customer, invoice, order, payment, statement

from stream_risk import cli
from stream_risk.core import Context
from stream_risk.replay import REPLAY_LIMITS, replay
from stream_risk.schemas.outputs import RiskProfile, RiskWarning

#: A 2,000-customer subset of the UCI table and its converter, carried with the tests.
DATA_DIR = Path(__file__).parents[1] / "data" / "uci-credit-default"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay reads STREAM_RISK_* settings; keep the caller's environment out of the tests."""
    import os

    for name in list(os.environ):
        if name.startswith("STREAM_RISK_"):
            monkeypatch.delenv(name)


def dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


# File A (.jsonl): customer a with an invoice that becomes 30 and 90 days overdue with no
# further event for it; customer b highly utilised. File B (.jsonl.gz): more for both, plus
# customer c, and the late events that move the replay clock past a's due dates.
GOOD_A = [
    customer(0, 1000.0, cid="a"),
    invoice(1, "ia", 400, 10, cid="a"),
    customer(0, 500.0, cid="b"),
    invoice(2, "ib", 480, 60, cid="b"),
]
GOOD_B = [
    order(3, "o1", 120, cid="b"),
    payment(5, "pb", 100, cid="b"),
    customer(1, 2000.0, cid="c"),
    statement(4, 300.0, 0, cid="c"),
    order(200, "late", 10, cid="c"),
]

BAD_A = [
    ("{not json", "json"),
    (dumps({k: v for k, v in invoice(3, "ix", 1, 9, cid="a").items() if k != "amount"}), "amount"),
    (dumps(dict(order(3, "ox", 1, cid="a"), occurred_at="2024-01-04T00:00:00")), "occurred_at"),
]
BAD_B = [
    (dumps(dict(order(3, "oy", -5, cid="b"))), "amount"),
    (dumps(dict(payment(6, "pz", 10, cid="b"), currency="GBP")), "GBP"),  # no rate: BadEvent
    (dumps({**order(3, "oz", 1, cid="b"), "type": "shipment"}), "type"),
]


def write_inputs(tmp: Path) -> tuple[Path, Path, dict[tuple[str, int], str]]:
    """Interleave good and bad lines; return the files and {(file, line): expected reason}."""
    expected: dict[tuple[str, int], str] = {}
    a_lines = [
        dumps(GOOD_A[0]),
        BAD_A[0][0],
        dumps(GOOD_A[1]),
        "",
        BAD_A[1][0],
        dumps(GOOD_A[2]),
        BAD_A[2][0],
        dumps(GOOD_A[3]),
    ]
    b_lines = [
        BAD_B[0][0],
        dumps(GOOD_B[0]),
        dumps(GOOD_B[1]),
        BAD_B[1][0],
        dumps(GOOD_B[2]),
        BAD_B[2][0],
        dumps(GOOD_B[3]),
        dumps(GOOD_B[4]),
    ]
    fa = tmp / "a.jsonl"
    fb = tmp / "b.jsonl.gz"
    fa.write_text("\n".join(a_lines) + "\n")
    with gzip.open(fb, "wt") as fh:
        fh.write("\n".join(b_lines) + "\n")
    for path, lines, bad in ((fa, a_lines, BAD_A), (fb, b_lines, BAD_B)):
        for raw, why in bad:
            expected[(str(path), lines.index(raw) + 1)] = why
    return fa, fb, expected


def run_replay(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main(["replay", *args])
    return rc, capsys.readouterr().err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replay_args(fa: Path, fb: Path, w_out: Path, p_out: Path) -> list[str]:
    return [
        str(fa),
        str(fb),
        "--warnings-out",
        str(w_out),
        "--profiles-out",
        str(p_out),
        "--base-currency",
        "EUR",
        "-q",
    ]


def test_replay_reports_bad_lines_and_carries_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fa, fb, expected = write_inputs(tmp_path)
    w_out, p_out = tmp_path / "w.jsonl", tmp_path / "p.jsonl"
    rc, err = run_replay(
        _replay_args(fa, fb, w_out, p_out),
        capsys,
    )
    assert rc == 0

    reported = {}
    for line in err.splitlines():
        m = re.match(r"^(.+?):(\d+): bad event: (.+)$", line)
        if m:
            reported[(m.group(1), int(m.group(2)))] = m.group(3)
    assert set(reported) == set(expected), err
    for where, why in expected.items():
        assert why.lower() in reported[where].lower(), (where, reported[where])
    assert "6 bad" in err

    profiles = read_jsonl(p_out)
    assert [p["customer_id"] for p in profiles] == ["a", "b", "c"]
    for p in profiles:
        RiskProfile.model_validate(p)
    by_id = {p["customer_id"]: p for p in profiles}
    # good lines after bad ones were applied
    assert by_id["b"]["features"]["open_balance"] == pytest.approx(380.0)
    assert by_id["b"]["features"]["days_past_due"] >= 130  # b's clock followed the replay
    assert by_id["c"]["features"]["order_count_30d"] == 1
    assert by_id["c"]["features"]["credit_limit"] == 2000.0
    assert by_id["a"]["features"]["open_balance"] == 400.0
    assert by_id["a"]["features"]["days_past_due"] >= 90  # advanced by the replay clock

    warnings = read_jsonl(w_out)
    for w in warnings:
        RiskWarning.model_validate(w)
    got = {(w["customer_id"], w["rule"], w["status"]) for w in warnings}
    assert ("a", "overdue_30_days", "firing") in got
    assert ("a", "overdue_90_days", "firing") in got
    assert ("b", "overdue_90_days", "firing") in got  # b's invoice, after the bad lines
    a30 = next(w for w in warnings if w["customer_id"] == "a" and w["rule"] == "overdue_30_days")
    assert a30["occurred_at"].startswith("2024-02-10")  # due day 10 + 30 days, from a timer
    assert set(by_id["a"]["active_warnings"]) == {
        w["warning_id"] for w in warnings if w["customer_id"] == "a" and w["status"] == "firing"
    }
    # The speed, the evaluations per event and the state size are printed.
    speed = re.search(r"speed: [\d,]+ events/s overall, [\d,]+ in the first fifth, ", err)
    assert speed is not None, err
    evaluations = re.search(
        r"evaluations: ([\d.]+) per input event \((\d+) events applied, "
        r"(\d+) timer wake-ups, (\d+) of which found nothing",
        err,
    )
    assert evaluations is not None, err
    per_event, applied = float(evaluations[1]), int(evaluations[2])
    woken, looked = int(evaluations[3]), int(evaluations[4])
    assert applied == 9 and woken > 0  # a and b are woken by their overdue invoices
    # Most of the daily ticks of days past due change nothing the rules see.
    assert 0 < looked < woken
    assert per_event == pytest.approx((applied + woken - looked) / 15, abs=0.01)
    assert re.search(r"encoded state per customer: median \d+ bytes, p99 \d+ bytes", err)
    assert re.search(
        r"by fifth: (?:[\d,]+, ){4}[\d,]+ events/s; (?:[\d.]+, ){4}[\d.]+ evaluations and "
        r"(?:[\d.]+, ){4}[\d.]+ wake-ups per event; state of the event's customer "
        r"(?:[\d,]+, ){4}[\d,]+ bytes on average",
        err,
    ), err


def test_replay_reports_each_fifth_of_the_stream(tmp_path: Path) -> None:
    """The fifths split the events, the applied ones, the wake-ups and the states' bytes;
    a customer whose orders fill its windows shows a growing state from fifth to fifth."""
    events = [customer(0, 50_000.0, cid="f")]
    events += [order(day, f"o{day}", 100 + day, cid="f") for day in range(1, 50)]
    events += [invoice(1, "due-soon", 300, 20, cid="f")]  # falls due: wake-ups
    path = tmp_path / "in.jsonl"
    path.write_text("".join(dumps(e) + "\n" for e in events))
    bad: list[Any] = []
    report = replay([path], None, None, Context(), bad.append, progress=False, limits=REPLAY_LIMITS)
    assert not bad and report.applied == len(events) == 51
    fifths = report.fifths
    assert [f.events for f in fifths] == [10, 10, 10, 10, 11]
    assert sum(f.applied for f in fifths) == report.applied
    # Wake-ups after the last event fire at the end of the replay, outside any fifth.
    assert 0 < sum(f.wakeups for f in fifths) <= report.wakeups
    assert fifths[-1].wakeups_per_event == fifths[-1].wakeups / 11
    assert sum(f.wakeups_looked for f in fifths) <= report.wakeups_looked
    per_event = [f.state_bytes_per_event for f in fifths]
    assert all(b > 0 for b in per_event)
    assert per_event == sorted(per_event) and per_event[-1] > 1.5 * per_event[0]
    assert report.first_fifth_rate == fifths[0].events_per_second > 0
    assert report.last_fifth_rate == fifths[-1].events_per_second > 0


def test_replay_of_fewer_than_five_events_has_no_fifths(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(dumps(customer(0, 1_000.0, cid="g")) + "\n")
    report = replay([path], None, None, Context(), [].append, progress=False, limits=REPLAY_LIMITS)
    assert report.applied == 1 and report.fifths == []
    assert report.first_fifth_rate == report.last_fifth_rate == 0.0
    assert not any(line.startswith("by fifth") for line in report.speed_lines())


def test_replay_missing_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = run_replay([str(tmp_path / "nope.jsonl"), "-q"], capsys)
    assert rc == 2
    assert "nope.jsonl" in err


DETECTED = re.compile(rb'"detected_at":"[^"]*"')


def test_replay_is_deterministic_apart_from_detected_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fa, fb, _ = write_inputs(tmp_path)
    outs = []
    for run_no in range(2):
        w_out, p_out = tmp_path / f"w{run_no}.jsonl", tmp_path / f"p{run_no}.jsonl.gz"
        rc, _ = run_replay(
            _replay_args(fa, fb, w_out, p_out),
            capsys,
        )
        assert rc == 0
        outs.append((w_out.read_bytes(), gzip.decompress(p_out.read_bytes())))
    (w1, p1), (w2, p2) = outs
    assert w1.count(b"\n") >= 4
    assert DETECTED.sub(b"", w1) == DETECTED.sub(b"", w2)
    assert p1 == p2


# --------------------------------------------------------------------- the real data

LIMIT = 2000


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    script = DATA_DIR / "to_events.py"
    table = DATA_DIR / "train.tsv"
    if not script.is_file() or not table.is_file():
        pytest.fail(f"the UCI data set is missing: expected {script} and {table}")
    tmp = tmp_path_factory.mktemp("uci")
    events_path = tmp / "events.jsonl.gz"
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(table),
            "--outcomes",
            "--limit",
            str(LIMIT),
            "-o",
            str(events_path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    w_out, p_out = tmp / "w.jsonl", tmp / "p.jsonl"
    rc = cli.main(
        [
            "replay",
            str(events_path),
            "--base-currency",
            "TWD",
            "--warnings-out",
            str(w_out),
            "--profiles-out",
            str(p_out),
            "-q",
        ]
    )
    assert rc == 0
    with gzip.open(events_path, "rt") as fh:
        events = [json.loads(line) for line in fh]
    return {"events": events, "warnings": read_jsonl(w_out), "profiles": read_jsonl(p_out)}


def test_uci_one_profile_per_customer(uci: dict[str, Any]) -> None:
    customers = {e["customer_id"] for e in uci["events"]}
    assert len(customers) == LIMIT
    ids = [p["customer_id"] for p in uci["profiles"]]
    assert len(ids) == LIMIT
    assert set(ids) == customers
    for p in uci["profiles"][:200]:
        RiskProfile.model_validate(p)


def test_uci_delinquency_drives_overdue_warnings(uci: dict[str, Any]) -> None:
    statements: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in uci["events"]:
        if e["type"] == "statement":
            statements[e["customer_id"]].append(e)
    latest_dpd = {
        c: max(s, key=lambda e: e["occurred_at"])["days_past_due"] for c, s in statements.items()
    }
    never = {
        c
        for c, s in statements.items()
        if all(e["days_past_due"] == 0 and e["status"] != "delinquent" for e in s)
    }

    serious: dict[str, set[str]] = defaultdict(set)
    overdue_rules: dict[str, set[str]] = defaultdict(set)
    for w in uci["warnings"]:
        if w["status"] == "firing" and w["level"] in {"high", "critical"}:
            serious[w["customer_id"]].add(w["rule"])
        if w["rule"].startswith("overdue"):
            overdue_rules[w["customer_id"]].add(w["rule"])

    # Two months late and paying less than a third of what fell due in 90 days is high
    # (or critical); one month late, or two months while paying it down, at least medium.
    paid_to_due = {
        p["customer_id"]: p["features"].get("paid_to_due_ratio_90d") for p in uci["profiles"]
    }
    not_paying = {c for c, ratio in paid_to_due.items() if ratio is not None and ratio < 0.3}
    delinquent_now = {c for c, dpd in latest_dpd.items() if dpd >= 60}
    late_now = {c for c, dpd in latest_dpd.items() if dpd >= 30}
    assert len(delinquent_now) > 50 and len(never) > 500  # the sample is meaningful
    assert delinquent_now - not_paying  # some two months late are paying it down
    missing = sorted((delinquent_now & not_paying) - set(serious))
    assert not missing, f"{len(missing)} delinquent customers without a warning: {missing[:10]}"
    unwarned = sorted(late_now - set(overdue_rules))
    assert not unwarned, f"{len(unwarned)} late customers without an overdue warning"
    wrongly = sorted(never & set(overdue_rules))
    assert not wrongly, f"never-delinquent customers with overdue warnings: {wrongly[:10]}"

    profiles = {p["customer_id"]: p for p in uci["profiles"]}
    for c, dpd in latest_dpd.items():
        assert profiles[c]["features"]["statement_days_past_due"] == dpd
    for w in uci["warnings"][:500]:
        RiskWarning.model_validate(w)
