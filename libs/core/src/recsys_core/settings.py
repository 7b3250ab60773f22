"""Typed settings for every server, read from the environment.

Each service subclasses :class:`ServerSettings` with its own prefix::

    class CatalogSettings(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="RECSYS_CATALOG_")
        dsn: SecretStr                      # required: no default

and builds it once with ``load_settings(CatalogSettings)``, which fails at
start-up with a :class:`SettingsError` naming the variable
(``RECSYS_CATALOG_DSN: field required``). Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretBytes, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """Invalid or missing settings; the message names each offending environment variable."""

    def __init__(self, message: str, variables: list[str]) -> None:
        super().__init__(message)
        self.variables = variables


class TracingSettings(BaseSettings):
    """OpenTelemetry tracing (recsys_core.tracing) of a process: every gRPC server through
    :class:`ServerSettings`, the web directly."""

    #: the OTLP/gRPC collector that receives the spans ("http://otel-collector.monitoring:4317";
    #: https:// = TLS); empty = tracing off
    otlp_endpoint: str = ""
    #: fraction of the traces that start here that are kept (calls whose caller sampled them
    #: are always traced)
    trace_sample_ratio: float = Field(default=0.1, ge=0, le=1)


#: recsys_core.server.run's event loops: "auto" = uvloop when it can be imported (a dependency of
#: recsys-core; libuv's loop costs less per callback and per task than asyncio's own), else asyncio's.
EventLoop = Literal["auto", "uvloop", "asyncio"]


class LoopSettings(BaseSettings):
    """The event loop of a process started by recsys_core.server.run: every gRPC server through
    :class:`ServerSettings`, the web directly."""

    #: auto, uvloop (fails at start when uvloop is not installed) or asyncio
    event_loop: EventLoop = "auto"


class LogSettings(BaseSettings):
    """Logging (recsys_core.logs) of a process: every gRPC server through
    :class:`ServerSettings`, the web directly."""

    #: DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)
    log_level: str = "INFO"
    #: one JSON object a line (False: plain text, for a terminal)
    log_json: bool = True

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LEVELS:
            raise ValueError(f"must be one of {', '.join(_LEVELS)}")
        return level


class ServerSettings(LogSettings, TracingSettings, LoopSettings):
    """Settings every gRPC server has (env prefix ``RECSYS_`` here, ``RECSYS_<SVC>_`` in services)."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="forbid")

    host: str = "127.0.0.1"
    #: gRPC port; 0 = an ephemeral port (tests)
    port: int = Field(default=50051, ge=0, le=65535)
    #: Prometheus HTTP endpoint; None = none, 0 = ephemeral
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    #: drain time for in-flight calls on stop (keep below the pod's termination grace period)
    grace_seconds: float = Field(default=10.0, ge=0)
    #: pause between health NOT_SERVING and closing the listener (lets load balancers notice)
    shutdown_delay_seconds: float = Field(default=0.0, ge=0)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: the largest request body accepted (RESOURCE_EXHAUSTED above it); None = max_message_bytes.
    #: A public server sets it from its largest legitimate request (the gateway: 256 KiB).
    max_receive_message_bytes: int | None = Field(default=None, gt=0)
    #: every this many seconds, give freed heap back to the OS when the resident size grew by
    #: more than 32 MB since the last time (recsys_core.memory; 0 = never)
    memory_trim_interval_s: float = Field(default=10.0, ge=0)
    #: servers close connections after this age so Kubernetes can rebalance HTTP/2
    max_connection_age_s: float = Field(default=300.0, gt=0)
    #: concurrent RPCs before RESOURCE_EXHAUSTED; None = unbounded
    max_concurrent_rpcs: int | None = Field(default=None, gt=0)
    #: TLS: PEM certificate chain and private key of this server; unset (or empty) = plaintext
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: PEM CA bundle for client certificates; set = mutual TLS (clients without a certificate
    #: signed by it are refused)
    tls_client_ca_file: Path | None = None

    @field_validator("tls_cert_file", "tls_key_file", "tls_client_ca_file", mode="before")
    @classmethod
    def _empty_path(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets ``field``."""
        prefix = str(cls.model_config.get("env_prefix") or "")
        info = cls.model_fields.get(field)
        alias = getattr(info, "validation_alias", None) or getattr(info, "alias", None)
        if isinstance(alias, str):
            return alias.upper()
        return f"{prefix}{field}".upper()


S = TypeVar("S", bound=BaseSettings)


def _is_secret(cls: type[BaseSettings], field: str) -> bool:
    info = cls.model_fields.get(field)
    ann = repr(getattr(info, "annotation", ""))
    lowered = field.lower()
    return (
        "Secret" in ann
        or any(w in lowered for w in ("password", "secret", "token", "key", "dsn", "credential"))
        or (info is not None and isinstance(info.default, SecretStr | SecretBytes))
    )


def _env_name(cls: type[BaseSettings], field: str) -> str:
    if issubclass(cls, ServerSettings):
        return cls.env_name(field)
    return f"{cls.model_config.get('env_prefix') or ''}{field}".upper()


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build ``cls`` from the environment (``overrides`` win); raise :class:`SettingsError` when invalid.

    The message names ``RECSYS_<SVC>_<FIELD>`` for each bad or missing value and
    never echoes the value of a secret-looking field.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems: list[str] = []
        variables: list[str] = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            field = str(loc[0]) if loc else "?"
            var = _env_name(cls, field) if field in cls.model_fields else field
            if field not in cls.model_fields and err.get("type") == "extra_forbidden":
                problems.append(f"{field}: unknown setting")
                variables.append(field)
                continue
            msg = str(err.get("msg", "invalid value"))
            if err.get("type") == "missing":
                msg = "required, not set"
            elif not _is_secret(cls, field) and "input" in err:
                shown = repr(err["input"])
                msg += f" (got {shown[:80]})"
            problems.append(f"{var}: {msg}")
            variables.append(var)
        text = f"invalid settings for {cls.__name__}: " + "; ".join(problems)
        logging.getLogger(__name__).debug(text)
        raise SettingsError(text, variables) from None


__all__ = ["ServerSettings", "SettingsConfigDict", "SettingsError", "load_settings"]
