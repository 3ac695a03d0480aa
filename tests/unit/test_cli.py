"""Every verb explains itself; bad configuration is a clear error, not a traceback."""

from __future__ import annotations

import argparse

import pytest

from stream_risk.cli import build_parser, main


def _verbs() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_all_verbs_are_there() -> None:
    assert set(_verbs()) == {
        "backtest",
        "bench",
        "bench-latency",
        "bench-restart",
        "chaos",
        "costs",
        "demo",
        "features",
        "notify",
        "replay",
        "rules",
        "simulate",
        "topics",
        "uci-split",
        "worker",
    }


@pytest.mark.parametrize("verb", _verbs())
def test_every_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: stream-risk {verb}")
    assert len(out.splitlines()) > 3


def test_bad_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_RISK_PARTITIONS", "zero")
    assert main(["replay", __file__]) == 2
    err = capsys.readouterr().err
    assert "bad configuration" in err
    assert "STREAM_RISK_PARTITIONS" in err


def test_missing_replay_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "no-such-file.jsonl"]) == 2
    assert "no such file: no-such-file.jsonl" in capsys.readouterr().err
