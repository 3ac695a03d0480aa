"""Kafka TLS/SASL settings as client arguments, and signed rule-set and model messages."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stream_risk.agents.model_feed import CompactedFeed
from stream_risk.config import Settings
from stream_risk.kafka_security import KafkaSecurity
from stream_risk.message_auth import SIGNATURE_HEADER, check, sign_headers


def test_plain_text_gives_no_arguments() -> None:
    security = KafkaSecurity.from_settings(Settings())
    assert security.kafka_python() == security.aiokafka() == security.faust() == {}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_for_every_client_kind(mechanism: str) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="worker",
        kafka_sasl_password="pw",
    )
    security = KafkaSecurity.from_settings(settings)
    for options in (security.kafka_python(), security.aiokafka()):
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == mechanism
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("worker", "pw")
        assert isinstance(options["ssl_context"], ssl.SSLContext)
        assert options["ssl_context"].check_hostname
    credentials = security.faust()["broker_credentials"]
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == mechanism
    assert (credentials.username, credentials.password) == ("worker", "pw")
    assert "pw" not in repr(settings) and "pw" not in repr(security)


def test_faust_gives_its_clients_the_same_options() -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    security = KafkaSecurity(
        protocol="SASL_PLAINTEXT", mechanism="SCRAM-SHA-256", username="u", password="p"
    )
    options = credentials_to_aiokafka_auth(security.faust()["broker_credentials"])
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["ssl_context"] is None


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=stream-risk-test", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_mutual_tls_loads_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    security = KafkaSecurity.from_settings(
        Settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=cert,
            kafka_ssl_certfile=cert,
            kafka_ssl_keyfile=key,
            kafka_ssl_check_hostname=False,
        )
    )
    context = security.aiokafka()["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and not context.check_hostname
    assert any("stream-risk-test" in str(c.get("subject")) for c in context.get_ca_certs())
    assert security.faust()["broker_credentials"].context is not None
    with pytest.raises(FileNotFoundError):
        KafkaSecurity(protocol="SSL", cafile=tmp_path / "missing.pem").ssl_context()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"protocol": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
        ({"protocol": "PLAINTEXT", "username": "u", "password": "p"}, "protocol is PLAINTEXT"),
        ({"protocol": "SSL", "certfile": Path("c.pem")}, "go together"),
        (
            {"protocol": "SASL_PLAINTEXT", "username": "u", "password": "p", "cafile": Path("x")},
            "TLS files are set",
        ),
    ],
)
def test_inconsistent_settings_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        KafkaSecurity(**options)


# --- signed rule sets and models ------------------------------------------------------------------


def test_signatures_bind_key_and_value() -> None:
    headers = sign_headers("k", b"v1", b"body")
    assert check("k", b"v1", b"body", headers) is None
    assert check("k", b"v2", b"body", headers) == "bad signature"  # moved to another key
    assert check("other", b"v1", b"body", headers) == "bad signature"
    assert check("k", b"v1", b"body", [("other-header", b"x")]) == "unsigned"
    assert sign_headers(None, b"v1", b"body") == []
    # The key's length is signed too: no sliding bytes between key and value.
    assert check("k", b"v1b", b"ody", headers) == "bad signature"


def _feed(secret: str | None) -> tuple[CompactedFeed, list[bytes]]:
    applied: list[bytes] = []
    feed = CompactedFeed("127.0.0.1:1", "t.rules", lambda k, v: applied.append(v), secret=secret)
    return feed, applied


def test_a_feed_with_a_secret_applies_only_validly_signed_records() -> None:
    feed, applied = _feed("s3cret")
    good = sign_headers("s3cret", b"v1", b"rules-1")

    async def scenario() -> None:
        await feed._take(b"v1", b"rules-1", good)
        await feed._take(b"v2", b"rules-2", [])  # unsigned
        await feed._take(b"v3", b"rules-3", [(SIGNATURE_HEADER, b"sha256=00")])  # forged
        await feed._take(b"v4", b"rules-4", sign_headers("wrong", b"v4", b"rules-4"))

    asyncio.run(scenario())
    assert applied == [b"rules-1"]
    assert (feed.applied, feed.rejected, feed.rejected_signatures) == (1, 3, 3)


def test_a_feed_without_a_secret_checks_nothing() -> None:
    feed, applied = _feed(None)
    asyncio.run(feed._take(b"v1", b"rules-1", []))
    assert applied == [b"rules-1"] and feed.rejected_signatures == 0
