"""``stream-risk bench --workers N``: the option, and how the scaling phases are reported."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from stream_risk.schemas.events import EVENT_TYPES
from stream_risk.tools import bench


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    return parser


@pytest.mark.parametrize(
    ("argv", "workers"), [([], 1), (["--workers", "2"], 2), (["--workers", "4"], 4)]
)
def test_workers_defaults_to_one_and_takes_a_count(argv: list[str], workers: int) -> None:
    assert _parser().parse_args(argv).workers == workers


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_workers_below_one_or_not_a_count_is_refused(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--workers", bad])
    assert "--workers" in capsys.readouterr().err


def test_scaling_measures_one_then_n_workers_and_prints_their_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int]] = []
    rates = {1: (1000.0, 0, 1100.0), 3: (2500.0, 4, 1050.0)}

    def measure(
        env: dict[str, str], prefix: str, workers: int, args: Any, tmp: Path
    ) -> tuple[float, int, float]:
        calls.append((prefix, workers))
        return rates[workers]

    monkeypatch.setattr(bench, "measure_group", measure)
    args = _parser().parse_args(["--workers", "3"])
    result, lines = bench.scaling({}, "run", args, Path("."))
    # Each group on topics of its own, the single worker first.
    assert calls == [("run-w1", 1), ("run-w3", 3)]
    assert result["workers_1_events_per_s"] == 1000
    assert result["workers_3_events_per_s"] == 2500
    assert result["workers_3_dead_letters"] == 4
    assert result["workers_3_events_per_cpu_s"] == 1050
    assert result["ratio 3 workers / 1"] == 2.5
    assert lines[-1].startswith("ratio 3 workers / 1") and lines[-1].endswith("2.500")


def test_scaling_without_one_of_its_rates_prints_no_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    def measure(
        env: dict[str, str], prefix: str, workers: int, args: Any, tmp: Path
    ) -> tuple[float, int, float] | None:
        return None if workers == 2 else (900.0, 0, 1000.0)

    monkeypatch.setattr(bench, "measure_group", measure)
    result, lines = bench.scaling({}, "run", _parser().parse_args(["--workers", "2"]), Path("."))
    assert "ratio 2 workers / 1" not in result
    assert any("not measured" in line for line in lines)
    assert not any(line.startswith("ratio") for line in lines)


def test_every_group_is_sent_the_same_encoded_events() -> None:
    topics = {t: f"run.{t}" for t in EVENT_TYPES}
    first = bench.encoded_events(topics, 300, customers=20)
    assert first == bench.encoded_events(topics, 300, customers=20)
    assert len(first) == 300
    for topic, key, value in first:
        event = json.loads(value)
        assert topic == topics[event["type"]]
        assert key == event["customer_id"].encode()


def test_each_worker_of_a_group_gets_its_own_port_member_id_and_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The run's environment names one web port: the workers of a group must not all
    bind it (a second one would fail to start)."""
    started: list[dict[str, str]] = []

    class Process:
        pid = 0

    def start(env: dict[str, str], log: Path) -> Process:
        started.append(env)
        return Process()

    monkeypatch.setattr(bench, "start_worker", start)
    monkeypatch.setattr(bench, "stop_process", lambda proc: None)
    monkeypatch.setattr(bench, "encoded_events", lambda *a, **k: [])
    monkeypatch.setattr("stream_risk.kafka_admin.ensure_topics", lambda settings: None)
    # The group never settles: measuring stops there, after every worker started.
    monkeypatch.setattr(bench, "_wait_stable", lambda *a, **k: False)
    env = {"STREAM_RISK_KAFKA_BOOTSTRAP": "127.0.0.1:9", "STREAM_RISK_WEB_PORT": "40123"}
    args = _parser().parse_args(["--workers", "3"])
    assert bench.measure_group(env, "run-w3", 3, args, tmp_path) is None
    assert len(started) == 3
    assert {e["STREAM_RISK_WEB_PORT"] for e in started} == {"0"}
    assert len({e["STREAM_RISK_GROUP_INSTANCE_ID"] for e in started}) == 3
    assert len({e["STREAM_RISK_DATA_DIR"] for e in started}) == 3
