"""The baselines of ``stream-risk bench``: how they are chosen and what a missing one says."""

from __future__ import annotations

import argparse
import sys

import pytest

from stream_risk.tools import bench, bench_engines


def test_both_baselines_run_by_default_and_none_on_request() -> None:
    parser = argparse.ArgumentParser()
    bench.configure_parser(parser)
    assert parser.parse_args([]).baselines == ["faust-decode", "quix-job"]
    assert parser.parse_args(["--baselines"]).baselines == []
    assert parser.parse_args(["--baselines", "quix-job"]).baselines == ["quix-job"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--baselines", "spark"])


def test_every_ratio_names_measured_rates() -> None:
    names = {"worker", "worker applied", "raw aiokafka", *bench.BASELINE_NAMES.values()}
    assert {name for pair in bench.RATIOS for name in pair} <= names


def test_missing_quix_streams_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "quixstreams", None)  # import fails
    rc = bench_engines.main(["quix-job", "localhost:1", "g", "out", "orders", "orders"])
    assert rc == 3
    assert "pip install 'stream-risk[bench]'" in capsys.readouterr().err


def test_an_unknown_engine_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_engines.main(["spark", "localhost:1", "g", "out", "orders", "orders"]) == 2
    assert "unknown engine 'spark'" in capsys.readouterr().err
