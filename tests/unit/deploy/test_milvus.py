"""Milvus as deployed (deploy/helm/milvus; issue #18): the pinned chart and the Milvus image agree,
and the retriever's test server is that Milvus; MinIO never runs on the chart's default
credentials; etcd and MinIO have PodDisruptionBudgets in prod; the backup CronJob reaches the
release of chart.env. Each check returns its errors and is shown to fail on a broken copy."""

from __future__ import annotations

import copy
import importlib.metadata
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
HELM = ROOT / "deploy" / "helm" / "milvus"
BACKUP = HELM / "backup"
#: where the retriever's milvus_server tests pin the PyPI `milvus` wheel (the test server)
TEST_SERVER_PINS = (ROOT / "scripts" / "test.sh", ROOT / "services/retriever/scripts/milvus_server_tests.sh")
#: the chart's MinIO defaults (charts/milvus/values.yaml of the pinned chart: minio.bucketName,
#: minio.rootPath, minio.service.port) and the subchart's Secret keys (minio 8.0.17 values.yaml)
CHART_MINIO = {"bucketName": "milvus-bucket", "rootPath": "file", "port": 9000}
SECRET_KEYS = {"MINIO_ACCESS_KEY_ID": "accesskey", "MINIO_SECRET_ACCESS_KEY": "secretkey"}
DEFAULT_CREDENTIAL = "minioadmin"
#: the Milvus components of each mode that talk to MinIO (Milvus 2.3 / chart 4.1)
COMPONENTS = {
    False: ("standalone",),
    True: ("proxy", "queryNode", "dataNode", "indexNode"),
}
COORDINATORS = ("rootCoordinator", "queryCoordinator", "indexCoordinator", "dataCoordinator")

Values = dict[str, Any]


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def chart_versions() -> dict[str, str]:
    rows = [ln.split() for ln in (HELM / "chart-versions.txt").read_text().splitlines()]
    return {r[0]: r[1] for r in rows if len(r) == 2 and not r[0].startswith("#")}


@pytest.fixture(scope="module")
def values(yaml_module: ModuleType) -> dict[str, Values]:
    return {p.name: yaml_module.safe_load(p.read_text()) for p in sorted(HELM.glob("values-*.yaml"))}


def app_version() -> str:
    chart = read_env(HELM / "chart.env")["MILVUS_CHART_VERSION"]
    versions = chart_versions()
    assert chart in versions, f"chart {chart} (chart.env) is not in chart-versions.txt"
    return versions[chart]


# ---- checks ------------------------------------------------------------------------------------


def image_errors(values: dict[str, Values], app: str) -> list[str]:
    """Both values files run the Milvus the pinned chart ships."""
    errors = []
    for name, v in values.items():
        tag = v.get("image", {}).get("all", {}).get("tag")
        if tag != f"v{app}":
            errors.append(f"{name}: image.all.tag {tag!r}, the pinned chart ships v{app}")
    return errors


def server_version_errors(pins: dict[str, str], installed: str | None, app: str) -> list[str]:
    errors = [
        f"{where}: the test server is milvus=={v}, deployed {app}" for where, v in pins.items() if v != app
    ]
    if not pins:
        errors.append("no milvus==VERSION pin for the retriever's test server")
    if installed is not None and installed != app:
        errors.append(f"the installed `milvus` wheel is {installed}, deployed {app}")
    return errors


def _env_refs(component: Values) -> dict[str, tuple[str, str]]:
    out = {}
    for item in component.get("extraEnv") or []:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            out[item["name"]] = (ref.get("name"), ref.get("key"))
    return out


def minio_credential_errors(name: str, v: Values) -> list[str]:
    """MinIO's keys come from a Secret (minio.existingSecret), never the chart's minioadmin, and
    every Milvus component of the mode reads the same Secret's keys."""
    errors: list[str] = []
    minio = v.get("minio", {})
    if minio.get("enabled") is False:
        return errors  # externalS3: the cloud's object store
    secret = minio.get("existingSecret")
    if not secret:
        errors.append(f"{name}: minio.existingSecret unset: MinIO runs on the chart's default credentials")
    for key in ("accessKey", "secretKey"):
        if minio.get(key, DEFAULT_CREDENTIAL) != "":
            errors.append(
                f"{name}: minio.{key} is {minio.get(key, '(the chart default minioadmin)')!r}, not emptied: "
                "Milvus' ConfigMap would carry it"
            )
    if DEFAULT_CREDENTIAL in repr(v):
        errors.append(f"{name}: the default credential {DEFAULT_CREDENTIAL!r} appears in the values")
    cluster = bool(v.get("cluster", {}).get("enabled", True))
    components = list(COMPONENTS[cluster])
    if cluster:
        if v.get("mixCoordinator", {}).get("enabled"):
            components.append("mixCoordinator")
        components += [c for c in COORDINATORS if v.get(c, {}).get("enabled", True)]
    for comp in components:
        refs = _env_refs(v.get(comp, {}))
        for var, key in SECRET_KEYS.items():
            if refs.get(var) != (secret, key):
                errors.append(
                    f"{name}: {comp} does not read {var} from Secret {secret} key {key} ({refs.get(var)})"
                )
    return errors


def pdb_errors(v: Values) -> list[str]:
    """prod: a drain never takes etcd's quorum or more than one MinIO server."""
    errors = []
    etcd, minio = v.get("etcd", {}), v.get("minio", {})
    if int(etcd.get("replicaCount", 3)) < 3:
        errors.append(f"etcd.replicaCount {etcd.get('replicaCount')}: no quorum through a drain")
    if etcd.get("pdb", {}).get("create") is not True:
        errors.append("etcd.pdb.create is not true (the chart's default is false)")
    if minio.get("enabled", True) and minio.get("mode") == "distributed":
        pdb = minio.get("podDisruptionBudget", {})
        if pdb.get("enabled") is not True:
            errors.append("minio.podDisruptionBudget.enabled is not true (the chart's default is false)")
        elif int(pdb.get("maxUnavailable", 1)) != 1:
            errors.append(f"minio.podDisruptionBudget.maxUnavailable {pdb.get('maxUnavailable')}, not 1")
    return errors


def backup_errors(objs: list[dict[str, Any]], config: Values, pin: dict[str, str]) -> list[str]:
    """The backup CronJob: in Milvus' namespace, never twice at once, its --config inside the mounted
    Secret; its configuration names the release's proxy Service and MinIO, the chart's bucket, and
    no default credential."""
    errors: list[str] = []
    release, ns = pin["MILVUS_RELEASE"], pin["MILVUS_NAMESPACE"]
    crons = [o for o in objs if o["kind"] == "CronJob"]
    if len(crons) != 1:
        return [f"{len(crons)} CronJobs rendered, expected the one milvus-backup"]
    cron = crons[0]
    if cron["metadata"].get("namespace") != ns:
        errors.append(f"CronJob in namespace {cron['metadata'].get('namespace')}, Milvus is in {ns}")
    if cron["spec"].get("concurrencyPolicy") != "Forbid":
        errors.append("two backups may run at once (concurrencyPolicy is not Forbid)")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    if not re.fullmatch(r"[\w./-]+:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", c["image"]):
        errors.append(f"image {c['image']} is not pinned to a release")
    cmd = " ".join([*c.get("command", []), *c.get("args", [])])
    m = re.search(r"--config\s+(\S+)", cmd)
    if "milvus-backup" not in cmd or " create" not in cmd or not m:
        errors.append(f"the container does not run `milvus-backup --config FILE create`: {cmd}")
    else:
        path = m[1]
        mounts = {mt["mountPath"]: mt["name"] for mt in c.get("volumeMounts", [])}
        folder, _, file = path.rpartition("/")
        vol = next((v for v in spec.get("volumes", []) if v["name"] == mounts.get(folder)), None)
        items = {i["path"]: i["key"] for i in (vol or {}).get("secret", {}).get("items", [])}
        if vol is None or "secret" not in vol or file not in items:
            errors.append(f"--config {path} is not a file of a mounted Secret")
    mv, mo = config.get("milvus", {}), config.get("minio", {})
    want_milvus = f"{release}.{ns}.svc.cluster.local"
    if (mv.get("address"), mv.get("port")) != (want_milvus, 19530):
        errors.append(
            f"milvus.address {mv.get('address')}:{mv.get('port')}, the release is {want_milvus}:19530"
        )
    want_minio = f"{release}-minio.{ns}.svc.cluster.local"
    if (mo.get("address"), mo.get("port")) != (want_minio, CHART_MINIO["port"]):
        errors.append(
            f"minio.address {mo.get('address')}:{mo.get('port')}, the release's MinIO is {want_minio}"
        )
    for key in ("bucketName", "rootPath"):
        if mo.get(key) != CHART_MINIO[key]:
            errors.append(f"minio.{key} {mo.get(key)!r}, the chart writes to {CHART_MINIO[key]!r}")
    if not mo.get("backupBucketName") or not mo.get("backupRootPath"):
        errors.append("no backupBucketName/backupRootPath")
    if DEFAULT_CREDENTIAL in repr(config):
        errors.append(f"the backup configuration carries the default credential {DEFAULT_CREDENTIAL!r}")
    return errors


# ---- tests -------------------------------------------------------------------------------------


def test_values_run_the_milvus_the_pinned_chart_ships(values: dict[str, Values]) -> None:
    assert set(values) == {"values-standalone.yaml", "values-cluster.yaml"}
    assert not image_errors(values, app_version())


def _pins() -> dict[str, str]:
    pins = {}
    for path in TEST_SERVER_PINS:
        for v in re.findall(r"\bmilvus==([0-9][0-9.]*[0-9])", path.read_text()):
            pins[f"{path.relative_to(ROOT)} ({v})"] = v
    return pins


def _installed() -> str | None:
    try:
        return importlib.metadata.version("milvus")
    except importlib.metadata.PackageNotFoundError:
        return None


def test_the_retriever_is_tested_against_the_deployed_milvus() -> None:
    """The server of the milvus_server tests (PyPI `milvus`) is the Milvus the values deploy: the
    wheel's pins, and the wheel itself where it is installed in this environment."""
    errors = server_version_errors(_pins(), _installed(), app_version())
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", ["values-standalone.yaml", "values-cluster.yaml"])
def test_minio_never_runs_on_the_default_credentials(values: dict[str, Values], name: str) -> None:
    errors = minio_credential_errors(name, values[name])
    assert not errors, "\n".join(errors)


def test_prod_has_etcd_and_minio_disruption_budgets(values: dict[str, Values]) -> None:
    errors = pdb_errors(values["values-cluster.yaml"])
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def backup(
    render: Callable[[Path], list[dict[str, Any]]], yaml_module: ModuleType
) -> tuple[list[Any], Values]:
    return render(BACKUP), yaml_module.safe_load((BACKUP / "backup.yaml.example").read_text())


def test_backup_cronjob_reaches_the_release(backup: tuple[list[Any], Values]) -> None:
    objs, config = backup
    errors = backup_errors(objs, config, read_env(HELM / "chart.env"))
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("version", ["1.30.0", "latest"])
def test_backup_validates_against_kubernetes_schemas(
    backup: tuple[list[Any], Values], version: str, kubernetes_validate: ModuleType
) -> None:
    from kubernetes_validate import utils as kvu

    target = kvu.latest_version() if version == "latest" else version
    for obj in backup[0]:
        kubernetes_validate.validate(obj, target, strict=True)


# ---- each check fails when broken ---------------------------------------------------------------


def _set(d: Values, path: str, value: Any) -> None:
    *head, last = path.split(".")
    for k in head:
        d = d.setdefault(k, {})
    d[last] = value


def _delete(d: Values, path: str) -> None:
    *head, last = path.split(".")
    for k in head:
        d = d[k]
    del d[last]


VALUE_BREAKAGES: dict[str, tuple[str, Callable[[Values], None], Callable[[str, Values], list[str]]]] = {
    "image-from-another-chart": (
        "values-cluster.yaml",
        lambda v: _set(v, "image.all.tag", "v3.0.1"),
        lambda n, v: image_errors({n: v}, app_version()),
    ),
    "minio-default-secret": (
        "values-standalone.yaml",
        lambda v: _delete(v, "minio.existingSecret"),
        minio_credential_errors,
    ),
    "minio-default-keys": (
        "values-cluster.yaml",
        lambda v: (_delete(v, "minio.accessKey"), _delete(v, "minio.secretKey")),
        minio_credential_errors,
    ),
    "minio-admin-literal": (
        "values-cluster.yaml",
        lambda v: _set(v, "minio.accessKey", DEFAULT_CREDENTIAL),
        minio_credential_errors,
    ),
    "component-without-credentials": (
        "values-cluster.yaml",
        lambda v: _set(v, "indexNode.extraEnv", []),
        minio_credential_errors,
    ),
    "component-other-secret": (
        "values-standalone.yaml",
        lambda v: _set(v, "minio.existingSecret", "other"),
        minio_credential_errors,
    ),
    "coordinators-back-without-credentials": (
        "values-cluster.yaml",
        lambda v: _set(v, "rootCoordinator.enabled", True),
        minio_credential_errors,
    ),
    "etcd-pdb-off": ("values-cluster.yaml", lambda v: _delete(v, "etcd.pdb"), lambda n, v: pdb_errors(v)),
    "minio-pdb-off": (
        "values-cluster.yaml",
        lambda v: _set(v, "minio.podDisruptionBudget.enabled", False),
        lambda n, v: pdb_errors(v),
    ),
}


@pytest.mark.parametrize("breakage", sorted(VALUE_BREAKAGES))
def test_value_checks_fail_when_broken(values: dict[str, Values], breakage: str) -> None:
    name, breaker, check = VALUE_BREAKAGES[breakage]
    v = copy.deepcopy(values[name])
    assert not check(name, v)
    breaker(v)
    assert check(name, v), breakage


def test_test_server_check_fails_on_another_version() -> None:
    app = app_version()
    assert not server_version_errors({"pin": app}, None, app)
    assert server_version_errors({"pin": "2.4.0"}, None, app)
    assert server_version_errors({"pin": app}, "2.6.0", app)
    assert server_version_errors({}, None, app)
    # and the pinned chart against a chart of another Milvus (the values once pinned v3.0.1 on 5.0.19)
    assert chart_versions()["5.0.19"] != app


BACKUP_BREAKAGES: dict[str, Callable[[list[Any], Values], None]] = {
    "wrong-namespace": lambda o, c: o[0]["metadata"].__setitem__("namespace", "recsys"),
    "concurrent": lambda o, c: o[0]["spec"].__setitem__("concurrencyPolicy", "Allow"),
    "unpinned-image": lambda o, c: o[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
        0
    ].__setitem__("image", "milvusdb/milvus-backup:latest"),
    "config-not-mounted": lambda o, c: o[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
        0
    ]["volumeMounts"].pop(0),
    "milvus-in-recsys": lambda o, c: c["milvus"].__setitem__("address", "milvus.recsys.svc.cluster.local"),
    "minio-unqualified": lambda o, c: c["minio"].__setitem__("address", "milvus-minio"),
    "wrong-bucket": lambda o, c: c["minio"].__setitem__("bucketName", "a-bucket"),
    "default-credentials": lambda o, c: c["minio"].__setitem__("accessKeyID", DEFAULT_CREDENTIAL),
}


@pytest.mark.parametrize("breakage", sorted(BACKUP_BREAKAGES))
def test_backup_check_fails_when_broken(backup: tuple[list[Any], Values], breakage: str) -> None:
    objs, config = copy.deepcopy(backup)
    pin = read_env(HELM / "chart.env")
    assert not backup_errors(objs, config, pin)
    BACKUP_BREAKAGES[breakage](objs, config)
    assert backup_errors(objs, config, pin), breakage
