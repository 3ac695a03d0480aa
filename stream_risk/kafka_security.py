"""Kafka TLS and SASL: one set of settings, the keyword arguments of every client kind.

The settings (``STREAM_RISK_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_MECHANISM``,
``..._SASL_USERNAME``, ``..._SASL_PASSWORD``, ``..._SSL_CAFILE``,
``..._SSL_CERTFILE``, ``..._SSL_KEYFILE``, ``..._SSL_CHECK_HOSTNAME``) become
:class:`KafkaSecurity`, which gives the arguments for each library the project
builds clients with: :meth:`KafkaSecurity.faust` (``faust.App``),
:meth:`KafkaSecurity.aiokafka` (consumers and producers of the feeds, the
trainer's recovery and the notifier) and :meth:`KafkaSecurity.kafka_python`
(admin, simulator, rules publisher). Plain text gives no arguments at all, so a
client built with them behaves exactly as before.

>>> KafkaSecurity().kafka_python()
{}
>>> s = KafkaSecurity(protocol="SASL_PLAINTEXT", mechanism="SCRAM-SHA-512",
...                   username="worker", password="pw")
>>> opts = s.kafka_python()
>>> opts["security_protocol"], opts["sasl_mechanism"], opts["sasl_plain_username"]
('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'worker')
>>> s
KafkaSecurity(protocol='SASL_PLAINTEXT', mechanism='SCRAM-SHA-512', username='worker', ...)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from stream_risk.config import Settings

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
#: kafka-python's own reconnect backoff (it adds jitter): 0.1 s doubling up to 30 s.
RECONNECT_BACKOFF_MS = 100
RECONNECT_BACKOFF_MAX_MS = 30_000


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client authenticates and encrypts (plain text by default)."""

    protocol: Protocol = "PLAINTEXT"
    mechanism: Mechanism = "PLAIN"
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("Kafka security settings: " + "; ".join(problems))

    def __repr__(self) -> str:
        # Never the password, nor file paths nobody asked for.
        return (
            f"KafkaSecurity(protocol={self.protocol!r}, mechanism={self.mechanism!r}, "
            f"username={self.username!r}, ...)"
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The security options of ``settings``; raises ``ValueError`` when they do not fit."""
        return cls(
            protocol=settings.kafka_security_protocol,
            mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            check_hostname=settings.kafka_ssl_check_hostname,
        )

    @classmethod
    def from_environment(cls) -> KafkaSecurity:
        """The options of the ``STREAM_RISK_*`` environment (for callers without settings)."""
        from stream_risk.config import Settings

        return cls.from_settings(Settings())

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def problems(self) -> list[str]:
        """Every inconsistency, e.g. SASL without a user (the constructor raises on any).

        >>> KafkaSecurity(protocol="SASL_SSL")
        Traceback (most recent call last):
        ...
        ValueError: Kafka security settings: SASL_SSL needs KAFKA_SASL_USERNAME and \
KAFKA_SASL_PASSWORD
        """
        out = []
        if self.sasl and not (self.username and self.password):
            out.append(f"{self.protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if not self.sasl and (self.username or self.password):
            out.append(f"a SASL user is set but the protocol is {self.protocol}")
        if (self.certfile is None) != (self.keyfile is None):
            out.append("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        if not self.tls and (self.cafile or self.certfile):
            out.append(f"TLS files are set but the protocol is {self.protocol}")
        return out

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (system CAs unless a CA file is given), or ``None``."""
        if not self.tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.cafile) if self.cafile is not None else None
        )
        context.check_hostname = self.check_hostname
        if self.certfile is not None and self.keyfile is not None:
            context.load_cert_chain(str(self.certfile), str(self.keyfile))
        return context

    def _sasl(self) -> dict[str, Any]:
        if not self.sasl:
            return {}
        return {
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of ``AIOKafkaConsumer`` and ``AIOKafkaProducer``."""
        if self.protocol == "PLAINTEXT":
            return {}
        return {"security_protocol": self.protocol, "ssl_context": self.ssl_context()} | (
            self._sasl()
        )

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's producer, consumer and admin client."""
        if self.protocol == "PLAINTEXT":
            return {}
        return {"security_protocol": self.protocol, "ssl_context": self.ssl_context()} | (
            self._sasl()
        )

    def faust(self) -> dict[str, Any]:
        """Keyword arguments of ``faust.App``: ``broker_credentials`` when not plain text."""
        if self.protocol == "PLAINTEXT":
            return {}
        import faust

        context = self.ssl_context()
        credentials: Any
        if self.sasl:
            credentials = faust.SASLCredentials(
                username=self.username,
                password=self.password,
                ssl_context=context,
                mechanism=self.mechanism,
            )
        else:
            credentials = faust.SSLCredentials(context)
        return {"broker_credentials": credentials}


#: kafka-python reconnects with its own jittered exponential backoff; these bound it.
KAFKA_PYTHON_BACKOFF: dict[str, Any] = {
    "reconnect_backoff_ms": RECONNECT_BACKOFF_MS,
    "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
}
