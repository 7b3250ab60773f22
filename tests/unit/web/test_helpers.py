"""Settings, the demo-identity cookie and the poster placeholder."""

from __future__ import annotations

import pytest
from recsys_core.settings import SettingsError, load_settings
from recsys_web.app import display_title, hue, initials, read_user_cookie, user_cookie_value
from recsys_web.settings import RecsysWebSettings


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("RECSYS_WEB_PORT", "9001")
    monkeypatch.setenv("RECSYS_WEB_HOST", "0.0.0.0")
    monkeypatch.setenv("RECSYS_WEB_GATEWAY_TARGET", "gateway:50051")
    monkeypatch.setenv("RECSYS_WEB_GATEWAY_API_KEY", "s3cret")
    s = load_settings(RecsysWebSettings)
    assert (s.port, s.host, s.gateway_target) == (9001, "0.0.0.0", "gateway:50051")
    assert s.gateway_api_key is not None and s.gateway_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_settings_defaults_and_errors(monkeypatch):
    for var in ("PORT", "HOST", "GATEWAY_TARGET", "GATEWAY_API_KEY"):
        monkeypatch.delenv(f"RECSYS_WEB_{var}", raising=False)
    s = load_settings(RecsysWebSettings)
    assert (s.port, s.gateway_target, s.gateway_api_key) == (8080, "127.0.0.1:50051", None)
    monkeypatch.setenv("RECSYS_WEB_PORT", "99999")
    with pytest.raises(SettingsError, match="RECSYS_WEB_PORT"):
        load_settings(RecsysWebSettings)


def test_user_cookie_round_trip_and_tampering():
    key = b"k" * 32
    value = user_cookie_value(key, 42)
    assert read_user_cookie(key, value) == 42
    assert read_user_cookie(b"other" * 8, value) is None
    assert read_user_cookie(key, value.replace("42.", "43.")) is None
    for bad in [None, "", "42", "x.y", "0." + value.split(".")[1], "-1.abc"]:
        assert read_user_cookie(key, bad) is None


def test_placeholder_initials_and_colour():
    assert initials("The Shawshank Redemption") == "SR"
    assert initials("Heat") == "H"
    assert initials("12 Angry Men") == "1A"
    assert initials("!!!") == "?"
    assert initials("Amélie") == "A"
    assert hue(1) != hue(2) and 0 <= hue(123456789) < 360


def test_display_title_moves_the_trailing_article():
    assert display_title("Matrix, The") == "The Matrix"
    assert display_title("Island City 249, The") == "The Island City 249"
    assert display_title("Few Good Men, A") == "A Few Good Men"
    assert display_title("Avventura, L'") == "L'Avventura"
    assert display_title("Toy Story") == "Toy Story"
    assert display_title("The, The") == "The The"
    assert display_title("Them, Thé") == "Them, Thé"
