"""Routing files: good files load, bad files report every error with its line, and the
``notify check`` / ``notify run`` commands say so before connecting to anything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stream_risk.cli import main
from stream_risk.notify.routes import (
    ConfigError,
    RateLimit,
    RetryPolicy,
    load,
    load_file,
    missing_env,
    parse,
)

FIXTURES = Path(__file__).parent / "fixtures" / "notify"
EXAMPLE = Path(__file__).parents[2] / "config" / "notify.example.yaml"
GOOD = sorted(FIXTURES.glob("*.good.yaml"))
BAD = sorted(FIXTURES.glob("*.bad.yaml"))
EXPECT = re.compile(r"^# expect: (\d+): (.+)$")


def test_there_are_fixtures() -> None:
    assert len(GOOD) >= 3 and len(BAD) >= 6


@pytest.mark.parametrize("path", [*GOOD, EXAMPLE], ids=lambda p: p.name)
def test_good_files_load(path: Path) -> None:
    route_file, errors = load_file(path)
    assert errors == []
    assert route_file is not None
    for route in route_file.config.routes:
        assert set(route.channels) <= set(route_file.config.channels)


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_files_report_every_error_with_its_line(path: Path) -> None:
    expected = [
        (int(m.group(1)), m.group(2)) for m in map(EXPECT.match, path.read_text().splitlines()) if m
    ]
    assert expected, f"{path.name} states no expected errors"
    route_file, errors = load_file(path)
    assert route_file is None
    got = [(e.line, str(e)) for e in errors]
    assert len(got) == len(expected), "\n".join(s for _, s in got)
    for (line, text), (got_line, got_text) in zip(expected, got, strict=True):
        assert got_line == line, got_text
        assert got_text.startswith(f"{path}:{line}: ")
        assert text in got_text


def test_parse_is_separate_from_load() -> None:
    parsed = parse("channels:\n  hook: {type: webhook}\nroutes: []\n", "inline.yaml")
    assert parsed.errors == []
    assert parsed.data["channels"]["hook"]["type"] == "webhook"
    route_file, errors = load(parsed)
    assert route_file is None
    assert [str(e) for e in errors] == [
        "inline.yaml:2: channel 'hook': url: Field required",
        "inline.yaml:2: channel 'hook': secret_env: Field required",
    ]


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    route_file, errors = load_file(tmp_path / "nope.yaml")
    assert route_file is None
    assert [str(e) for e in errors] == [f"{tmp_path / 'nope.yaml'}: no such file"]


def test_defaults_and_per_channel_overrides() -> None:
    route_file, errors = load_file(FIXTURES / "segments.good.yaml")
    assert errors == [] and route_file is not None
    config = route_file.config
    assert config.retry_for("mail") == RetryPolicy(attempts=3, base_seconds=0.5, max_seconds=5)
    assert config.retry_for("chat").attempts == 2
    assert config.rate_limit_for("mail") == RateLimit(max=2, window_seconds=600)
    assert config.rate_limit_for("hook") is None  # `rate_limit: null` turns the default off
    assert config.defaults.idempotency_ttl_seconds == 86_400


def test_missing_environment_variables_name_the_channel_and_line() -> None:
    route_file, _ = load_file(FIXTURES / "segments.good.yaml")
    assert route_file is not None
    env = {"HOOK_SECRET": "x", "SMTP_USER": "u", "SMTP_PASSWORD": ""}
    assert [str(e) for e in missing_env(route_file, env)] == [
        f"{FIXTURES / 'segments.good.yaml'}:19: channel 'mail': "
        "password_env: environment variable SMTP_PASSWORD is not set",
        f"{FIXTURES / 'segments.good.yaml'}:24: channel 'chat': "
        "urls_env: environment variable CHAT_URLS is not set",
    ]


def test_config_error_without_a_line() -> None:
    assert str(ConfigError("f.yaml", None, "", "no such file")) == "f.yaml: no such file"


# --- the commands -----------------------------------------------------------------------------


def test_check_lists_every_error_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    bad = FIXTURES / "fields.bad.yaml"
    assert main(["notify", "check", str(FIXTURES / "minimal.good.yaml"), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "minimal.good.yaml: OK, 1 channel(s), 1 route(s)" in captured.out
    assert captured.err.count(f"{bad}:") == 14 + 1  # every error, then the summary
    assert f"{bad}: FAILED, 14 error(s)" in captured.err


def test_check_passes_good_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "check", *map(str, GOOD)]) == 0
    assert capsys.readouterr().out.count(": OK,") == len(GOOD)


def test_check_require_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    path = str(FIXTURES / "minimal.good.yaml")
    assert main(["notify", "check", path]) == 0
    assert "HOOK_SECRET is not set" in capsys.readouterr().err
    assert main(["notify", "check", "--require-env", path]) == 1
    monkeypatch.setenv("HOOK_SECRET", "s")
    assert main(["notify", "check", "--require-env", path]) == 0


def test_run_refuses_a_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["notify", "run", "--routes", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert main(["notify", "run", "--routes", str(FIXTURES / "references.bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "unknown channel 'pager'" in err and "nothing started" in err


def test_run_refuses_an_unset_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    assert main(["notify", "run", "--routes", str(FIXTURES / "minimal.good.yaml")]) == 2
    err = capsys.readouterr().err
    assert "secret_env: environment variable HOOK_SECRET is not set" in err


def test_run_refuses_a_claim_time_shorter_than_the_retries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s")
    path = str(FIXTURES / "minimal.good.yaml")  # default retries wait 1+2+4+8 s
    assert main(["notify", "run", "--routes", path, "--claim-idle", "10"]) == 2
    assert "longest retry sequence (15s)" in capsys.readouterr().err
