"""Gateway settings, from environment variables prefixed RECSYS_GATEWAY_."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from recsys.catalog.v1 import catalog_pb2
from recsys_core.client import ClientTLS
from recsys_core.settings import ServerSettings

#: the gateway's default max_receive_message_bytes
MAX_REQUEST_BYTES = 256 * 1024


class GatewaySettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_GATEWAY_")

    port: int = 50051
    # The largest request body accepted (RESOURCE_EXHAUSTED above it): 256 KiB, about 2.5x the
    # largest legitimate request (SampleMovies with 10,000 exclude_ids of the longest varint,
    # 94 KB; Recommend with 1,000 liked + 1,000 disliked, 45 KB; RecordFeedback with 1,000
    # ratings, 42 KB; see tests/unit/gateway/test_request_sizes.py). The default 4 MiB let
    # 16 callers with 4 MB bodies cost the gateway ~0.5 GB (issue #16 item 7).
    max_receive_message_bytes: int | None = Field(default=MAX_REQUEST_BYTES, gt=0)
    # Upstream addresses (host:port, or dns:///name:port for client-side round robin in Kubernetes).
    catalog_target: str = "127.0.0.1:50052"
    embedder_target: str = "127.0.0.1:50053"
    retriever_target: str = "127.0.0.1:50054"
    # TLS to the upstreams: CA bundle their certificates chain to (set = TLS; empty = plaintext),
    # this gateway's client certificate and key for mutual TLS (both or neither), and the name
    # to verify in the upstreams' certificates when it differs from the target host.
    upstream_tls_ca_file: Path | None = None
    upstream_tls_cert_file: Path | None = None
    upstream_tls_key_file: Path | None = None
    upstream_tls_server_name: str = ""
    # Per-hop deadline (seconds) when the caller set none; otherwise the caller's remaining budget.
    upstream_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # Calls in flight per upstream; more wait (bounded by their deadline).
    max_in_flight_per_upstream: int = Field(default=64, ge=1, le=10000)
    # API keys: comma-separated ("k1,k2") or a JSON list ('["k1","k2"]'). Empty = no authentication.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Quiz default: only movies with at least this many ratings.
    sample_min_ratings: int = Field(default=50, ge=0)
    # Recommend by user_id: how many of the user's newest ratings go to the embedder to build the
    # user vector (the history window; the catalog's GetUserHistory limit, 1..10000). It does not
    # bound exclusion: every movie the user rated is excluded, whatever the count. (Was
    # HISTORY_LIMIT, which bounded both.)
    history_window: int = Field(default=1000, ge=1, le=10000)
    # The user's history travels as packed columns (catalog GetUserHistory columns=true ->
    # embedder QuerySignal.history_columns) instead of one message per event. Needs catalog and
    # embedder of this release or later: turn off while an older embedder still serves.
    history_columns: bool = True
    # What a Recommend with no signal (no history, no demographics, only unknown movies) serves:
    # catalog GetPopular with this ranking, a PopularityRanking name without its prefix
    # ("recent", "bayesian_average", "most_rated"), and for "recent" the half-life in days
    # (0 = the catalog's RECSYS_CATALOG_RECENT_HALF_LIFE_DAYS). `recsys up` sets both from the
    # served artifact's manifest ("popularity", chosen on a time split by `recsys train`).
    popular_ranking: str = "recent"
    popular_half_life_days: float = Field(default=0.0, ge=0, le=36500)
    # PinSage item vectors kept for "because you liked" (entries, one model version at a time;
    # 0 = fetch them from the embedder on every Recommend).
    item_vector_cache: int = Field(default=200_000, ge=0, le=10_000_000)
    # Seconds a movie card (catalog metadata and rating stats) may be served from the gateway's
    # cache; a newer catalog metadata version drops it sooner (0 = read the catalog every time).
    movie_cache_ttl_s: float = Field(default=10.0, ge=0, le=3600)
    # Concurrent requests share upstream calls (batching.py): a user history, query vector,
    # search or metadata lookup that arrives while UPSTREAM_BATCH_IN_FLIGHT merged calls of its
    # hop are out waits for the next one, which carries up to UPSTREAM_BATCH_MAX_ITEMS of them
    # (0 = off: one upstream call per request and hop). An idle gateway sends at once.
    upstream_batch_max_items: int = Field(default=64, ge=0, le=256)
    upstream_batch_in_flight: int = Field(default=2, ge=1, le=64)
    # Degraded mode (issue #16). FALLBACKS: answer without a down upstream where possible,
    # flagged in the response's `degraded` list (false = every upstream failure passes through).
    fallbacks: bool = True
    # Per upstream circuit breaker: open after this many consecutive "down" failures
    # (UNAVAILABLE, or DEADLINE_EXCEEDED of a call given at least HOP_BUDGET_MIN_S); 0 = never.
    breaker_failures: int = Field(default=5, ge=0, le=1000)
    # Seconds an open breaker fails calls at once before one probe call is let through.
    breaker_cooldown_s: float = Field(default=5.0, gt=0, le=3600)
    # Per-hop budget: one upstream call takes at most this share of the caller's remaining
    # deadline, but never less than HOP_BUDGET_MIN_S (unless less remains) and never more than
    # UPSTREAM_TIMEOUT_S; a hanging upstream so leaves the fallback time to answer.
    hop_budget_fraction: float = Field(default=0.5, gt=0, le=1)
    hop_budget_min_s: float = Field(default=0.25, ge=0, le=60)

    @field_validator("popular_ranking")
    @classmethod
    def _ranking_name(cls, value: str) -> str:
        names = [n.removeprefix("POPULARITY_RANKING_").lower() for n in catalog_pb2.PopularityRanking.keys()]
        names.remove("unspecified")
        if value.strip().lower() not in names:
            raise ValueError(f"must be one of {names}, got {value!r}")
        return value.strip().lower()

    @field_validator("upstream_tls_ca_file", "upstream_tls_cert_file", "upstream_tls_key_file", mode="before")
    @classmethod
    def _empty_tls_path(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def upstream_tls(self) -> ClientTLS | None:
        """The upstream channels' TLS (None = plaintext)."""
        if self.upstream_tls_ca_file is None and self.upstream_tls_cert_file is None:
            return None
        return ClientTLS(
            ca_file=self.upstream_tls_ca_file,
            cert_file=self.upstream_tls_cert_file,
            key_file=self.upstream_tls_key_file,
            server_name=self.upstream_tls_server_name or None,
        )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [k.strip() for k in text.split(",") if k.strip()]
        return value
