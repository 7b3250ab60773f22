"""Prometheus metrics of the gRPC servers (default registry) and the metrics HTTP endpoint.

Labels: ``service`` is the server's short name ("catalog"), ``method`` the full
gRPC method without the leading slash ("recsys.catalog.v1.Catalog/GetMovies"),
``code`` the status code name ("OK", "NOT_FOUND").
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "recsys_grpc_requests",
    "gRPC calls handled, by status code",
    ["service", "method", "code"],
)
DURATION = Histogram(
    "recsys_grpc_request_duration_seconds",
    "gRPC call handling time",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
IN_FLIGHT = Gauge(
    "recsys_grpc_requests_in_flight",
    "gRPC calls being handled now",
    ["service", "method"],
)


class MetricsEndpoint:
    """The ``/metrics`` HTTP endpoint in a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        addr = host.strip("[]")
        server, thread = start_http_server(port, addr=addr)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        """Blocking (up to the serve loop's 0.5 s poll): run it in a thread from async code."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["DURATION", "IN_FLIGHT", "REQUESTS", "MetricsEndpoint"]
