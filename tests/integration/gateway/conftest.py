"""Fixtures of the gateway's server tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from recsys_core.testing import free_port, test_settings
from recsys_gateway.server import GatewayApp
from recsys_gateway.settings import GatewaySettings

API_KEY = "k-123"


@pytest.fixture
async def gateway() -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a real gateway whose upstreams are all down (a port nothing listens on),
    with the API key ``API_KEY``: the edge's own behaviour (keys, validation, metrics, errors)."""
    dead = f"127.0.0.1:{free_port()}"
    settings = test_settings(
        GatewaySettings,
        catalog_target=dead,
        embedder_target=dead,
        retriever_target=dead,
        api_keys=[API_KEY],
        upstream_timeout_s=2.0,
    )
    server = await GatewayApp.started(settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
    await server.stop(0)
