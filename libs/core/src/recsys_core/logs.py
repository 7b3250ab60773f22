"""JSON logs to stdout with the current request id.

``setup_logging(service, level, json=True)`` installs one handler on the root
logger (calling it again replaces that handler, never other handlers such as
pytest's). Each line is a JSON object: ``timestamp`` (UTC, RFC 3339),
``severity``, ``service``, ``logger``, ``message``, ``request_id`` (from the
context variable the server interceptor sets), any ``extra={...}`` fields and
``exception`` (the traceback) when there is one. Extra fields whose name looks
secret (password, token, api key, authorization, dsn, ...) are written as
``"[redacted]"``, and pydantic ``SecretStr`` values as their masked form.

:class:`RateLimiter` bounds how often one kind of line is written per key (a client peer, an
upstream): the first occurrence in an interval is logged with the count of those left out
before it, the rest only counted, so a hostile or broken client cannot fill the disk.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json as _json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("recsys_request_id", default="")

# LogRecord attributes that are not "extra" fields
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "dsn",
    "cookie",
)
_MAX_REQUEST_ID = 128


def get_request_id() -> str:
    """The current call's request id ("" outside a call)."""
    return _request_id.get()


def set_request_id(request_id: str) -> contextvars.Token[str]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str]) -> None:
    try:
        _request_id.reset(token)
    except ValueError:  # set in another context (async generator finalised elsewhere)
        pass


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | bytes | None) -> str | None:
    """An incoming ``x-request-id`` if it is safe to log and echo (printable ASCII, <= 128 chars)."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not value or len(value) > _MAX_REQUEST_ID:
        return None
    if not all(33 <= ord(c) < 127 for c in value):
        return None
    return value


def _is_secret_key(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in _SECRET_WORDS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): ("[redacted]" if _is_secret_key(str(k)) else _jsonable(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)  # SecretStr renders as '**********'


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring for the fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
        out: dict[str, Any] = {
            "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "severity": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or get_request_id()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key in _RESERVED or key in out or key.startswith("_"):
                continue
            out[key] = "[redacted]" if _is_secret_key(key) else _jsonable(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return _json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines (local development): time level logger [request id] message."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = get_request_id()
        return f"{line} [rid={rid}]" if rid else line


class _StdoutHandler(logging.StreamHandler):
    """Writes to the *current* sys.stdout (survives stdout being swapped, e.g. by pytest)."""

    _recsys_kit = True

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class RateLimiter:
    """Allow one log line per key per ``interval_s``; count the ones left out.

    ``allow(key)`` returns None when the line must be left out, else how many lines of that key
    were left out since the last one written (0 the first time). At most ``max_keys`` keys are
    tracked: once that many are live in one interval, every further key shares one overflow key
    (``OVERFLOW``), so at most ``max_keys + 1`` lines are written per interval however many
    peers a caller uses. Thread-safe; cheap (one dict lookup per call).
    """

    OVERFLOW = "(other keys)"

    def __init__(
        self,
        interval_s: float,
        *,
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        # key -> [time of the last line written, lines left out since]
        self._state: dict[Hashable, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int | None:
        now = self._clock()
        with self._lock:
            entry = self._state.get(key)
            if entry is None and len(self._state) >= self.max_keys:
                self._prune(now)
                if len(self._state) >= self.max_keys:
                    key = self.OVERFLOW
                    entry = self._state.get(key)
            if entry is None:
                self._state[key] = [now, 0]
                return 0
            if now - entry[0] >= self.interval_s:
                left_out = int(entry[1])
                entry[0], entry[1] = now, 0
                return left_out
            entry[1] += 1
            return None

    def _prune(self, now: float) -> None:
        """Forget keys whose interval has passed with nothing left out (keeps their counts honest)."""
        stale = [k for k, (t, n) in self._state.items() if now - t >= self.interval_s and n == 0]
        for k in stale:
            del self._state[k]


def setup_logging(service: str, level: str | int = "INFO", json: bool = True) -> logging.Handler:
    """Send logs to stdout as JSON (or text); replaces only the handler a previous call installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recsys_kit", False):
            root.removeHandler(handler)
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter(service) if json else TextFormatter(service))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # grpc's and the HTTP server's own loggers are chatty at DEBUG
    logging.getLogger("grpc").setLevel(max(root.level, logging.INFO))
    return handler


__all__ = [
    "JsonFormatter",
    "RateLimiter",
    "TextFormatter",
    "clean_request_id",
    "get_request_id",
    "new_request_id",
    "reset_request_id",
    "set_request_id",
    "setup_logging",
]
