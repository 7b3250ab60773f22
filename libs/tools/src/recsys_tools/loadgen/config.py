"""ghz's JSON config format, read into one typed object.

The checked-in configs under ``bench/ghz/`` run unchanged with real ghz
(https://ghz.sh/docs/options) and with this load generator. Keys are ghz's own
(``call``, ``host``, ``total``, ``concurrency``, ``rps``, ``duration``,
``timeout``, ``data``, ``data-file``, ``metadata``, ``load-schedule``, ...).

Where this reader is stricter than ghz, on purpose:
- an unknown key is an error (ghz silently ignores it, so a typo runs the wrong test);
- a key ghz knows but this generator does not implement (TLS files, streaming,
  binary data, concurrency schedules) is an error naming the key, not a silent no-op;
- durations must be Go duration strings ("10s", "1m30s", "250ms"), as ghz writes them;
- call data templates (``{{.RequestNumber}}``...) are refused: the data is sent as-is.

Where it differs from ghz, on purpose:
- ``total`` and ``duration`` together bound the run by whichever comes first (ghz
  ignores ``total`` when ``duration`` is set);
- relative ``data-file``/``metadata-file``/``proto``/``protoset`` paths are looked up
  from the current directory first (as ghz does), then from the config file's folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TOTAL",
    "ConfigError",
    "LoadConfig",
    "LoadSchedule",
    "format_duration",
    "load_config",
    "normalize_call",
    "parse_config",
    "parse_duration",
]

DEFAULT_TOTAL = 200  # ghz's -n default
DEFAULT_CONCURRENCY = 50  # ghz's -c default
DEFAULT_TIMEOUT_S = 20.0  # ghz's -t default
DEFAULT_CONNECT_TIMEOUT_S = 10.0  # ghz's --connect-timeout default


class ConfigError(ValueError):
    """A config that cannot be run; the message names the key and what is wrong."""


# ghz keys this reader understands (with ghz's aliases, e.g. "skipFirst" as its report writes it).
_SUPPORTED = {
    "call",
    "host",
    "proto",
    "protoset",
    "import-paths",
    "i",
    "insecure",
    "total",
    "n",
    "concurrency",
    "c",
    "connections",
    "rps",
    "qps",
    "async",
    "duration",
    "z",
    "max-duration",
    "x",
    "timeout",
    "t",
    "connect-timeout",
    "data",
    "d",
    "data-file",
    "D",
    "metadata",
    "m",
    "metadata-file",
    "M",
    "load-schedule",
    "load-start",
    "load-end",
    "load-step",
    "load-step-duration",
    "load-max-duration",
    "concurrency-schedule",
    "skip-first",
    "skipFirst",
    "name",
    "tags",
    "format",
    "O",
    "output",
    "o",
    "enable-compression",
    "keepalive",
    "cpus",
    "debug",
    "count-errors",
    "duration-stop",
    "lb-strategy",
}
# ghz keys that make no sense to accept silently here.
_UNSUPPORTED = {
    "cacert": "TLS is not supported (plaintext only); use insecure: true",
    "cert": "TLS is not supported (plaintext only); use insecure: true",
    "key": "TLS is not supported (plaintext only); use insecure: true",
    "cname": "TLS is not supported (plaintext only)",
    "skip-verify": "TLS is not supported (plaintext only)",
    "skipTLS": "TLS is not supported (plaintext only)",
    "authority": "authority override is not supported",
    "binary-file": "binary call data is not supported; use data or data-file (JSON)",
    "B": "binary call data is not supported; use data or data-file (JSON)",
    "binary": "binary call data is not supported; use data or data-file (JSON)",
    "stream-interval": "streaming calls are not supported (unary only)",
    "stream-call-duration": "streaming calls are not supported (unary only)",
    "stream-call-count": "streaming calls are not supported (unary only)",
    "stream-dynamic-messages": "streaming calls are not supported (unary only)",
    "reflect-metadata": "reflect-metadata is not supported",
    "concurrency-start": "concurrency schedules are not supported (concurrency-schedule: const only)",
    "concurrency-end": "concurrency schedules are not supported (concurrency-schedule: const only)",
    "concurrency-step": "concurrency schedules are not supported (concurrency-schedule: const only)",
    "concurrency-step-duration": "concurrency schedules are not supported (concurrency-schedule: const only)",
    "concurrency-max-duration": "concurrency schedules are not supported (concurrency-schedule: const only)",
}

_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_UNIT_NS["h"] = 3600 * 10**9
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(value: object, key: str = "duration") -> float:
    """A Go duration string ("10s", "1m30s", "250ms", "1.5h", "0") -> seconds (a bare 0 is 0 too)."""
    if value == 0 and isinstance(value, int | float) and not isinstance(value, bool):
        return 0.0
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a duration string like '10s' or '250ms', got {value!r}")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    pos = 0
    total_ns = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total_ns += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(f"{key}: {value!r} is not a duration (use e.g. '10s', '1m30s', '250ms')")
    seconds = sign * total_ns / 1e9
    if seconds < 0:
        raise ConfigError(f"{key}: must not be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds -> a Go-style duration string ("1.5s", "250ms", "0s")."""
    if seconds <= 0:
        return "0s"
    if seconds >= 1:
        return f"{seconds:g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds * 1e6:g}us"


def normalize_call(call: str) -> tuple[str, str]:
    """ghz's call ("pkg.Service.Method", "pkg.Service/Method", "/pkg.Service/Method")
    -> (full service name, method name)."""
    text = call.strip().lstrip("/")
    if "/" in text:
        service, _, method = text.rpartition("/")
    else:
        service, _, method = text.rpartition(".")
    if not service or not method or "/" in service or "." in method:
        raise ConfigError(f"call: {call!r} is not 'package.Service.Method' or 'package.Service/Method'")
    return service, method


@dataclass(frozen=True)
class LoadSchedule:
    """ghz's load schedule: how the target rate (requests per second) moves over time.

    const: ``rps`` all along. step: ``start``, plus ``step`` every ``step_duration``,
    until ``end`` (if > 0) or ``max_duration`` (if > 0), then held. line: ``start``
    plus ``step`` per second, until ``end`` or ``max_duration``, then held.
    """

    kind: str = "const"  # const | step | line
    rps: float = 0.0
    start: float = 0.0
    end: float = 0.0
    step: float = 0.0
    step_duration: float = 0.0
    max_duration: float = 0.0

    @property
    def open_loop(self) -> bool:
        return self.kind != "const" or self.rps > 0

    def rate_at(self, t: float) -> float:
        """Target requests per second ``t`` seconds into the run."""
        if self.kind == "const":
            return self.rps
        hold_t = t if self.max_duration <= 0 else min(t, self.max_duration)
        if self.kind == "step":
            steps = int(hold_t // self.step_duration) if self.step_duration > 0 else 0
            rate = self.start + self.step * steps
        else:  # line
            rate = self.start + self.step * hold_t
        if self.end > 0:
            rate = min(rate, self.end) if self.step >= 0 else max(rate, self.end)
        return max(rate, 0.0)


@dataclass(frozen=True)
class LoadConfig:
    """One load test, as ghz describes it. Times are seconds; ``None`` = not bounded."""

    call: str
    host: str
    data: tuple[dict[str, Any], ...] = ({},)
    metadata: tuple[dict[str, str], ...] = ()
    total: int | None = DEFAULT_TOTAL
    concurrency: int = DEFAULT_CONCURRENCY
    connections: int = 1
    schedule: LoadSchedule = field(default_factory=LoadSchedule)
    duration: float | None = None
    timeout: float = DEFAULT_TIMEOUT_S  # per call; 0 = none
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    skip_first: int = 0
    proto: str | None = None
    protoset: str | None = None
    import_paths: tuple[str, ...] = ()
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    compression: bool = False
    keepalive: float = 0.0
    format: str = "summary"
    output: str | None = None
    data_file: str | None = None
    metadata_file: str | None = None
    source: str | None = None  # the config file, if any

    @property
    def service(self) -> str:
        return normalize_call(self.call)[0]

    @property
    def method(self) -> str:
        return normalize_call(self.call)[1]

    @property
    def path(self) -> str:
        """The HTTP/2 path of the call: ``/package.Service/Method``."""
        service, method = normalize_call(self.call)
        return f"/{service}/{method}"

    def with_overrides(self, **changes: Any) -> LoadConfig:
        return replace(self, **changes)


_ALIASES = {
    "n": "total",
    "c": "concurrency",
    "qps": "rps",
    "z": "duration",
    "x": "max-duration",
    "t": "timeout",
    "d": "data",
    "D": "data-file",
    "m": "metadata",
    "M": "metadata-file",
    "skipFirst": "skip-first",
    "i": "import-paths",
    "O": "format",
    "o": "output",
}
_FORMATS = ("summary", "json", "pretty")


def _canonical(raw: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a JSON object, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _UNSUPPORTED:
            if value in (None, "", False, 0, [], {}):
                continue
            raise ConfigError(f"{key}: {_UNSUPPORTED[key]}")
        if key not in _SUPPORTED:
            raise ConfigError(f"{key}: unknown config key (ghz option names, e.g. 'call', 'total', 'rps')")
        name = _ALIASES.get(key, key)
        if name in out and out[name] != value:
            raise ConfigError(f"{key}: given twice (also as {name!r}) with different values")
        out[name] = value
    return out


def _int(cfg: Mapping[str, Any], key: str, default: int | None, *, minimum: int = 0) -> int | None:
    if key not in cfg or cfg[key] is None:
        return default
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ConfigError(f"{key}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value!r}")
    return int(value)


def _num(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _dur(cfg: Mapping[str, Any], key: str) -> float | None:
    if key not in cfg or cfg[key] is None:
        return None
    return parse_duration(cfg[key], key)


def _bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _str(cfg: Mapping[str, Any], key: str) -> str | None:
    value = cfg.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _find_file(path: str, key: str, base_dir: Path | None) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or base_dir is None:
        if not p.exists():
            raise ConfigError(f"{key}: {path}: no such file")
        return p
    q = base_dir / p
    if not q.exists():
        raise ConfigError(f"{key}: {path}: no such file (looked in . and {base_dir})")
    return q


_TEMPLATE = re.compile(r"\{\{.*?\}\}")


def _check_no_templates(value: Any, key: str) -> None:
    if isinstance(value, str):
        if _TEMPLATE.search(value):
            raise ConfigError(
                f"{key}: call data templates ({value!r}) are not supported; "
                "generate the variations into a data file (an array of messages is sent round-robin)"
            )
    elif isinstance(value, dict):
        for v in value.values():
            _check_no_templates(v, key)
    elif isinstance(value, list):
        for v in value:
            _check_no_templates(v, key)


def _messages(value: Any, key: str) -> tuple[dict[str, Any], ...]:
    """ghz call data: one JSON object, or a non-empty array of objects (sent round-robin)."""
    if isinstance(value, str):  # -d on the command line: stringified JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: not valid JSON: {exc}") from exc
    if isinstance(value, dict):
        items = [value]
    elif isinstance(value, list):
        if not value:
            raise ConfigError(f"{key}: the array of messages must not be empty")
        items = value
    else:
        raise ConfigError(f"{key}: expected a JSON object or an array of objects, got {type(value).__name__}")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{key}[{i}]: expected a JSON object, got {type(item).__name__}")
    _check_no_templates(items, key)
    return tuple(items)


def _metadata(value: Any, key: str) -> tuple[dict[str, str], ...]:
    items = _messages(value, key)
    for i, item in enumerate(items):
        for k, v in item.items():
            if not isinstance(v, str):
                raise ConfigError(f"{key}[{i}].{k}: metadata values must be strings, got {v!r}")
            if k != k.lower():
                raise ConfigError(f"{key}[{i}].{k}: metadata keys must be lower case")
    return items


def _read_json_file(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{key}: {path}: not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{key}: {path}: {exc.strerror}") from exc


def parse_config(
    raw: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> LoadConfig:
    """ghz config keys (plus ``overrides``, same keys, e.g. from the command line) -> LoadConfig.

    An override of ``data`` drops the config's ``data-file`` and the other way round
    (likewise metadata), so the command line replaces what the file says.
    """
    cfg = _canonical(raw)
    if overrides:
        over = _canonical({k: v for k, v in overrides.items() if v is not None})
        for a, b in (("data", "data-file"), ("metadata", "metadata-file")):
            if a in over:
                cfg.pop(b, None)
            if b in over:
                cfg.pop(a, None)
        if "duration" in over and "total" not in over:
            cfg.pop("total", None)  # `--duration 10s` on a config with "total": run for the duration
        cfg.update(over)

    call = _str(cfg, "call")
    if not call:
        raise ConfigError("call: required (e.g. 'recsys.gateway.v1.Gateway.Recommend')")
    normalize_call(call)
    host = _str(cfg, "host")
    if not host:
        raise ConfigError("host: required (e.g. '127.0.0.1:50051')")
    if cfg.get("insecure") is False:
        raise ConfigError("insecure: TLS is not supported; set insecure: true (plaintext)")
    _bool(cfg, "insecure", True)
    if cfg.get("concurrency-schedule") not in (None, "", "const"):
        raise ConfigError("concurrency-schedule: only 'const' is supported")
    _bool(cfg, "async", False)

    if "data" in cfg and "data-file" in cfg:
        raise ConfigError("data and data-file: give one of them, not both")
    data_file = _str(cfg, "data-file")
    if data_file:
        path = _find_file(data_file, "data-file", base_dir)
        data = _messages(_read_json_file(path, "data-file"), "data-file")
    elif "data" in cfg:
        data = _messages(cfg["data"], "data")
    else:
        data = ({},)

    if "metadata" in cfg and "metadata-file" in cfg:
        raise ConfigError("metadata and metadata-file: give one of them, not both")
    metadata_file = _str(cfg, "metadata-file")
    if metadata_file:
        path = _find_file(metadata_file, "metadata-file", base_dir)
        metadata = _metadata(_read_json_file(path, "metadata-file"), "metadata-file")
    elif cfg.get("metadata") not in (None, {}):
        metadata = _metadata(cfg["metadata"], "metadata")
    else:
        metadata = ()

    duration = _dur(cfg, "duration") or None
    max_duration = _dur(cfg, "max-duration") or None
    if duration is not None and max_duration is not None:
        duration = min(duration, max_duration)
    elif duration is None:
        duration = max_duration
    if "total" in cfg:
        total = _int(cfg, "total", None)
        total = total or None  # 0 = unbounded (needs a duration)
    else:
        total = None if "duration" in cfg and duration else DEFAULT_TOTAL
    if total is None and duration is None:
        raise ConfigError("total: 0 (unbounded) needs a duration, or the run would never stop")

    concurrency = _int(cfg, "concurrency", DEFAULT_CONCURRENCY, minimum=1)
    assert concurrency is not None
    connections = _int(cfg, "connections", 1, minimum=1)
    assert connections is not None
    if connections > concurrency:
        raise ConfigError(f"connections: {connections} is more than concurrency {concurrency}")

    kind = _str(cfg, "load-schedule") or "const"
    if kind not in ("const", "step", "line"):
        raise ConfigError(f"load-schedule: {kind!r} is not one of const, step, line")
    rps = _num(cfg, "rps", 0.0)
    if rps < 0:
        raise ConfigError(f"rps: must be >= 0, got {rps:g}")
    schedule = LoadSchedule(
        kind=kind,
        rps=rps,
        start=_num(cfg, "load-start", 0.0),
        end=_num(cfg, "load-end", 0.0),
        step=_num(cfg, "load-step", 0.0),
        step_duration=_dur(cfg, "load-step-duration") or 0.0,
        max_duration=_dur(cfg, "load-max-duration") or 0.0,
    )
    if kind != "const":
        if schedule.start <= 0:
            raise ConfigError(f"load-start: a {kind} schedule needs load-start > 0")
        if schedule.step == 0:
            raise ConfigError(f"load-step: a {kind} schedule needs a non-zero load-step")
        if kind == "step" and schedule.step_duration <= 0:
            raise ConfigError("load-step-duration: a step schedule needs load-step-duration > 0")
        if schedule.step < 0 and schedule.end <= 0 and schedule.max_duration <= 0:
            raise ConfigError("load-end: a decreasing schedule needs load-end or load-max-duration")
    if schedule.open_loop and total is not None and total < 1:
        raise ConfigError("total: must be >= 1")

    timeout = _dur(cfg, "timeout")
    connect_timeout = _dur(cfg, "connect-timeout")
    fmt = _str(cfg, "format") or "summary"
    if fmt not in _FORMATS:
        raise ConfigError(f"format: {fmt!r} is not one of {', '.join(_FORMATS)}")
    tags = cfg.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ConfigError("tags: expected an object of strings")
    import_paths = cfg.get("import-paths") or []
    if isinstance(import_paths, str):
        import_paths = [p for p in import_paths.split(",") if p]
    if not isinstance(import_paths, list) or not all(isinstance(p, str) for p in import_paths):
        raise ConfigError("import-paths: expected a list of folders")
    proto = _str(cfg, "proto")
    protoset = _str(cfg, "protoset")
    if proto and protoset:
        raise ConfigError("proto and protoset: give one of them, not both")
    if proto:
        proto = str(_find_file(proto, "proto", base_dir))
    if protoset:
        protoset = str(_find_file(protoset, "protoset", base_dir))

    return LoadConfig(
        call=call,
        host=host,
        data=data,
        metadata=metadata,
        total=total,
        concurrency=concurrency,
        connections=connections,
        schedule=schedule,
        duration=duration,
        timeout=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout,
        skip_first=_int(cfg, "skip-first", 0) or 0,
        proto=proto,
        protoset=protoset,
        import_paths=tuple(import_paths),
        name=_str(cfg, "name") or "",
        tags=dict(tags),
        compression=_bool(cfg, "enable-compression", False),
        keepalive=_dur(cfg, "keepalive") or 0.0,
        format=fmt,
        output=_str(cfg, "output") or None,
        data_file=data_file,
        metadata_file=metadata_file,
        source=source,
    )


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> LoadConfig:
    """Read a ghz JSON config file (``overrides`` as in :func:`parse_config`)."""
    p = Path(path)
    if p.suffix.lower() in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: only JSON configs are supported")
    raw = _read_json_file(p, "config") if p.exists() else None
    if raw is None:
        raise ConfigError(f"config: {path}: no such file")
    return parse_config(raw, base_dir=p.resolve().parent, overrides=overrides, source=str(p))
