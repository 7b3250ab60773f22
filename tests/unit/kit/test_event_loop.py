"""recsys_core.server.loop_factory: the event loop RECSYS_<SVC>_EVENT_LOOP names."""

from __future__ import annotations

import asyncio
import builtins
import subprocess
import sys

import pytest
import uvloop
from recsys_core.server import loop_factory
from recsys_core.settings import SettingsError


def test_auto_and_uvloop_run_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_GATEWAY_EVENT_LOOP", raising=False)
    for choice in (None, "auto", "uvloop"):
        if choice:
            monkeypatch.setenv("RECSYS_GATEWAY_EVENT_LOOP", choice)
        factory = loop_factory("gateway")
        assert factory is not None
        with asyncio.Runner(loop_factory=factory) as runner:
            assert isinstance(runner.get_loop(), uvloop.Loop)


def test_asyncio_is_asyncios_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_CATALOG_EVENT_LOOP", "asyncio")
    assert loop_factory("catalog") is None
    # another service's variable does not apply here
    monkeypatch.setenv("RECSYS_GATEWAY_EVENT_LOOP", "asyncio")
    assert loop_factory("embedder") is not None


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_RETRIEVER_EVENT_LOOP", "tokio")
    with pytest.raises(SettingsError, match="RECSYS_RETRIEVER_EVENT_LOOP"):
        loop_factory("retriever")


def test_uvloop_asked_but_missing_fails_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: object, **kwargs: object) -> object:
        if name == "uvloop":
            raise ImportError("no uvloop")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    monkeypatch.setenv("RECSYS_WEB_EVENT_LOOP", "uvloop")
    with pytest.raises(SettingsError, match="RECSYS_WEB_EVENT_LOOP=uvloop but uvloop is not installed"):
        loop_factory("web")
    monkeypatch.setenv("RECSYS_WEB_EVENT_LOOP", "auto")
    assert loop_factory("web") is None


def test_a_server_with_a_bad_loop_setting_exits_2_with_the_message() -> None:
    env = {"RECSYS_GATEWAY_EVENT_LOOP": "bogus", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "recsys_gateway"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "RECSYS_GATEWAY_EVENT_LOOP" in out.stderr + out.stdout
