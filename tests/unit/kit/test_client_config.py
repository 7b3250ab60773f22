"""Service config (retries only for the listed methods) and the deadline budget helper."""

from __future__ import annotations

import json

import pytest
from recsys_core.client import (
    channel_options,
    remaining_timeout,
    reset_deadline,
    service_config,
    set_deadline,
)


def test_retry_policy_only_for_idempotent_methods() -> None:
    cfg = service_config(
        "recsys.catalog.v1.Catalog", ["GetMovies", "recsys.catalog.v1.Catalog/Describe"], max_attempts=4
    )
    (mc,) = cfg["methodConfig"]
    assert mc["name"] == [
        {"service": "recsys.catalog.v1.Catalog", "method": "Describe"},
        {"service": "recsys.catalog.v1.Catalog", "method": "GetMovies"},
    ]
    assert mc["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert mc["retryPolicy"]["maxAttempts"] == 4
    rr = [{"round_robin": {}}]  # every channel balances over all resolved addresses
    assert service_config("s.S", []) == {"loadBalancingConfig": rr, "methodConfig": []}
    assert service_config("s.S", ["A"], max_attempts=1) == {"loadBalancingConfig": rr, "methodConfig": []}
    with pytest.raises(ValueError):
        service_config("s.S", ["A"], max_attempts=6)


def test_channel_options() -> None:
    opts = dict(channel_options("s.S", ["A"], max_message_bytes=123))
    assert json.loads(opts["grpc.service_config"])["methodConfig"][0]["name"] == [
        {"service": "s.S", "method": "A"}
    ]
    assert opts["grpc.max_receive_message_length"] == 123 and opts["grpc.enable_retries"] == 1
    assert opts["grpc.keepalive_time_ms"] > 0


def test_remaining_timeout() -> None:
    assert remaining_timeout(2.5) == 2.5  # no server call deadline
    token = set_deadline(1.0)
    try:
        left = remaining_timeout(10.0)
        assert 0.5 < left < 1.0  # the budget less a margin, not the default
        assert remaining_timeout(0.2) == 0.2  # never more than the hop's own default
    finally:
        reset_deadline(token)
    token = set_deadline(0.01)
    try:
        assert remaining_timeout(5.0) == 0.0  # no time left
    finally:
        reset_deadline(token)
    token = set_deadline(None)
    try:
        assert remaining_timeout(3.0) == 3.0
    finally:
        reset_deadline(token)
