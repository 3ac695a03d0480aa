"""Configuration: one settings model, read from ``STREAM_RISK_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stream_risk.schemas.events import EVENT_TYPES

#: Output and internal topics besides the one-per-type input topics.
OUTPUT_TOPICS = (
    "warnings",
    "dead-letters",
    "profiles",
    "notification-dead-letters",
    "training-examples",
    "models",
    "tier-changes",
    "credit-actions",
    "rules",
)
#: Topics that keep only the latest value per key.
COMPACTED_TOPICS = ("profiles", "models", "rules")
#: Topics one consumer reads in order: the trainer's input, its snapshots, rule sets.
SINGLE_PARTITION_TOPICS = ("training-examples", "models", "rules")


class Settings(BaseSettings):
    """Every setting, with its environment variable ``STREAM_RISK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="STREAM_RISK_", extra="ignore")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for the sinks")
    app_id: str = Field("stream-risk", description="Faust app id (consumer group, table names)")
    partitions: int = Field(4, ge=1, description="partitions of every input topic and table")
    replication_factor: int = Field(1, ge=1, description="replication of created topics")
    topic_prefix: str = Field("stream-risk", description="prefix of every topic name")
    topics: dict[str, str] = Field(
        default_factory=dict,
        description='per-topic name overrides, e.g. {"order": "erp.orders"} (JSON)',
    )
    base_currency: str = Field("EUR", description="currency every amount is converted into")
    fx_rates: dict[str, float] = Field(
        default_factory=dict,
        description="units of base currency per unit of another currency (JSON)",
    )
    allowed_lateness_days: float = Field(
        7.0,
        ge=0,
        description="how far an event may lag its customer's latest event time and still be "
        "applied as if in order; older events go to the dead-letter topic",
    )
    max_event_bytes: int = Field(
        65_536, ge=1_024, description="largest input message; larger ones are dead letters"
    )
    max_message_bytes: int = Field(
        1_000_000,
        ge=65_536,
        description="largest record the worker sends (the producer's limit): a state or "
        "output above it turns its input into a dead letter; dead letters stay below it",
    )
    clock_skew_seconds: float = Field(
        3_600.0,
        gt=0,
        description="how far occurred_at may be ahead of the record's Kafka timestamp and of "
        "the wall clock (see clock_checks); further ahead is a dead letter",
    )
    clock_checks: Literal["live", "record", "off"] = Field(
        "live",
        description="what occurred_at is held to: live (the record's timestamp and the wall "
        "clock), record (the record's timestamp only) or off (simulated streams whose "
        "event time runs ahead of today)",
    )
    max_timer_fires_per_batch: int = Field(
        20_000, ge=1, description="overdue checks fired per batch at most; the rest follow"
    )
    replay_max_ahead_days: float = Field(
        365.0,
        gt=0,
        description="replay: an event further ahead of the stream's own time (the latest "
        "accepted event before it, at least the median event time) is a bad line",
    )
    max_segments: int = Field(
        200,
        ge=1,
        description="segments with their own behaviour detector; further industries share "
        'an "other" one',
    )
    data_dir: Path = Field(Path("./stream-risk-data"), description="worker-local state directory")
    store: Literal["memory", "rocksdb"] = Field(
        "memory",
        description="where a worker keeps its customer states: memory (a restart reads the "
        "whole state changelog) or rocksdb (on disk in data_dir; a restart reads only the "
        "changelog written since; needs pip install 'stream-risk[rocksdb]')",
    )
    standby_replicas: int = Field(
        1,
        ge=0,
        description="other workers that keep a copy of each partition's states by following "
        "its changelog (Faust's table_standby_replicas): one taking the partition over "
        "after a failure then reads little of it; 0 saves their memory and reads",
    )
    web_enabled: bool = Field(
        True, description="serve the HTTP API, the metrics and the dashboard from the worker"
    )
    web_host: str = Field("127.0.0.1", description="address the worker's web server binds to")
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="port of the worker's web server; give each worker on a host its own",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        repr=False,
        description="API keys accepted by the HTTP API, comma separated, each 'id:KEY' "
        "(the id names who acted) or a bare KEY",
    )
    api_rate_per_second: float = Field(
        20.0, ge=0, description="requests per second per API key (0: no limit)"
    )
    api_rate_burst: int = Field(100, ge=1, description="requests an API key may burst at once")
    api_auth: bool = Field(
        True,
        description="require an API key on data endpoints and actions; false only for a local demo",
    )
    api_event_time: Literal["wall", "stream"] = Field(
        "wall",
        description="event time of collection events made by the API: wall (the wall clock) "
        "or stream (the latest event time the worker has processed; for simulated or "
        "replayed streams)",
    )
    log_level: str = Field("info", description="log level of the worker")
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines of the worker: text, or json (one object per line)"
    )
    outcome_horizon_days: float = Field(
        30.0,
        gt=0,
        description="an outcome labels the customer's features as of this many days before it",
    )
    model_refit_every: int = Field(
        500, ge=1, description="the trainer refits the risk model after this many new outcomes"
    )
    tier_thresholds: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"default": {"medium": 0.25, "high": 0.5}},
        description="risk-score thresholds of the medium and high tiers per segment value, e.g. "
        '{"default": {"medium": 0.25, "high": 0.5}, "retail": {"medium": 0.2, "high": 0.4}} (JSON)',
    )
    redis_enabled: bool = Field(True, description="publish profiles and warnings to Redis")
    redis_prefix: str = Field("risk", description="prefix of every Redis key and channel")
    # Kafka TLS and SASL, for every client (stream_risk.kafka_security).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol of every client"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: str | None = Field(None, repr=False, description="SASL password")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (mutual TLS)")
    kafka_ssl_keyfile: Path | None = Field(None, description="client certificate's private key")
    kafka_ssl_check_hostname: bool = Field(True, description="check the brokers' host names")
    signing_secret: str | None = Field(
        None,
        repr=False,
        description="HMAC key of rule-set and model messages; when set, unsigned or badly "
        "signed ones are rejected",
    )
    alignment_max_idle: float = Field(
        2.0,
        ge=0,
        description="seconds a partition's input topics wait for one with nothing fetched "
        "whose lag is not known, before the others' events are applied without it",
    )
    alignment_max_behind: float = Field(
        60.0,
        gt=0,
        description="seconds a partition's input topics wait for one with nothing fetched "
        "whose broker holds records not yet read (a safety net: they normally arrive "
        "within a fetch; a warning is logged when it is reached)",
    )
    session_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds after which the group drops a worker that stopped heartbeating "
        "(its partitions move to the others)",
    )
    commit_interval: float = Field(
        1.0,
        gt=0,
        description="seconds between offset commits (outputs and the state changelog are "
        "flushed before each)",
    )
    commit_every: int = Field(
        1000, gt=0, description="acknowledged records after which offsets are committed early"
    )
    heartbeat_interval: float = Field(
        1.0, gt=0, description="seconds between a worker's heartbeats to the group"
    )
    group_instance_id: str | None = Field(
        None,
        description="static group membership: a stable name per worker (unique in the group); "
        "a worker restarted within the session timeout gets its partitions back without a "
        "rebalance",
    )

    @field_validator("fx_rates")
    @classmethod
    def _positive_rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"exchange rates must be positive: {', '.join(sorted(bad))}")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # One environment variable, keys separated by commas; blanks are dropped.
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("tier_thresholds")
    @classmethod
    def _ordered_tiers(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if "default" not in value:
            raise ValueError('tier thresholds need a "default" entry')
        for segment, t in value.items():
            if set(t) != {"medium", "high"} or not 0 < t["medium"] <= t["high"] <= 1:
                raise ValueError(
                    f"tier thresholds of {segment!r} need 0 < medium <= high <= 1, got {t}"
                )
        return value

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, value: dict[str, str]) -> dict[str, str]:
        known = set(EVENT_TYPES) | set(OUTPUT_TOPICS)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown topic keys {unknown}; known: {', '.join(sorted(known))}")
        return value

    def topic(self, name: str) -> str:
        """The Kafka topic for an input type (``order``) or an output (``warnings``)."""
        return self.topics.get(name) or f"{self.topic_prefix}.{name}"

    def input_topics(self) -> dict[str, str]:
        """Event type -> input topic."""
        return {t: self.topic(t) for t in EVENT_TYPES}


class ConfigurationError(ValueError):
    """The environment does not make valid settings; ``str()`` lists every problem."""


def load_settings() -> Settings:
    """The settings of this process, from ``STREAM_RISK_*`` environment variables.

    The one loader every verb uses; raises :class:`ConfigurationError` naming each
    bad variable.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  STREAM_RISK_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigurationError("bad configuration:\n" + "\n".join(lines)) from None
