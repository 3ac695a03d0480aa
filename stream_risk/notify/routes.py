"""The routing file: which warnings go to which channels, and how channels deliver.

Checked like a Prometheus rule file: :func:`parse` turns text into plain data
that remembers the line of every key (YAML syntax errors and duplicate keys
are reported here), :func:`load` validates that data into a
:class:`NotifyConfig`, and both collect *every* problem as a
:class:`ConfigError` naming the file, the channel or route, and the line,
instead of stopping at the first. :func:`load_file` does both.

A file looks like this (``config/notify.example.yaml`` is a complete one)::

    defaults:
      retry: {attempts: 5, base_seconds: 1, max_seconds: 60}
      rate_limit: {max: 5, window_seconds: 3600}
    channels:
      collections-hook:
        type: webhook
        url: https://collections.example.com/hooks/stream-risk
        secret_env: STREAM_RISK_WEBHOOK_SECRET
    routes:
      - name: overdue-retail
        match: {min_level: high, segment: {industry: [retail, wholesale]}}
        channels: [collections-hook]

Secrets never appear in the file: a channel names the environment variable
that holds them (``secret_env``, ``password_env``, ``urls_env``, and
``header_env`` for webhook headers such as ``Authorization``). A webhook URL
must be ``https://`` unless the channel says ``allow_http: true``; SMTP
credentials need ``starttls: true`` or ``tls: true``.

>>> config, errors = load(parse("channels: {}\\nroutes: []\\n", "r.yaml"))
>>> errors
[]
>>> _, errors = load(parse("channels: {}\\nroutes: [{name: a, channels: [nope]}]\\n", "r.yaml"))
>>> print(errors[0])
r.yaml:2: route 'a': channels: unknown channel 'nope' (defined: none)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stream_risk.core.units import DAY
from stream_risk.schemas.outputs import Level

Status = Literal["firing", "resolved"]
SegmentField = Literal["industry", "size", "region"]
_BOTH: tuple[Status, ...] = ("firing", "resolved")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_EMAIL = r"^[^@\s]+@[^@\s]+$"
_URL = r"^https?://[^\s/]+"
# Keys that would put a secret into the file itself.
_INLINE_SECRETS = {"secret", "password", "token", "api_key", "urls"}
# Header names that carry credentials: their values come from header_env.
_SECRET_HEADER = re.compile(
    r"auth|token|secret|key|passw|cookie|signature|credential|session", re.IGNORECASE
)


@dataclass(frozen=True)
class ConfigError:
    """One problem in a routing file: where it is and what is wrong."""

    source: str
    line: int | None
    where: str
    message: str

    def __str__(self) -> str:
        at = f"{self.source}:{self.line}" if self.line else self.source
        return f"{at}: {self.where}: {self.message}" if self.where else f"{at}: {self.message}"


# --- parse: YAML text -> data that knows its lines ------------------------------------------------


class LineMap(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    line: int = 0
    item_lines: list[int]


@dataclass
class Parsed:
    """The data of one routing file, with lines, and where it came from."""

    source: str
    data: Any
    errors: list[ConfigError] = field(default_factory=list)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that builds :class:`LineMap`/:class:`LineList` and rejects duplicate keys."""

    duplicates: list[tuple[int, str]]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in out:
            loader.duplicates.append(
                (line, f"duplicate key {key!r} (first on line {out.key_lines[key]})")
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)  # type: ignore[arg-type]


def parse(text: str, source: str) -> Parsed:
    """Parse routing-file text; YAML errors and duplicate keys become :class:`ConfigError`."""
    loader = _LineLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        return Parsed(source, None, [ConfigError(source, line, "", f"invalid YAML: {problem}")])
    finally:
        loader.dispose()
    errors = [ConfigError(source, line, "", msg) for line, msg in loader.duplicates]
    return Parsed(source, data, errors)


def line_of(data: Any, path: Sequence[Any]) -> int | None:
    """The line of the deepest element of ``path`` that the data knows.

    >>> p = parse("a:\\n  b:\\n    - x\\n    - y\\n", "f")
    >>> line_of(p.data, ["a", "b", 1]), line_of(p.data, ["a", "missing"])
    (4, 1)
    """
    line: int | None = getattr(data, "line", None) or None
    node = data
    for part in path:
        if isinstance(node, LineMap) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


# --- the model ------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Strict):
    """Attempts per notification, and the exponential backoff between them."""

    attempts: int = Field(5, ge=1, le=100, description="attempts in all, the first included")
    base_seconds: float = Field(1.0, gt=0, description="pause after the first failed attempt")
    max_seconds: float = Field(60.0, gt=0, description="longest pause between two attempts")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures: ``base * 2**(n-1)``, capped.

        >>> p = RetryPolicy(attempts=6, base_seconds=0.5, max_seconds=3)
        >>> [p.delay(n) for n in range(1, 6)]
        [0.5, 1.0, 2.0, 3.0, 3.0]
        """
        return float(min(self.base_seconds * 2 ** (failed_attempts - 1), self.max_seconds))

    def total_wait(self) -> float:
        """Seconds spent waiting between all attempts when every one fails."""
        return sum(self.delay(n) for n in range(1, self.attempts))


class RateLimit(_Strict):
    """At most ``max`` notifications per customer per ``window_seconds`` on one channel."""

    max: int = Field(ge=1)
    window_seconds: float = Field(gt=0)


class _ChannelBase(_Strict):
    retry: RetryPolicy | None = None
    rate_limit: RateLimit | None = None
    timeout_seconds: float = Field(10.0, gt=0)


class WebhookChannel(_ChannelBase):
    """POST the notification as JSON, signed with HMAC-SHA256."""

    type: Literal["webhook"]
    # Before url: the url check reads it.
    allow_http: bool = Field(
        False, description="accept an http:// URL (the body and signature go in clear text)"
    )
    url: str = Field(pattern=_URL)
    secret_env: str = Field(pattern=_ENV_NAME)
    headers: dict[str, str] = Field(default_factory=dict)
    header_env: dict[str, Annotated[str, Field(pattern=_ENV_NAME)]] = Field(
        default_factory=dict,
        description="header name -> environment variable holding its value (credentials)",
    )

    @field_validator("url")
    @classmethod
    def _https_unless_allowed(cls, url: str, info: ValidationInfo) -> str:
        if url.lower().startswith("http://") and not info.data.get("allow_http"):
            raise ValueError(
                "http:// sends notifications in clear text; use https:// "
                "(or set allow_http: true for this channel)"
            )
        return url


class SmtpChannel(_ChannelBase):
    """Send an e-mail through an SMTP server."""

    type: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(25, ge=1, le=65535)
    sender: str = Field(alias="from", pattern=_EMAIL)
    to: list[Annotated[str, Field(pattern=_EMAIL)]] = Field(min_length=1)
    starttls: bool = False
    tls: bool = False
    username_env: str | None = Field(None, pattern=_ENV_NAME)
    password_env: str | None = Field(None, pattern=_ENV_NAME)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpChannel:
        if self.starttls and self.tls:
            raise ValueError("choose one of starttls (upgrade) and tls (implicit TLS)")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if self.username_env is not None and not (self.starttls or self.tls):
            raise ValueError(
                "credentials need an encrypted connection: set starttls: true (port 587) "
                "or tls: true (port 465)"
            )
        return self


class AppriseChannel(_ChannelBase):
    """Chat and push services through apprise (``pip install 'stream-risk[notify]'``)."""

    type: Literal["apprise"]
    urls_env: str = Field(pattern=_ENV_NAME)


Channel = Annotated[WebhookChannel | SmtpChannel | AppriseChannel, Field(discriminator="type")]
CHANNEL_TYPES = ("webhook", "smtp", "apprise")
_CHANNEL = TypeAdapter[WebhookChannel | SmtpChannel | AppriseChannel](Channel)


class Match(_Strict):
    """What a route matches; every given condition must hold (an empty match takes all)."""

    levels: list[Level] | None = Field(None, min_length=1)
    # Low warnings are for the dashboard's record, not for people: routes take medium
    # and above unless they say otherwise (``min_level: low`` or ``levels``).
    min_level: Level | None = "medium"
    status: list[Status] = Field(default_factory=lambda: list(_BOTH), min_length=1)
    rules: list[str] | None = Field(None, min_length=1)
    segment: dict[SegmentField, str | list[str]] = Field(default_factory=dict)
    labels: dict[str, str | list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_level_condition(self) -> Match:
        if self.levels is not None and "min_level" in self.model_fields_set:
            raise ValueError("give levels or min_level, not both")
        if self.levels is not None:
            object.__setattr__(self, "min_level", None)
        return self


class Route(_Strict):
    """Warnings matching ``match`` go to ``channels``; routes after a match are skipped
    unless it says ``continue: true``."""

    name: str = Field(min_length=1, pattern=r"^[\w.-]+$")
    match: Match = Field(default_factory=Match)
    channels: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")


class Defaults(_Strict):
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    rate_limit: RateLimit | None = None
    idempotency_ttl_seconds: int = Field(int(30 * DAY), ge=60)


class NotifyConfig(_Strict):
    """A validated routing file."""

    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    channels: dict[str, WebhookChannel | SmtpChannel | AppriseChannel] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    def retry_for(self, channel: str) -> RetryPolicy:
        return self.channels[channel].retry or self.defaults.retry

    def rate_limit_for(self, channel: str) -> RateLimit | None:
        """The channel's own limit; ``rate_limit: null`` on a channel turns the default off."""
        ch = self.channels[channel]
        return ch.rate_limit if "rate_limit" in ch.model_fields_set else self.defaults.rate_limit


@dataclass
class RouteFile:
    """A loaded routing file: the config, where it came from, and lines for later messages."""

    config: NotifyConfig
    source: str
    data: Any

    def line(self, *path: Any) -> int | None:
        return line_of(self.data, path)


# --- load: data -> NotifyConfig, every error collected --------------------------------------------

_TOP_KEYS = ("version", "defaults", "channels", "routes")
_PATTERN_TEXT = {
    _ENV_NAME: "must be an environment variable name",
    _EMAIL: "must be an e-mail address",
    _URL: "must be an http:// or https:// URL",
    r"^[\w.-]+$": "may hold letters, digits, '.', '_' and '-' only",
}


def _describe(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _pydantic_errors(
    exc: ValidationError, parsed: Parsed, base: Sequence[Any], where: str, strip_tag: bool = False
) -> list[ConfigError]:
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if strip_tag and loc and loc[0] in CHANNEL_TYPES:
            loc = loc[1:]
        # Field aliases: errors name the alias users wrote (``from``, ``continue``).
        loc = ["from" if p == "sender" else "continue" if p == "continue_" else p for p in loc]
        line = line_of(parsed.data, [*base, *loc])
        msg = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            msg, loc = f"unknown key {loc[-1]!r}", loc[:-1]
        elif loc and loc[-1] == "[key]":
            msg, loc = f"unknown key {err['input']!r} ({msg})", loc[:-2]
        elif err["type"] == "string_pattern_mismatch":
            pattern = str((err.get("ctx") or {}).get("pattern", ""))
            msg = f"{_PATTERN_TEXT.get(pattern, msg)}, got {err['input']!r}"
        elif err["type"] in ("literal_error", "bool_parsing", "int_parsing", "float_parsing"):
            msg = f"{msg}, got {err['input']!r}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(
            ConfigError(parsed.source, line, where, f"{_describe(loc)}: {msg}" if loc else msg)
        )
    return out


def load(parsed: Parsed) -> tuple[RouteFile | None, list[ConfigError]]:
    """Validate parsed data; return the loaded file (or ``None``) and every error found."""
    errors = list(parsed.errors)
    source, data = parsed.source, parsed.data
    if parsed.data is None and errors:
        return None, errors
    if data is None:
        data = LineMap()
    if not isinstance(data, Mapping):
        return None, [*errors, ConfigError(source, line_of(data, []), "", "expected a mapping")]

    def err(path: Sequence[Any], where: str, message: str) -> None:
        errors.append(ConfigError(source, line_of(data, path), where, message))

    for key in data:
        if key not in _TOP_KEYS:
            err([key], "", f"unknown top-level key {key!r} (known: {', '.join(_TOP_KEYS)})")

    try:
        defaults = Defaults.model_validate(data.get("defaults") or {})
    except ValidationError as exc:
        errors += _pydantic_errors(exc, parsed, ["defaults"], "defaults")
        defaults = Defaults()
    version = data.get("version", 1)
    if version != 1:
        err(["version"], "", f"unsupported version {version!r} (this release reads version 1)")

    channels: dict[str, WebhookChannel | SmtpChannel | AppriseChannel] = {}
    raw_channels = data.get("channels") or {}
    if not isinstance(raw_channels, Mapping):
        err(["channels"], "", "channels must be a mapping of channel name to channel")
        raw_channels = {}
    for name, raw in raw_channels.items():
        where = f"channel {name!r}"
        if not isinstance(raw, Mapping):
            err(["channels", name], where, "expected a mapping with a type")
            continue
        inline = sorted(set(raw) & _INLINE_SECRETS)
        for key in inline:
            env_key = "urls_env" if key == "urls" else f"{key}_env"
            err(
                ["channels", name, key],
                where,
                f"{key}: secrets never go in the file; name an environment variable with {env_key}",
            )
        headers = raw.get("headers")
        secret_headers = (
            sorted(str(h) for h in headers if _SECRET_HEADER.search(str(h)))
            if isinstance(headers, Mapping)
            else []
        )
        for header in secret_headers:
            err(
                ["channels", name, "headers", header],
                where,
                f"headers.{header}: secrets never go in the file; name an environment "
                f"variable with header_env: {{{header}: VARIABLE}}",
            )
        if secret_headers and isinstance(headers, Mapping):
            raw = {**raw, "headers": {k: v for k, v in headers.items() if k not in secret_headers}}
        if raw.get("type") not in CHANNEL_TYPES:
            err(
                ["channels", name, "type"],
                where,
                f"type: must be one of {', '.join(CHANNEL_TYPES)}, got {raw.get('type')!r}",
            )
            continue
        try:
            channels[name] = _CHANNEL.validate_python(
                {k: v for k, v in raw.items() if k not in inline}
            )
        except ValidationError as exc:
            errors += _pydantic_errors(exc, parsed, ["channels", name], where, strip_tag=True)

    routes: list[Route] = []
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        err(["routes"], "", "routes must be a list")
        raw_routes = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_routes):
        name = raw.get("name") if isinstance(raw, Mapping) else None
        where = f"route {name!r}" if isinstance(name, str) else f"routes[{i}]"
        try:
            route = Route.model_validate(raw)
        except ValidationError as exc:
            errors += _pydantic_errors(exc, parsed, ["routes", i], where)
            route = None
        if isinstance(name, str):
            if name in seen:
                err(
                    ["routes", i, "name"],
                    where,
                    f"duplicate route name (also routes[{seen[name]}])",
                )
            seen.setdefault(name, i)
        targets = raw.get("channels") if isinstance(raw, Mapping) else None
        for j, target in enumerate(targets if isinstance(targets, list) else []):
            if isinstance(target, str) and target not in raw_channels:
                known = ", ".join(sorted(map(str, raw_channels))) or "none"
                err(
                    ["routes", i, "channels", j],
                    where,
                    f"channels: unknown channel {target!r} (defined: {known})",
                )
        if route is not None:
            routes.append(route)

    for name, channel in channels.items():
        retry = channel.retry or defaults.retry
        if retry.base_seconds > retry.max_seconds:
            err(
                ["channels", name, "retry"] if channel.retry else ["defaults", "retry"],
                f"channel {name!r}",
                "retry: base_seconds is larger than max_seconds",
            )
    if errors:
        return None, sorted(errors, key=lambda e: e.line or 0)
    config = NotifyConfig(version=1, defaults=defaults, channels=channels, routes=routes)
    return RouteFile(config, source, data), []


def load_file(path: str | Path) -> tuple[RouteFile | None, list[ConfigError]]:
    """Read, parse and load a routing file; a missing or unreadable file is one error."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [ConfigError(source, None, "", "no such file")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [ConfigError(source, None, "", f"cannot read: {exc}")]
    return load(parse(text, source))


def env_names(config: NotifyConfig) -> dict[str, list[tuple[str, str]]]:
    """Environment variables each channel reads: channel -> [(key, variable)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, ch in config.channels.items():
        pairs = []
        for key in ("secret_env", "urls_env", "username_env", "password_env"):
            var = getattr(ch, key, None)
            if var:
                pairs.append((key, var))
        for header, var in getattr(ch, "header_env", {}).items():
            pairs.append((f"header_env.{header}", var))
        out[name] = pairs
    return out


def missing_env(route_file: RouteFile, environ: Mapping[str, str]) -> list[ConfigError]:
    """One error per environment variable a channel names that is unset or empty."""
    errors = []
    for name, pairs in env_names(route_file.config).items():
        for key, var in pairs:
            if not environ.get(var):
                errors.append(
                    ConfigError(
                        route_file.source,
                        route_file.line("channels", name, key),
                        f"channel {name!r}",
                        f"{key}: environment variable {var} is not set",
                    )
                )
    return errors
