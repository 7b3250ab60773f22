"""ghz's report shape, percentiles, histogram and summary text."""

from __future__ import annotations

import json

import grpc
import pytest
from recsys_tools.loadgen import CallResult, build_report, format_summary, status_name
from recsys_tools.loadgen.__main__ import build_parser, overrides_from_args
from recsys_tools.loadgen.report import error_string, percentile

GHZ_KEYS = {
    "date",
    "options",
    "count",
    "total",
    "average",
    "fastest",
    "slowest",
    "rps",
    "errorDistribution",
    "statusCodeDistribution",
    "latencyDistribution",
    "histogram",
}


def ok(ms: float) -> CallResult:
    return CallResult(timestamp_ns=1_700_000_000_000_000_000, latency_ns=int(ms * 1e6), status="OK")


def test_percentile_uses_ghz_rank_rule() -> None:
    values = list(range(1, 11))  # 10 values
    assert percentile(values, 50) == 5  # 0.5 * 10 = 5 -> index 4
    assert percentile(values, 25) == 3  # 2.5 -> index 2
    assert percentile(values, 99) == 10
    assert percentile(list(range(1, 1001)), 99.9) == 999
    assert percentile([], 50) == 0


def test_report_has_ghz_keys_and_nanoseconds() -> None:
    results = [ok(ms) for ms in range(1, 101)]
    results.append(
        CallResult(
            1,
            5_000_000,
            status_name(grpc.StatusCode.UNAVAILABLE),
            error_string(grpc.StatusCode.UNAVAILABLE, "down"),
        )
    )
    rep = build_report(results, total_ns=2_000_000_000, options={"call": "a.B.C", "host": "h"}, name="t")
    assert GHZ_KEYS <= rep.keys()
    json.dumps(rep)  # serializable as is
    assert rep["count"] == 101
    assert rep["total"] == 2_000_000_000 and isinstance(rep["total"], int)
    assert rep["rps"] == pytest.approx(50.5)
    assert rep["fastest"] == 1_000_000 and rep["slowest"] == 100_000_000  # errors left out, as ghz does
    assert rep["statusCodeDistribution"] == {"OK": 100, "Unavailable": 1}
    assert rep["errorDistribution"] == {"rpc error: code = Unavailable desc = down": 1}
    dist = {d["percentage"]: d["latency"] for d in rep["latencyDistribution"]}
    assert list(dist) == [10, 25, 50, 75, 90, 95, 99, 99.9]
    assert dist[50] == 50_000_000 and dist[99] == 99_000_000
    assert sum(b["count"] for b in rep["histogram"]) == 100 and len(rep["histogram"]) == 11
    assert rep["histogram"][0]["mark"] == pytest.approx(0.001)  # marks in seconds
    assert rep["date"].endswith(("Z", "+00:00")) or "T" in rep["date"]
    assert "details" not in rep


def test_skip_first_and_details() -> None:
    results = [ok(100), ok(1), ok(2)]
    rep = build_report(results, total_ns=10**9, options={}, skip_first=1, details=True)
    assert rep["count"] == 2 and rep["slowest"] == 2_000_000
    assert [d["latency"] for d in rep["details"]] == [1_000_000, 2_000_000]
    assert set(rep["details"][0]) == {"timestamp", "latency", "error", "status"}


def test_all_failed_has_no_latency_distribution() -> None:
    results = [CallResult(1, 10, "DeadlineExceeded", "rpc error: code = DeadlineExceeded desc = x")]
    rep = build_report(results, total_ns=10**9, options={})
    assert rep["latencyDistribution"] is None and rep["fastest"] == 0
    text = format_summary(rep)
    assert "[DeadlineExceeded]   1 responses" in text and "Error distribution:" in text


def test_summary_text_like_ghz() -> None:
    rep = build_report([ok(ms) for ms in (1, 2, 3, 4)], total_ns=10**9, options={})
    text = format_summary(rep)
    for section in (
        "Summary:",
        "Count:\t4",
        "Requests/sec:\t4.00",
        "Response time histogram:",
        "Latency distribution:",
    ):
        assert section in text
    assert "50 % in 2.00 ms" in text and "99.9 % in 4.00 ms" in text
    assert "[OK]   4 responses" in text


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (grpc.StatusCode.OK, "OK"),
        (grpc.StatusCode.CANCELLED, "Canceled"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "DeadlineExceeded"),
        (grpc.StatusCode.INVALID_ARGUMENT, "InvalidArgument"),
        (grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated"),
    ],
)
def test_status_names_are_ghz_names(code: grpc.StatusCode, name: str) -> None:
    assert status_name(code) == name


def test_cli_overrides() -> None:
    args = build_parser().parse_args(
        [
            "127.0.0.1:1",
            "--config",
            "c.json",
            "-c",
            "4",
            "--rps",
            "50",
            "--duration",
            "10s",
            "-n",
            "9",
            "-m",
            '{"a":"b"}',
        ]
    )
    over = overrides_from_args(args)
    assert over == {
        "host": "127.0.0.1:1",
        "concurrency": 4,
        "rps": 50.0,
        "duration": "10s",
        "total": 9,
        "metadata": {"a": "b"},
    }


def test_rps_after_skip_first_counts_the_measured_window() -> None:
    start = 1_000_000_000_000
    # 4 calls of 1 ms back to back from the start: the 2 skipped ones end at 2 ms.
    results = [CallResult(start + i * 1_000_000, 1_000_000, "OK") for i in range(4)]
    rep = build_report(results, total_ns=4_000_000, options={}, skip_first=2, start_ns=start)
    assert rep["count"] == 2 and rep["rps"] == pytest.approx(1000.0)  # 2 calls in the last 2 ms
    assert rep["total"] == 4_000_000
