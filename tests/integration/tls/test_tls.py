"""TLS and mutual TLS for the kit's servers and clients, with certificates made in the test.

Certificates come from the ``openssl`` CLI (no extra Python dependency): a CA, a server
certificate for 127.0.0.1/localhost, a client certificate from the same CA, and a "rogue"
client certificate from another CA.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys.embedder.v1 import embedder_pb2_grpc
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys.retriever.v1 import retriever_pb2_grpc
from recsys_core.client import ClientTLS, open_channel
from recsys_core.server import Server
from recsys_core.settings import ServerSettings, SettingsError, load_settings
from recsys_core.testing import serving, test_settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

HEALTH = "grpc.health.v1.Health"


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip


def _leaf(d: Path, name: str, ca: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certs]:
    d = tmp_path_factory.mktemp("certs")
    _ca(d, "ca")
    _ca(d, "rogue-ca")
    _leaf(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _leaf(d, "rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    yield Certs(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        rogue_cert=d / "rogue.pem",
        rogue_key=d / "rogue.key",
    )


def _server(certs: Certs, *, mutual: bool) -> Server:
    settings = test_settings(
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca if mutual else None,
    )
    return Server(settings, "tls-test")


async def _check(channel: grpc.aio.Channel) -> int:
    resp = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return int(resp.status)


def _channel(port: int, tls: ClientTLS | None) -> grpc.aio.Channel:
    return open_channel(f"127.0.0.1:{port}", service=HEALTH, idempotent_methods=["Check"], tls=tls)


async def test_tls_round_trip_and_plaintext_refused(certs: Certs) -> None:
    async with serving(_server(certs, mutual=False)) as (_, port):
        async with _channel(port, ClientTLS(ca_file=certs.ca)) as ch:
            assert await _check(ch) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await _check(plain)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_client_refuses_a_server_it_does_not_trust(certs: Certs) -> None:
    async with serving(_server(certs, mutual=False)) as (_, port):
        rogue_ca = certs.rogue_cert.parent / "rogue-ca.pem"
        async with _channel(port, ClientTLS(ca_file=rogue_ca)) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await _check(ch)
            assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(certs: Certs) -> None:
    async with serving(_server(certs, mutual=True)) as (_, port):
        good = ClientTLS(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
        async with _channel(port, good) as ch:
            assert await _check(ch) == health_pb2.HealthCheckResponse.SERVING
        for tls in (
            ClientTLS(ca_file=certs.ca),  # no client certificate
            ClientTLS(ca_file=certs.ca, cert_file=certs.rogue_cert, key_file=certs.rogue_key),  # other CA
        ):
            async with _channel(port, tls) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await _check(ch)
                assert exc.value.code() == grpc.StatusCode.UNAVAILABLE, tls
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await _check(plain)


def test_tls_settings_validation(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(ServerSettings, tls_cert_file=certs.server_cert)
    assert "tls_key_file" in str(exc.value)
    with pytest.raises(SettingsError):
        load_settings(ServerSettings, tls_client_ca_file=certs.ca)
    # empty values (the ConfigMap's "not set") mean plaintext
    s = load_settings(ServerSettings, tls_cert_file="", tls_key_file=" ", tls_client_ca_file="")
    assert not s.tls_enabled and s.tls_cert_file is None
    with pytest.raises(ValueError, match="together"):
        ClientTLS(ca_file=certs.ca, cert_file=certs.client_cert)


async def test_unreadable_certificate_fails_start_naming_the_variable(certs: Certs, tmp_path: Path) -> None:
    settings = test_settings(tls_cert_file=tmp_path / "missing.pem", tls_key_file=certs.server_key)
    with pytest.raises(SettingsError) as exc:
        await Server(settings, "tls-test").start()
    assert "RECSYS_TLS_CERT_FILE" in str(exc.value)


async def test_gateway_calls_upstreams_over_mutual_tls(certs: Certs) -> None:
    """Three mTLS upstreams (health + unimplemented servicers): the gateway's channels use the
    upstream TLS settings (it turns SERVING only after each upstream's health answered over
    mTLS), and a call hops gateway -> catalog over mTLS (UNIMPLEMENTED, named)."""
    from recsys_gateway.server import GatewayApp
    from recsys_gateway.settings import GatewaySettings

    ups: dict[str, Server] = {}
    for name, add_fn, servicer, full in (
        ("catalog", catalog_pb2_grpc.add_CatalogServicer_to_server, catalog_pb2_grpc.CatalogServicer(),
         "recsys.catalog.v1.Catalog"),
        ("embedder", embedder_pb2_grpc.add_EmbedderServicer_to_server, embedder_pb2_grpc.EmbedderServicer(),
         "recsys.embedder.v1.Embedder"),
        ("retriever", retriever_pb2_grpc.add_RetrieverServicer_to_server,
         retriever_pb2_grpc.RetrieverServicer(), "recsys.retriever.v1.Retriever"),
    ):  # fmt: skip
        srv = _server(certs, mutual=True)
        srv.add_service(add_fn, servicer, full)
        await srv.start()
        srv.set_serving(True)
        ups[name] = srv
    gateway: Server | None = None
    try:
        settings = test_settings(
            GatewaySettings,
            catalog_target=f"127.0.0.1:{ups['catalog'].port}",
            embedder_target=f"127.0.0.1:{ups['embedder'].port}",
            retriever_target=f"127.0.0.1:{ups['retriever'].port}",
            upstream_tls_ca_file=certs.ca,
            upstream_tls_cert_file=certs.client_cert,
            upstream_tls_key_file=certs.client_key,
            upstream_timeout_s=5.0,
        )
        gateway = await GatewayApp.started(settings)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
            await _wait_serving(ch, "recsys.gateway.v1.Gateway")
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await gateway_pb2_grpc.GatewayStub(ch).GetMovies(
                    gateway_pb2.GetMoviesRequest(movie_ids=[1]), timeout=10
                )
            assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED, exc.value.details()
            assert (exc.value.details() or "").startswith("catalog:")
    finally:
        if gateway is not None:
            await gateway.stop(0)
        for srv in ups.values():
            await srv.stop(0)


async def _wait_serving(ch: grpc.aio.Channel, service: str, timeout: float = 20.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
            if resp.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        assert time.monotonic() < deadline, f"{service} not SERVING after {timeout}s (upstream mTLS failed?)"
        await asyncio.sleep(0.2)
