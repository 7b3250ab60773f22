"""Catalog settings (environment ``RECSYS_CATALOG_*``), on top of the kit's server settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from recsys_core.app import DependencySettings
from recsys_core.settings import SettingsConfigDict


class CatalogSettings(DependencySettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_CATALOG_", extra="forbid")

    #: the port `recsys up` and the gateway's default catalog_target use
    port: int = Field(default=50052, ge=0, le=65535)

    #: PostgreSQL DSN (postgresql://user:pass@host:5432/db). None = an embedded PostgreSQL
    #: server under ``data_dir``, started and stopped with the catalog.
    dsn: SecretStr | None = None
    #: data directory of the embedded server (used only without a DSN)
    data_dir: Path = Path("./var/catalog-pg")
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    #: server-side statement timeout of every catalog query (ms); bulk loads have none
    statement_timeout_ms: int = Field(default=5000, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: how long a call waits for a pooled connection before UNAVAILABLE
    acquire_timeout_s: float = Field(default=5.0, gt=0)
    # connect_retry_initial_s, connect_retry_max_s, health_check_interval_s: DependencySettings
    #: apply migrations when the server starts. None = only for the embedded server
    #: (with a DSN, `recsys catalog migrate` / the migrate Job does it)
    migrate_on_start: bool | None = None
    #: weight C of the catalog-mean prior in the Bayesian average (sum + C*mean) / (n + C)
    bayes_prior_weight: float = Field(default=25.0, ge=0)
    #: half-life (days) of GetPopular's recency-weighted ranking when a request gives none
    recent_half_life_days: float = Field(default=30.0, ge=0.01, le=36500)

    #: AddMovies' upstreams (host:port); empty = AddMovies and RetryPendingMovies answer
    #: FAILED_PRECONDITION (the other RPCs need neither)
    embedder_target: str = ""
    retriever_target: str = ""
    #: longest wait for one embedder or retriever call of AddMovies (the caller's deadline too)
    upstream_timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _pool_sizes(self) -> CatalogSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("pool_min must be <= pool_max")
        return self

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    @property
    def should_migrate_on_start(self) -> bool:
        return self.embedded if self.migrate_on_start is None else self.migrate_on_start
