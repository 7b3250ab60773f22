"""Web settings, from environment variables prefixed RECSYS_WEB_."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from recsys_core.app import DependencyRetry
from recsys_core.settings import LogSettings, LoopSettings, TracingSettings


class RecsysWebSettings(DependencyRetry, LogSettings, TracingSettings, LoopSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_WEB_", extra="forbid")

    #: HTTP listen address; the cluster sets 0.0.0.0
    host: str = "127.0.0.1"
    #: HTTP port; 0 = an ephemeral port (tests)
    port: int = Field(default=8080, ge=0, le=65535)
    #: the gateway (host:port, or dns:///name:port in Kubernetes)
    gateway_target: str = "127.0.0.1:50051"
    #: sent as `x-api-key` metadata when the gateway has API keys configured
    gateway_api_key: SecretStr | None = None
    #: deadline of each gateway call, seconds
    gateway_timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: HMAC key for the demo-identity cookie; unset = a random key per process
    #: (sign-ins then end on restart, and replicas do not share them)
    cookie_secret: SecretStr | None = None
    #: send cookies with the Secure flag (set it behind HTTPS)
    cookie_secure: bool = False
    #: cards in the quiz
    quiz_size: int = Field(default=16, ge=1, le=100)
    #: recommendations shown
    recommend_k: int = Field(default=10, ge=1, le=100)
    #: similar movies on a movie page
    similar_k: int = Field(default=8, ge=1, le=100)
    #: search results
    search_limit: int = Field(default=20, ge=1, le=100)
    #: drain time for open requests on SIGTERM, seconds
    grace_seconds: float = Field(default=10.0, ge=0)
    #: seconds between the gateway health checks that drive /readyz (0 = never re-check);
    #: the start-up wait for the gateway: connect_retry_initial_s/_max_s (recsys_core.app)
    health_check_interval_s: float = Field(default=2.0, ge=0)
