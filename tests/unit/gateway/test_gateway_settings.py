from __future__ import annotations

import os
import subprocess
import sys

import pytest
from recsys_core.settings import SettingsError, load_settings
from recsys_gateway.settings import GatewaySettings


@pytest.mark.parametrize(
    ("raw", "keys"),
    [("", []), ("[]", []), ("k1", ["k1"]), ("k1, k2", ["k1", "k2"]), ('["a,b","c"]', ["a,b", "c"])],
)
def test_api_keys_comma_or_json(monkeypatch: pytest.MonkeyPatch, raw: str, keys: list[str]) -> None:
    monkeypatch.setenv("RECSYS_GATEWAY_API_KEYS", raw)
    s = load_settings(GatewaySettings)
    assert [k.get_secret_value() for k in s.api_keys] == keys
    assert "k1" not in repr(s)


def test_bad_timeout_fails_fast_naming_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_GATEWAY_UPSTREAM_TIMEOUT_S", "-1")
    with pytest.raises(SettingsError, match="RECSYS_GATEWAY_UPSTREAM_TIMEOUT_S"):
        load_settings(GatewaySettings)


def test_history_window_default_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(GatewaySettings).history_window == 1000
    monkeypatch.setenv("RECSYS_GATEWAY_HISTORY_WINDOW", "50")
    assert load_settings(GatewaySettings).history_window == 50


@pytest.mark.parametrize("raw", ["0", "-3", "10001", "many", "2.5"])
def test_bad_history_window_fails_fast_naming_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("RECSYS_GATEWAY_HISTORY_WINDOW", raw)
    with pytest.raises(SettingsError, match="RECSYS_GATEWAY_HISTORY_WINDOW"):
        load_settings(GatewaySettings)


def test_bad_setting_exits_2_with_the_message_and_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_GATEWAY_")}
    env["RECSYS_GATEWAY_HISTORY_WINDOW"] = "0"
    proc = subprocess.run(
        [sys.executable, "-m", "recsys_gateway"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "RECSYS_GATEWAY_HISTORY_WINDOW" in out and "Traceback" not in out


def test_popular_ranking_names_come_from_the_proto(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(GatewaySettings)
    assert (s.popular_ranking, s.popular_half_life_days) == ("recent", 0.0)
    for name in ("most_rated", "BAYESIAN_AVERAGE", " recent "):
        monkeypatch.setenv("RECSYS_GATEWAY_POPULAR_RANKING", name)
        assert load_settings(GatewaySettings).popular_ranking == name.strip().lower()


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("RECSYS_GATEWAY_POPULAR_RANKING", "trending"),
        ("RECSYS_GATEWAY_POPULAR_RANKING", "unspecified"),
        ("RECSYS_GATEWAY_POPULAR_HALF_LIFE_DAYS", "-1"),
        ("RECSYS_GATEWAY_POPULAR_HALF_LIFE_DAYS", "40000"),
    ],
)
def test_bad_popularity_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, var: str, raw: str) -> None:
    monkeypatch.setenv(var, raw)
    with pytest.raises(SettingsError, match=var):
        load_settings(GatewaySettings)
