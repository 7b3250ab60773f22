"""load_settings: env prefix, overrides, and fail-fast messages naming the variable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from recsys_core.settings import ServerSettings, SettingsConfigDict, SettingsError, load_settings


class CatalogSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_CATALOG_")
    dsn: SecretStr
    pool_max: int = 10


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_CATALOG_DSN", "postgresql://u:pw@db/x")
    monkeypatch.setenv("RECSYS_CATALOG_PORT", "6000")
    monkeypatch.setenv("RECSYS_CATALOG_METRICS_PORT", "9090")
    monkeypatch.setenv("RECSYS_CATALOG_LOG_LEVEL", "debug")
    s = load_settings(CatalogSettings, pool_max=3)
    assert (s.port, s.metrics_port, s.log_level, s.pool_max) == (6000, 9090, "DEBUG", 3)
    assert s.dsn.get_secret_value() == "postgresql://u:pw@db/x"
    assert "pw" not in repr(s)
    assert (s.host, s.grace_seconds, s.max_message_bytes, s.log_json) == (
        "127.0.0.1",
        10.0,
        4 * 1024 * 1024,
        True,
    )
    base = load_settings(ServerSettings)
    assert base.port == 50051 and base.metrics_port is None and base.max_connection_age_s == 300.0


def test_missing_required_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_CATALOG_DSN", raising=False)
    with pytest.raises(SettingsError) as info:
        load_settings(CatalogSettings)
    assert "RECSYS_CATALOG_DSN" in str(info.value)
    assert info.value.variables == ["RECSYS_CATALOG_DSN"]


def test_bad_values_name_each_variable_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_CATALOG_DSN", "")
    monkeypatch.setenv("RECSYS_CATALOG_PORT", "not-a-port")
    monkeypatch.setenv("RECSYS_CATALOG_POOL_MAX", "many")
    monkeypatch.setenv("RECSYS_CATALOG_LOG_LEVEL", "chatty")
    with pytest.raises(SettingsError) as info:
        load_settings(CatalogSettings)
    msg = str(info.value)
    for var in ("RECSYS_CATALOG_PORT", "RECSYS_CATALOG_POOL_MAX", "RECSYS_CATALOG_LOG_LEVEL"):
        assert var in msg
    assert "'not-a-port'" in msg  # non-secret values are shown

    monkeypatch.setenv("RECSYS_CATALOG_PORT", "70000")
    monkeypatch.setenv("RECSYS_CATALOG_POOL_MAX", "1")
    monkeypatch.setenv("RECSYS_CATALOG_LOG_LEVEL", "info")
    with pytest.raises(SettingsError, match="RECSYS_CATALOG_PORT"):
        load_settings(CatalogSettings)


def test_secret_values_never_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    class S(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="RECSYS_X_")
        api_token: int

    monkeypatch.setenv("RECSYS_X_API_TOKEN", "hunter2")
    with pytest.raises(SettingsError) as info:
        load_settings(S)
    assert "RECSYS_X_API_TOKEN" in str(info.value) and "hunter2" not in str(info.value)


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(SettingsError, match="prot"):
        load_settings(ServerSettings, prot=1)
