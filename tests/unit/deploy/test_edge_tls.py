"""TLS in the rendered prod overlay (issue #18): the public endpoints only behind TLS, the
database only over verified TLS.

- the gateway and web Services are internal (no LoadBalancer, NodePort or external IPs);
- a GRPCRoute reaches the gateway Service and an HTTPRoute the web Service, by a Service name
  and port that exist, through an HTTPS listener of a Gateway that exists;
- every HTTPS listener serves the Secret a cert-manager Certificate writes, for its hostname;
- the web sends its cookies with the Secure flag;
- the database CA is mounted where the example DSN's sslrootcert points, in the catalog
  Deployment and in the migrate Job.

Each check is a function returning its problems; every test also breaks the manifests in memory
and asserts the check notices, so a check that can never fail fails here.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROD = ROOT / "deploy" / "k8s" / "overlays" / "prod"
CATALOG_SECRETS_EXAMPLE = PROD / "secrets" / "catalog.env.example"

GATEWAY_API = "gateway.networking.k8s.io/v1"
CERT_MANAGER = "cert-manager.io/v1"
# public Service -> the route kind that must reach it
PUBLIC: dict[str, str] = {"gateway": "GRPCRoute", "web": "HTTPRoute"}
# workload (kind, name) -> container that connects to the database
DB_CLIENTS: dict[tuple[str, str], str] = {
    ("Deployment", "catalog"): "catalog",
    ("Job", "catalog-migrate"): "migrate",
}

Manifest = dict[str, Any]


# ---- helpers ---------------------------------------------------------------------------------


def of_kind(objs: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o.get("kind") == kind]


def named(objs: list[Manifest], kind: str, name: str) -> Manifest | None:
    """An object by kind and name; generated ConfigMaps/Secrets carry a 10-character hash."""
    pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{10}})?$")
    hits = [o for o in of_kind(objs, kind) if pattern.match(o["metadata"]["name"])]
    return hits[0] if len(hits) == 1 else None


def container(obj: Manifest, name: str) -> Manifest | None:
    return next((c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == name), None)


def list_of(value: Any) -> list[Manifest]:
    assert isinstance(value, list)
    return value


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def example_dsn() -> str:
    return read_env_file(CATALOG_SECRETS_EXAMPLE)["RECSYS_CATALOG_DSN"]


def hostname_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and host.count(".") == pattern.count(".")
    return pattern == host


# ---- the checks ------------------------------------------------------------------------------


def public_service_problems(objs: list[Manifest]) -> list[str]:
    problems = []
    for name in PUBLIC:
        svc = named(objs, "Service", name)
        if svc is None:
            problems.append(f"Service/{name} is not rendered")
            continue
        kind = svc["spec"].get("type", "ClusterIP")
        if kind != "ClusterIP":
            problems.append(f"Service/{name} is {kind}: reachable around the TLS Gateway")
        if svc["spec"].get("externalIPs"):
            problems.append(f"Service/{name} has externalIPs")
    return problems


def _listener(objs: list[Manifest], parent: Manifest) -> tuple[Manifest | None, str]:
    if parent.get("kind", "Gateway") != "Gateway" or parent.get("group", "gateway.networking.k8s.io") != (
        "gateway.networking.k8s.io"
    ):
        return None, f"parentRef {parent} is not a Gateway"
    gw = named(objs, "Gateway", parent["name"])
    if gw is None or gw.get("apiVersion") != GATEWAY_API:
        return None, f"parentRef Gateway/{parent['name']} is not rendered (as {GATEWAY_API})"
    section = parent.get("sectionName")
    listeners = [lst for lst in gw["spec"].get("listeners", []) if section in (None, lst["name"])]
    if len(listeners) != 1:
        return None, f"Gateway/{parent['name']} has no single listener {section!r}"
    return listeners[0], ""


def route_problems(objs: list[Manifest]) -> list[str]:
    """Each public Service is the backend of a route of the right kind, on a TLS listener."""
    problems = []
    for svc_name, route_kind in PUBLIC.items():
        svc = named(objs, "Service", svc_name)
        svc_ports = {p["port"]: p for p in (svc or {}).get("spec", {}).get("ports", [])}
        reached = False
        for route in of_kind(objs, route_kind):
            ident = f"{route_kind}/{route['metadata']['name']}"
            backends = [
                ref
                for rule in route["spec"].get("rules", [])
                for ref in rule.get("backendRefs", [])
                if ref.get("kind", "Service") == "Service" and ref.get("group", "") == ""
            ]
            if not any(ref["name"] == svc_name for ref in backends):
                continue
            reached = True
            if route.get("apiVersion") != GATEWAY_API:
                problems.append(f"{ident}: apiVersion {route.get('apiVersion')}, want {GATEWAY_API}")
            for ref in backends:
                target = named(objs, "Service", ref["name"])
                if target is None:
                    problems.append(f"{ident}: backend Service/{ref['name']} does not exist")
                elif ref.get("port") not in {p["port"] for p in target["spec"]["ports"]}:
                    problems.append(f"{ident}: Service/{ref['name']} has no port {ref.get('port')}")
                elif ref["name"] == svc_name and route_kind == "GRPCRoute":
                    # the proxy speaks HTTP/2 in cleartext to the gRPC server only if told so
                    if svc_ports[ref["port"]].get("appProtocol") != "kubernetes.io/h2c":
                        problems.append(f"{ident}: Service/{svc_name} port {ref['port']} is not h2c")
            parents = route["spec"].get("parentRefs", [])
            if not parents:
                problems.append(f"{ident}: no parentRefs")
            for parent in parents:
                listener, why = _listener(objs, parent)
                if listener is None:
                    problems.append(f"{ident}: {why}")
                    continue
                tls_mode = listener.get("tls", {}).get("mode", "Terminate")
                if listener.get("protocol") != "HTTPS" or tls_mode != "Terminate":
                    problems.append(f"{ident}: listener {listener['name']} does not terminate TLS")
                kinds = {k["kind"] for k in listener.get("allowedRoutes", {}).get("kinds", [])}
                if kinds and route_kind not in kinds:
                    problems.append(f"{ident}: listener {listener['name']} admits only {sorted(kinds)}")
                host = listener.get("hostname")
                hosts = route["spec"].get("hostnames", [])
                if host and hosts and not any(hostname_matches(host, h) for h in hosts):
                    problems.append(f"{ident}: hostnames {hosts} miss listener hostname {host}")
        if not reached:
            problems.append(f"no {route_kind} has Service/{svc_name} as a backend")
    return problems


def certificate_problems(objs: list[Manifest]) -> list[str]:
    """Every HTTPS listener serves a Secret that a Certificate writes, valid for its hostname."""
    problems = []
    certs = {
        c["spec"]["secretName"]: c
        for c in of_kind(objs, "Certificate")
        if c.get("apiVersion") == CERT_MANAGER
    }
    listeners = [
        (gw["metadata"]["name"], lst)
        for gw in of_kind(objs, "Gateway")
        for lst in gw["spec"].get("listeners", [])
        if lst.get("protocol") in {"HTTPS", "TLS"}
    ]
    if not listeners:
        problems.append("no Gateway has an HTTPS listener")
    for gw_name, lst in listeners:
        refs = lst.get("tls", {}).get("certificateRefs", [])
        if not refs:
            problems.append(f"Gateway/{gw_name} listener {lst['name']}: no certificateRefs")
        for ref in refs:
            cert = certs.get(ref["name"])
            if ref.get("kind", "Secret") != "Secret" or cert is None:
                problems.append(
                    f"Gateway/{gw_name} listener {lst['name']}: Secret {ref['name']} is no Certificate's"
                    f" secretName (Certificates write {sorted(certs)})"
                )
                continue
            host = lst.get("hostname")
            if host and not any(hostname_matches(n, host) for n in cert["spec"].get("dnsNames", [])):
                problems.append(f"Certificate/{cert['metadata']['name']}: dnsNames miss {host}")
    for cert in certs.values():
        issuer = cert["spec"].get("issuerRef", {})
        if not issuer.get("name") or issuer.get("kind") not in {"Issuer", "ClusterIssuer"}:
            problems.append(f"Certificate/{cert['metadata']['name']}: no issuerRef")
    return problems


def cookie_problems(objs: list[Manifest]) -> list[str]:
    """The web container's environment turns RecsysWebSettings.cookie_secure on."""
    from pydantic import TypeAdapter, ValidationError

    web = named(objs, "Deployment", "web")
    c = container(web, "web") if web is not None else None
    if c is None:
        return ["Deployment/web (container web) is not rendered"]
    env: dict[str, str] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cm = named(objs, "ConfigMap", src["configMapRef"]["name"])
            env.update((cm or {}).get("data", {}))
    for item in c.get("env", []):
        env[item["name"]] = item.get("value", "")
    value = env.get("RECSYS_WEB_COOKIE_SECURE")
    if value is None:
        return ["RECSYS_WEB_COOKIE_SECURE is not set: cookies default to not Secure"]
    try:
        secure = TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return [f"RECSYS_WEB_COOKIE_SECURE={value!r} is not a boolean"]
    return [] if secure else [f"RECSYS_WEB_COOKIE_SECURE={value!r}: cookies not Secure"]


def db_ca_problems(objs: list[Manifest], dsn: str) -> list[str]:
    """sslmode=verify-full, and the sslrootcert file exists in every database client's pod."""
    query = parse_qs(urlsplit(dsn).query)
    if query.get("sslmode") != ["verify-full"]:
        return [f"DSN sslmode is {query.get('sslmode')}, want verify-full"]
    roots = query.get("sslrootcert", [])
    if len(roots) != 1 or not posixpath.isabs(roots[0]):
        return [f"DSN sslrootcert is {roots}, want one absolute path"]
    root = roots[0]
    problems = []
    for (kind, name), cname in DB_CLIENTS.items():
        obj = named(objs, kind, name)
        c = container(obj, cname) if obj is not None else None
        if obj is None or c is None:
            problems.append(f"{kind}/{name} (container {cname}) is not rendered")
            continue
        volumes = {v["name"]: v for v in obj["spec"]["template"]["spec"].get("volumes", [])}
        found = False
        for mount in c.get("volumeMounts", []):
            prefix = mount["mountPath"].rstrip("/") + "/"
            if not root.startswith(prefix) or mount.get("subPath"):
                continue
            key = root[len(prefix) :]
            vol = volumes.get(mount["name"])
            source = (vol or {}).get("secret") or (vol or {}).get("configMap")
            if source is None:
                problems.append(f"{kind}/{name}: mount {mount['mountPath']} has no Secret/ConfigMap volume")
                continue
            items = source.get("items")
            if "/" in key or (items is not None and key not in {i["path"] for i in items}):
                problems.append(f"{kind}/{name}: {mount['mountPath']} holds no file {key}")
                continue
            if source.get("optional"):
                problems.append(f"{kind}/{name}: the CA volume is optional (a pod would start without it)")
            found = True
        if not found:
            problems.append(f"{kind}/{name}: nothing mounted at {posixpath.dirname(root)} (sslrootcert)")
    return problems


# ---- tests -----------------------------------------------------------------------------------


@pytest.fixture
def prod(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    """A private copy of the rendered prod overlay, free to break."""
    return copy.deepcopy(rendered["prod"])


def broken(objs: list[Manifest], kind: str, name: str, change: Callable[[Manifest], Any]) -> list[Manifest]:
    out = copy.deepcopy(objs)
    obj = named(out, kind, name)
    assert obj is not None, f"{kind}/{name} not rendered"
    change(obj)
    return out


def test_public_services_are_internal(prod: list[Manifest]) -> None:
    assert public_service_problems(prod) == []
    for svc in PUBLIC:
        for kind in ("LoadBalancer", "NodePort"):

            def expose(o: Manifest, k: str = kind) -> None:
                o["spec"]["type"] = k

            assert public_service_problems(broken(prod, "Service", svc, expose)), (svc, kind)
        bad = broken(prod, "Service", svc, lambda o: o["spec"].update(externalIPs=["203.0.113.7"]))
        assert public_service_problems(bad)


def test_routes_reach_the_public_services_through_tls_listeners(prod: list[Manifest]) -> None:
    assert route_problems(prod) == []
    grpc = of_kind(prod, "GRPCRoute")[0]["metadata"]["name"]
    http = of_kind(prod, "HTTPRoute")[0]["metadata"]["name"]
    gateway = of_kind(prod, "Gateway")[0]["metadata"]["name"]

    def backend(o: Manifest) -> Manifest:
        return o["spec"]["rules"][0]["backendRefs"][0]

    mutations: list[tuple[str, str, Callable[[Manifest], Any]]] = [
        ("GRPCRoute", grpc, lambda o: backend(o).update(name="gateway-typo")),
        ("GRPCRoute", grpc, lambda o: backend(o).update(port=9999)),
        ("HTTPRoute", http, lambda o: backend(o).update(name="web-typo")),
        ("HTTPRoute", http, lambda o: backend(o).update(port=80)),
        ("GRPCRoute", grpc, lambda o: o["spec"]["parentRefs"][0].update(sectionName="nope")),
        ("HTTPRoute", http, lambda o: o["spec"]["parentRefs"][0].update(name="other-gateway")),
        ("GRPCRoute", grpc, lambda o: o.update(apiVersion="gateway.networking.k8s.io/v1alpha2")),
        ("Gateway", gateway, lambda o: [lst.update(protocol="HTTP") for lst in o["spec"]["listeners"]]),
        (
            "Gateway",
            gateway,
            lambda o: [lst.update(hostname="other.example.org") for lst in o["spec"]["listeners"]],
        ),
        ("Service", "gateway", lambda o: [p.pop("appProtocol", None) for p in o["spec"]["ports"]]),
    ]
    for kind, name, change in mutations:
        assert route_problems(broken(prod, kind, name, change)), (kind, name)
    # a route kind gone entirely (and a GRPCRoute pointing at the web does not count for the gateway)
    for kind in ("GRPCRoute", "HTTPRoute"):
        assert route_problems([o for o in prod if o["kind"] != kind]), kind
    # the GRPCRoute's listener admitting only HTTPRoutes
    listener = next(p.get("sectionName") for p in of_kind(prod, "GRPCRoute")[0]["spec"]["parentRefs"])
    bad = broken(
        prod,
        "Gateway",
        gateway,
        lambda o: [
            lst["allowedRoutes"].update(kinds=[{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
            for lst in o["spec"]["listeners"]
            if lst["name"] == listener
        ],
    )
    assert route_problems(bad)


def test_listeners_serve_the_certificates_secret(prod: list[Manifest]) -> None:
    assert certificate_problems(prod) == []
    (cert,) = of_kind(prod, "Certificate")
    gateway = of_kind(prod, "Gateway")[0]["metadata"]["name"]
    name = cert["metadata"]["name"]
    mutations: list[tuple[str, str, Callable[[Manifest], Any]]] = [
        ("Certificate", name, lambda o: o["spec"].update(secretName="another-secret")),
        ("Certificate", name, lambda o: o["spec"]["dnsNames"].pop()),
        ("Certificate", name, lambda o: o["spec"]["dnsNames"].pop(0)),
        ("Certificate", name, lambda o: o["spec"].pop("issuerRef")),
        (
            "Gateway",
            gateway,
            lambda o: o["spec"]["listeners"][0]["tls"]["certificateRefs"][0].update(name="typo-tls"),
        ),
        ("Gateway", gateway, lambda o: o["spec"]["listeners"][-1]["tls"].update(certificateRefs=[])),
    ]
    for kind, obj_name, change in mutations:
        assert certificate_problems(broken(prod, kind, obj_name, change)), (kind, obj_name)
    assert certificate_problems([o for o in prod if o["kind"] != "Certificate"])
    # the issuer is a documented setting: named, and a kind cert-manager knows
    assert cert["spec"]["issuerRef"]["kind"] in {"Issuer", "ClusterIssuer"}


def test_web_cookies_are_secure(prod: list[Manifest]) -> None:
    assert cookie_problems(prod) == []
    web = named(prod, "Deployment", "web")
    web_container = container(web, "web") if web is not None else None
    assert web_container is not None
    cm_name = next(s["configMapRef"]["name"] for s in web_container["envFrom"] if "configMapRef" in s)
    for change in (
        lambda o: o["data"].update(RECSYS_WEB_COOKIE_SECURE="false"),
        lambda o: o["data"].update(RECSYS_WEB_COOKIE_SECURE="maybe"),
        lambda o: o["data"].pop("RECSYS_WEB_COOKIE_SECURE"),
    ):
        assert cookie_problems(broken(prod, "ConfigMap", cm_name, change))
    # an env entry on the container overrides the ConfigMap
    bad = broken(
        prod,
        "Deployment",
        "web",
        lambda o: (
            o["spec"]["template"]["spec"]["containers"][0]
            .setdefault("env", [])
            .append({"name": "RECSYS_WEB_COOKIE_SECURE", "value": "false"})
        ),
    )
    assert cookie_problems(bad)
    # and the value means what the web itself reads (its settings class)
    settings = pytest.importorskip("recsys_web.settings")
    assert "cookie_secure" in settings.RecsysWebSettings.model_fields


def test_db_ca_is_mounted_where_the_dsn_points(prod: list[Manifest]) -> None:
    dsn = example_dsn()
    assert db_ca_problems(prod, dsn) == []
    for (kind, name), cname in DB_CLIENTS.items():

        def mounts(o: Manifest, c: str = cname) -> list[Manifest]:
            found = container(o, c)
            assert found is not None
            return list_of(found["volumeMounts"])

        def ca_mount(o: Manifest) -> Manifest:
            return next(m for m in mounts(o) if m["mountPath"] == "/etc/recsys/db-ca")

        def ca_volume(o: Manifest) -> Manifest:
            vols = o["spec"]["template"]["spec"]["volumes"]
            return next(v for v in vols if v["name"] == ca_mount(o)["name"])

        for change in (
            lambda o: mounts(o).remove(ca_mount(o)),
            lambda o: ca_mount(o).update(mountPath="/etc/recsys/other"),
            lambda o: ca_mount(o).update(name="no-such-volume"),
            lambda o: ca_volume(o)["secret"].update(items=[{"key": "ca.crt", "path": "root.crt"}]),
            lambda o: ca_volume(o)["secret"].update(optional=True),
        ):
            assert db_ca_problems(broken(prod, kind, name, change), dsn), (kind, name)
    # the DSN pointing elsewhere, or not verifying
    assert db_ca_problems(prod, dsn.replace("/etc/recsys/db-ca/", "/etc/ssl/"))
    assert db_ca_problems(prod, dsn.replace("sslmode=verify-full", "sslmode=require"))
    assert db_ca_problems(prod, re.sub(r"&?sslrootcert=[^&]*", "", dsn))
