from __future__ import annotations

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
