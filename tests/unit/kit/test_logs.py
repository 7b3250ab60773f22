"""JSON log lines: fields, request id from the context, secrets redacted."""

from __future__ import annotations

import json
import logging

from pydantic import SecretStr
from recsys_core.logs import JsonFormatter, clean_request_id, get_request_id, reset_request_id, set_request_id


def _record(
    msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord("recsys.test", logging.WARNING, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_fields_and_request_id() -> None:
    fmt = JsonFormatter("catalog")
    token = set_request_id("rid-1")
    try:
        assert get_request_id() == "rid-1"
        out = json.loads(fmt.format(_record(method="m/X", grpc_code="OK", duration_ms=1.5)))
    finally:
        reset_request_id(token)
    assert get_request_id() == ""
    assert out["severity"] == "WARNING" and out["service"] == "catalog" and out["message"] == "hello world"
    assert out["request_id"] == "rid-1" and out["timestamp"].endswith("Z")
    assert (out["method"], out["grpc_code"], out["duration_ms"]) == ("m/X", "OK", 1.5)


def test_secrets_are_redacted() -> None:
    fmt = JsonFormatter("gateway")
    line = fmt.format(
        _record(
            api_key="k-123", password="pw", dsn=SecretStr("postgres://u:p@h"), cfg={"token": "t", "ok": 1}
        )
    )
    out = json.loads(line)
    assert out["api_key"] == out["password"] == out["dsn"] == "[redacted]"
    assert out["cfg"] == {"token": "[redacted]", "ok": 1}
    for secret in ("k-123", "postgres://", '"t"'):
        assert secret not in line


def test_exception_goes_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = json.loads(JsonFormatter("s").format(rec))
    assert "ValueError: boom" in out["exception"]


def test_clean_request_id() -> None:
    assert clean_request_id("abc-123") == "abc-123"
    assert clean_request_id(b"abc") == "abc"
    assert clean_request_id("") is None
    assert clean_request_id("x" * 129) is None
    assert clean_request_id("bad id\n") is None
