"""Channel senders: webhook (signed JSON over HTTP), SMTP e-mail, apprise (chat services).

Each sender has ``setup()`` (no I/O in the constructor), ``send(note)`` that
returns when the notification was accepted or raises :class:`DeliveryError`,
and ``close()``. Retries, backoff and dead letters are the notifier's job.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Protocol

from stream_risk.notify.decide import is_permanent_http_failure
from stream_risk.notify.message import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notification,
    sign,
)
from stream_risk.notify.routes import AppriseChannel, NotifyConfig, SmtpChannel, WebhookChannel

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A failed attempt; ``permanent`` when retrying cannot help (e.g. HTTP 404)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    async def setup(self) -> None: ...

    async def send(self, note: Notification) -> None: ...

    async def close(self) -> None: ...


class WebhookSender:
    """POSTs :meth:`Notification.webhook_body` with signature, timestamp and idempotency key.

    Redirects are not followed: a 3xx would re-post the body and its signature
    to another address; it fails permanently instead (fix the URL).
    ``secret_headers`` are the ``header_env`` values, read from the environment.
    """

    def __init__(
        self,
        channel: WebhookChannel,
        secret: str,
        clock: Callable[[], float] = time.time,
        secret_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.channel = channel
        self._secret = secret.encode()
        self._secret_headers = dict(secret_headers or {})
        self._clock = clock
        self._session: Any = None

    async def setup(self) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.channel.timeout_seconds)
            )

    async def send(self, note: Notification) -> None:
        import aiohttp

        body = note.webhook_body()
        timestamp = int(self._clock())
        headers = {
            **self.channel.headers,
            **self._secret_headers,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            IDEMPOTENCY_HEADER: note.key,
        }
        try:
            async with self._session.post(
                self.channel.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return
                if 300 <= resp.status < 400:
                    raise DeliveryError(
                        f"HTTP {resp.status} from {self.channel.url}: redirects are not "
                        f"followed (to {resp.headers.get('Location', '?')}); fix the URL",
                        permanent=True,
                    )
                detail = (await resp.text())[:200]
                raise DeliveryError(
                    f"HTTP {resp.status} from {self.channel.url}: {detail}".rstrip(": "),
                    permanent=is_permanent_http_failure(resp.status),
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryError(
                f"{type(exc).__name__} posting to {self.channel.url}: {exc}"
            ) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _message_id(text: str) -> str:
    return "<" + re.sub(r"[^\w.-]", "-", text) + "@stream-risk>"


def email_message(note: Notification, sender: str, to: list[str]) -> EmailMessage:
    """The e-mail for a notification; its Message-ID is derived from the idempotency key,
    and messages of one warning share a thread."""
    msg = EmailMessage()
    msg["Subject"] = f"[stream-risk] {note.title}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = _message_id(note.key)
    msg["References"] = _message_id(str(note.warning["warning_id"]))
    msg["X-Stream-Risk-Warning-Id"] = str(note.warning["warning_id"])
    msg["X-Stream-Risk-Kind"] = note.kind
    msg[IDEMPOTENCY_HEADER] = note.key
    msg.set_content(note.text)
    return msg


class SmtpSender:
    """Sends an e-mail with aiosmtplib.

    ``starttls: true`` requires the upgrade; otherwise (without ``tls``) the
    connection is upgraded whenever the server offers STARTTLS, aiosmtplib's
    default. Credentials are only accepted with one of the two (see the routes).
    """

    def __init__(
        self, channel: SmtpChannel, username: str | None = None, password: str | None = None
    ) -> None:
        self.channel = channel
        self._username = username
        self._password = password
        self._send: Any = None

    async def setup(self) -> None:
        try:
            import aiosmtplib
        except ImportError as exc:  # pragma: no cover - a dependency
            raise ImportError("the smtp channel needs aiosmtplib: pip install aiosmtplib") from exc
        self._send = aiosmtplib.send

    async def send(self, note: Notification) -> None:
        import aiosmtplib

        ch = self.channel
        try:
            await self._send(
                email_message(note, ch.sender, ch.to),
                hostname=ch.host,
                port=ch.port,
                username=self._username,
                password=self._password,
                use_tls=ch.tls,
                start_tls=smtp_start_tls(ch),
                timeout=ch.timeout_seconds,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.code} from {ch.host}:{ch.port}: {exc.message}",
                permanent=500 <= exc.code < 600,
            ) from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP recipients refused: {exc}", permanent=True) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {ch.host}:{ch.port}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        return None


def smtp_start_tls(channel: SmtpChannel) -> bool | None:
    """aiosmtplib's ``start_tls``: required, off (implicit TLS), or opportunistic (``None``).

    >>> base = {"type": "smtp", "host": "h", "from": "a@b", "to": ["c@d"]}
    >>> [smtp_start_tls(SmtpChannel.model_validate({**base, **o}))
    ...  for o in ({"starttls": True}, {"tls": True}, {})]
    [True, False, None]
    """
    if channel.starttls:
        return True
    return False if channel.tls else None


_APPRISE_TYPES = {"critical": "failure", "high": "warning", "medium": "warning", "low": "info"}


class AppriseSender:
    """Sends through apprise URLs (Slack, Teams, Matrix, ...); an optional dependency."""

    def __init__(self, channel: AppriseChannel, urls: str) -> None:
        self.channel = channel
        self._urls = [u for u in re.split(r"[\s,]+", urls) if u]
        self._apprise: Any = None

    async def setup(self) -> None:
        try:
            import apprise
        except ImportError as exc:
            raise ImportError(
                "the apprise channel needs the optional 'apprise' package: "
                "pip install 'stream-risk[notify]'"
            ) from exc
        obj = apprise.Apprise()
        bad = [u.split("://")[0] + "://..." for u in self._urls if not obj.add(u)]
        if bad or not self._urls:
            raise ValueError(
                f"{self.channel.urls_env} holds no usable apprise URL"
                + (f" (not understood: {', '.join(bad)})" if bad else "")
            )
        self._apprise = obj

    async def send(self, note: Notification) -> None:
        notify_type = (
            "success"
            if note.kind == "resolved"
            else _APPRISE_TYPES.get(note.warning["level"], "info")
        )
        # Chat services take no headers: the idempotency key closes the text.
        result = await self._apprise.async_notify(
            body=f"{note.text}\n{IDEMPOTENCY_HEADER}: {note.key}",
            title=note.title,
            notify_type=notify_type,
        )
        if not result:
            raise DeliveryError(f"apprise could not deliver to {len(self._urls)} URL(s)")

    async def close(self) -> None:
        self._apprise = None


def build_senders(config: NotifyConfig, environ: Mapping[str, str]) -> dict[str, Sender]:
    """One sender per channel, secrets taken from ``environ`` (check them first with
    :func:`stream_risk.notify.routes.missing_env`)."""
    senders: dict[str, Sender] = {}
    for name, ch in config.channels.items():
        if isinstance(ch, WebhookChannel):
            senders[name] = WebhookSender(
                ch,
                environ[ch.secret_env],
                secret_headers={h: environ[var] for h, var in ch.header_env.items()},
            )
        elif isinstance(ch, SmtpChannel):
            user = environ[ch.username_env] if ch.username_env else None
            password = environ[ch.password_env] if ch.password_env else None
            senders[name] = SmtpSender(ch, user, password)
        else:
            senders[name] = AppriseSender(ch, environ[ch.urls_env])
    return senders
