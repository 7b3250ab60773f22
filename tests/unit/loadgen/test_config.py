"""ghz config parsing: every supported key, aliases, overrides, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recsys_tools.loadgen import (
    ConfigError,
    LoadSchedule,
    load_config,
    normalize_call,
    parse_config,
    parse_duration,
)
from recsys_tools.loadgen.runner import LoadError, _Slots, check_target

BASE = {"call": "recsys.gateway.v1.Gateway.Recommend", "host": "127.0.0.1:50051"}


def cfg(**extra: object) -> dict[str, object]:
    return {**BASE, **extra}


def test_every_supported_key(tmp_path: Path) -> None:
    (tmp_path / "md.json").write_text(json.dumps({"x-api-key": "k"}))
    raw = {
        "call": "recsys.gateway.v1.Gateway/Recommend",
        "host": "localhost:50051",
        "insecure": True,
        "total": 500,
        "concurrency": 8,
        "connections": 2,
        "rps": 250,
        "async": True,
        "duration": "1m30s",
        "max-duration": "2m",
        "timeout": "250ms",
        "connect-timeout": "3s",
        "data": [{"user_id": 1}, {"user_id": 2}],
        "metadata-file": "md.json",
        "load-schedule": "const",
        "concurrency-schedule": "const",
        "skip-first": 10,
        "name": "rec",
        "tags": {"env": "dev"},
        "format": "pretty",
        "output": "out.json",
        "enable-compression": True,
        "keepalive": "30s",
        "cpus": 2,
        "debug": "",
        "count-errors": False,
        "duration-stop": "wait",
        "lb-strategy": "",
        "import-paths": ["protos"],
        "cacert": "",  # empty TLS keys are harmless
    }
    c = parse_config(raw, base_dir=tmp_path)
    assert c.path == "/recsys.gateway.v1.Gateway/Recommend"
    assert (c.service, c.method) == ("recsys.gateway.v1.Gateway", "Recommend")
    assert c.host == "localhost:50051"
    assert c.total == 500 and c.concurrency == 8 and c.connections == 2
    assert c.schedule == LoadSchedule(kind="const", rps=250.0) and c.schedule.open_loop
    assert c.duration == 90.0  # min(duration, max-duration)
    assert c.timeout == 0.25 and c.connect_timeout == 3.0
    assert c.data == ({"user_id": 1}, {"user_id": 2})
    assert c.metadata == ({"x-api-key": "k"},)
    assert c.skip_first == 10 and c.name == "rec" and c.tags == {"env": "dev"}
    assert c.format == "pretty" and c.output == "out.json"
    assert c.compression and c.keepalive == 30.0
    assert c.import_paths == ("protos",)


def test_defaults_are_ghz_defaults() -> None:
    c = parse_config(BASE)
    assert c.total == 200 and c.concurrency == 50 and c.connections == 1
    assert c.timeout == 20.0 and c.duration is None
    assert not c.schedule.open_loop
    assert c.data == ({},) and c.metadata == ()
    assert c.format == "summary"


def test_short_aliases_and_skipfirst_spelling(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps([{"movie_id": 1}, {"movie_id": 2}]))
    c = parse_config(
        {
            **BASE,
            "n": 7,
            "c": 3,
            "z": "2s",
            "t": "1s",
            "D": "d.json",
            "m": {"a": "b"},
            "skipFirst": 2,
            "qps": 9,
        },
        base_dir=tmp_path,
    )
    assert (c.total, c.concurrency, c.duration, c.timeout) == (7, 3, 2.0, 1.0)
    assert c.data == ({"movie_id": 1}, {"movie_id": 2}) and c.data_file == "d.json"
    assert c.metadata == ({"a": "b"},) and c.skip_first == 2 and c.schedule.rps == 9


def test_duration_alone_means_no_count_bound() -> None:
    assert parse_config(cfg(duration="5s")).total is None
    c = parse_config(cfg(duration="5s", total=100))
    assert (c.total, c.duration) == (100, 5.0)  # whichever comes first


def test_overrides_replace_config_values(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps({"user_id": 5}))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg(**{"data-file": "d.json", "total": 100, "concurrency": 4})))
    c = load_config(path)
    assert c.data == ({"user_id": 5},) and c.source == str(path)
    c = load_config(path, overrides={"data": '{"user_id": 9}', "concurrency": 16, "host": "127.0.0.1:1"})
    assert c.data == ({"user_id": 9},) and c.concurrency == 16 and c.host == "127.0.0.1:1"
    c = load_config(path, overrides={"duration": "3s"})
    assert c.total is None and c.duration == 3.0  # --duration on a config with total: run for the duration


def test_load_schedules() -> None:
    step = parse_config(
        cfg(
            **{
                "load-schedule": "step",
                "load-start": 10,
                "load-step": 5,
                "load-step-duration": "2s",
                "load-end": 20,
            }
        )
    ).schedule
    assert [step.rate_at(t) for t in (0, 1.9, 2, 4, 100)] == [10, 10, 15, 20, 20]
    line = parse_config(cfg(**{"load-schedule": "line", "load-start": 5, "load-step": 5})).schedule
    assert line.rate_at(0) == 5 and line.rate_at(2) == 15
    down = parse_config(
        cfg(**{"load-schedule": "line", "load-start": 100, "load-step": -10, "load-max-duration": "3s"})
    ).schedule
    assert down.rate_at(1) == 90 and down.rate_at(10) == 70
    assert LoadSchedule(rps=0).open_loop is False


def test_open_loop_slots() -> None:
    const = _Slots(LoadSchedule(rps=100))
    assert [const.next() for _ in range(3)] == [(0, 0.0), (1, 0.01), (2, 0.02)]
    line = _Slots(LoadSchedule(kind="line", start=10, step=10))
    times = [line.next()[1] for _ in range(3)]  # type: ignore[index]
    assert times[0] == 0.0 and times[1] == pytest.approx(0.1)
    assert times[2] - times[1] < 0.1  # the rate goes up, slots get closer


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("1m30s", 90), ("250ms", 0.25), ("1.5h", 5400), ("100us", 1e-4), ("5µs", 5e-6), ("0", 0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(0) == 0.0  # ghz's own test configs write "keepalive": 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"host": "127.0.0.1:1"}, "call: required"),
        (cfg(call="Recommend"), "call:"),
        ({"call": BASE["call"]}, "host: required"),
        (cfg(totl=5), "totl: unknown config key"),
        (cfg(cacert="ca.pem"), "cacert: TLS is not supported"),
        (cfg(insecure=False), "insecure:"),
        (cfg(**{"binary-file": "x.bin"}), "binary-file:"),
        (cfg(**{"concurrency-schedule": "step"}), "concurrency-schedule:"),
        (cfg(duration="ten seconds"), "duration: 'ten seconds' is not a duration"),
        (cfg(timeout=20), "timeout: expected a duration string"),
        (cfg(total="many"), "total: expected a whole number"),
        (cfg(total=-1), "total: must be >= 0"),
        (cfg(total=0), "total: 0 (unbounded) needs a duration"),
        (cfg(concurrency=0), "concurrency: must be >= 1"),
        (cfg(concurrency=2, connections=3), "connections: 3 is more than concurrency 2"),
        (cfg(rps=-5), "rps: must be >= 0"),
        (cfg(data=[]), "data: the array of messages must not be empty"),
        (cfg(data=[{"a": 1}, 2]), "data[1]: expected a JSON object"),
        (cfg(data=5), "data: expected a JSON object or an array"),
        (cfg(data="{not json"), "data: not valid JSON"),
        (cfg(data={"query": "{{.RequestNumber}}"}), "templates"),
        (cfg(data={}, **{"data-file": "x.json"}), "data and data-file"),
        (cfg(**{"data-file": "/nonexistent/x.json"}), "data-file: /nonexistent/x.json: no such file"),
        (cfg(metadata={"x-n": 1}), "metadata values must be strings"),
        (cfg(metadata={"X-Api-Key": "k"}), "lower case"),
        (cfg(**{"load-schedule": "zigzag"}), "load-schedule: 'zigzag'"),
        (cfg(**{"load-schedule": "step", "load-start": 10, "load-step": 5}), "load-step-duration"),
        (cfg(**{"load-schedule": "line", "load-step": 5}), "load-start"),
        (cfg(**{"load-schedule": "line", "load-start": 50, "load-step": -5}), "decreasing"),
        (cfg(format="html"), "format: 'html'"),
        (cfg(proto="a.proto", protoset="a.protoset"), "proto and protoset"),
        (cfg(n=5, total=6), "given twice"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_config_says_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config(raw)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="only JSON"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "c.json").write_text(json.dumps(cfg(**{"data-file": "bad.json"})))
    with pytest.raises(ConfigError, match=r"data-file: .*bad\.json: not valid JSON"):
        load_config(tmp_path / "c.json")


@pytest.mark.parametrize(
    ("call", "parts"),
    [
        ("pkg.v1.Svc.Method", ("pkg.v1.Svc", "Method")),
        ("pkg.v1.Svc/Method", ("pkg.v1.Svc", "Method")),
        ("/pkg.v1.Svc/Method", ("pkg.v1.Svc", "Method")),
    ],
)
def test_call_forms(call: str, parts: tuple[str, str]) -> None:
    assert normalize_call(call) == parts


@pytest.mark.parametrize(
    "target", ["127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.0.0.2:9", "unix:/tmp/s"]
)
def test_loopback_targets_allowed(target: str) -> None:
    check_target(target)


@pytest.mark.parametrize("target", ["10.0.0.5:50051", "example.com:443", "gateway:50051", "dns:///gw:50051"])
def test_remote_targets_refused_unless_allowed(target: str) -> None:
    with pytest.raises(LoadError, match="not a loopback address"):
        check_target(target)
    check_target(target, allow_remote=True)


async def test_run_refuses_a_config_that_would_never_stop() -> None:
    from recsys_tools.loadgen import LoadConfig, run

    with pytest.raises(ConfigError, match="never stop"):
        await run(LoadConfig(call=BASE["call"], host=BASE["host"], total=None, duration=None))
