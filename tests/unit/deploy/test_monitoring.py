"""components/monitoring (issue #18, observability): the prometheus-operator objects render in the
prod overlay, every PodMonitor selects pods of the render with a container port of that name
(Milvus: the Helm chart's labels and port, deploy/helm/milvus), every metric the rules and the
dashboard read exists in the code or is one of Triton's / Milvus' / Prometheus' listed below,
every PromQL expression parses (promql-parser, a real PromQL parser), and the dashboard is valid
Grafana JSON with unique panel ids. Each check also runs on a broken copy and must fail there.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
MONITORING = K8S / "components" / "monitoring"
DASHBOARDS = MONITORING / "dashboards"
PROD = K8S / "overlays" / "prod"

Manifest = dict[str, Any]
Render = Callable[[Path], list[Manifest]]

#: every workload the monitoring component must scrape (PodMonitor recsys-<name>)
SCRAPED = ("catalog", "retriever", "embedder", "gateway", "web", "triton", "milvus")
#: Milvus is not rendered here (its Helm chart, deploy/helm/milvus): the labels and the container
#: port its chart gives every component pod (release "milvus" in the namespace "milvus", as the
#: helm commands in deploy/helm/milvus/values-*.yaml install it)
MILVUS = {
    "namespace": "milvus",
    "labels": {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "milvus"},
    "port": "metrics",
}
#: metrics of the servers we do not build, documented by their projects:
#: Triton (docs/user_guide/metrics.md): per model/version counters and durations, GPU gauges
TRITON_METRICS = frozenset(
    {
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_gpu_utilization",
        "nv_gpu_memory_used_bytes",
    }
)
#: Milvus (pkg/metrics/proxy_metrics.go): search/query latency at the proxy, milliseconds
MILVUS_METRICS = frozenset({"milvus_proxy_sq_latency"})
#: Prometheus' own series per scrape target
PROMETHEUS_METRICS = frozenset({"up"})
#: sources whose prometheus_client metrics the rules and dashboards may use
METRIC_SOURCES = ("libs/core/src", "services", "gateway/src", "web/src")
_METRIC_DEF = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")
#: what each prometheus_client type exposes besides its name
_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created", ""),
}
#: Grafana's variables, replaced by plain PromQL before parsing
_GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


# ---- helpers ---------------------------------------------------------------------------------


def code_metrics() -> set[str]:
    """Every series name the recsys code exports (prometheus_client definitions)."""
    names: set[str] = set()
    for folder in METRIC_SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in _METRIC_DEF.findall(path.read_text(encoding="utf-8")):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names.update(base + suffix for suffix in _SUFFIXES[kind])
    return names


def external_metrics() -> set[str]:
    out: set[str] = set(PROMETHEUS_METRICS)
    for name in TRITON_METRICS:
        out.add(name)
    for name in MILVUS_METRICS:  # histograms
        out.update(name + s for s in ("_bucket", "_sum", "_count"))
    return out


def parse(expr: str) -> Any:
    promql = pytest.importorskip("promql_parser", reason="promql-parser not installed (requirements/dev.txt)")
    for var, value in _GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    expr = re.sub(r"\$\{?[A-Za-z_]\w*\}?", "x", expr)  # $namespace, ${service}: inside label values
    return promql.parse(expr)


def selectors(node: Any) -> Iterator[Any]:
    """Every VectorSelector in a parsed expression."""
    promql = pytest.importorskip("promql_parser")
    if isinstance(node, promql.VectorSelector):
        yield node
        return
    if isinstance(node, promql.MatrixSelector):
        yield node.vector_selector
        return
    if isinstance(node, promql.Call):
        for arg in node.args:
            yield from selectors(arg)
        return
    if isinstance(node, promql.BinaryExpr):
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
        return
    for attr in ("expr", "param"):
        child = getattr(node, attr, None)
        if child is not None:
            yield from selectors(child)


def metric_names(expr: str) -> set[str]:
    names = set()
    for sel in selectors(parse(expr)):
        name = sel.name
        if not name:
            for m in sel.matchers.matchers:
                if m.name == "__name__":
                    name = m.value
        assert name, f"a selector without a metric name in {expr!r}"
        names.add(name)
    return names


def rule_files(objs: list[Manifest]) -> list[Manifest]:
    return [o for o in objs if o.get("kind") == "PrometheusRule"]


def rule_exprs(rules: list[Manifest]) -> Iterator[tuple[str, str]]:
    for obj in rules:
        for group in obj["spec"]["groups"]:
            for rule in group["rules"]:
                yield rule.get("alert") or rule.get("record"), str(rule["expr"])


def recorded(rules: list[Manifest]) -> set[str]:
    return {r["record"] for obj in rules for g in obj["spec"]["groups"] for r in g["rules"] if "record" in r}


def dashboards(objs: list[Manifest]) -> dict[str, dict[str, Any]]:
    """file name -> parsed dashboard, from the ConfigMaps the Grafana sidecar picks up."""
    out = {}
    for o in objs:
        if o.get("kind") == "ConfigMap" and o["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            for key, text in o.get("data", {}).items():
                out[key] = json.loads(text)
    return out


def all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_exprs(dash: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for p in all_panels(dash):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield f"panel {p['id']} {p.get('title')!r}", t["expr"]


# ---- the checks (each a function of the rendered objects, run on the real and a broken copy) -


def check_monitors(objs: list[Manifest]) -> list[str]:
    """Every PodMonitor selects pods of the render (Milvus: the chart's) on a named container port."""
    problems = []
    monitors = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "PodMonitor"}
    for name in SCRAPED:
        if f"recsys-{name}" not in monitors:
            problems.append(f"no PodMonitor recsys-{name}")
    pods = [
        (o["spec"]["template"]["metadata"].get("labels", {}), o["spec"]["template"]["spec"])
        for o in objs
        if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")
    ]
    for name, mon in monitors.items():
        spec = mon["spec"]
        want = spec["selector"]["matchLabels"]
        ports = [e.get("port") for e in spec["podMetricsEndpoints"]]
        if not ports or not all(ports):
            problems.append(f"{name}: an endpoint without a port name")
        namespaces = spec.get("namespaceSelector", {}).get("matchNames")
        if namespaces:  # outside the render: only Milvus
            if name != "recsys-milvus" or namespaces != [MILVUS["namespace"]]:
                problems.append(f"{name}: selects namespaces {namespaces}")
            if want != MILVUS["labels"] or ports != [MILVUS["port"]]:
                problems.append(f"{name}: {want} port {ports} are not the Milvus chart's")
            continue
        matched = [tpl for labels, tpl in pods if want.items() <= labels.items()]
        if not matched:
            problems.append(f"{name}: selects no pod ({want})")
        for tpl in matched:
            names = {p.get("name") for c in tpl["containers"] for p in c.get("ports", [])}
            for port in ports:
                if port not in names:
                    problems.append(f"{name}: port {port!r} not among the pod's ports {sorted(names)}")
    return problems


def check_metric_names(objs: list[Manifest], known: set[str]) -> list[str]:
    rules = rule_files(objs)
    known = known | recorded(rules)
    problems = []
    exprs = list(rule_exprs(rules))
    for dname, dash in dashboards(objs).items():
        exprs += [(f"{dname} {where}", e) for where, e in dashboard_exprs(dash)]
    for where, expr in exprs:
        for name in sorted(metric_names(expr) - known):
            problems.append(f"{where}: unknown metric {name}")
    return problems


def check_promql(objs: list[Manifest]) -> list[str]:
    problems = []
    exprs = list(rule_exprs(rule_files(objs)))
    for dname, dash in dashboards(objs).items():
        exprs += [(f"{dname} {where}", e) for where, e in dashboard_exprs(dash)]
        for var in dash.get("templating", {}).get("list", []):
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", str(query or ""))
            if match:
                exprs.append((f"{dname} variable {var['name']}", match.group(1)))
    for where, expr in exprs:
        try:
            parse(expr)
        except ValueError as exc:
            problems.append(f"{where}: {exc}: {expr}")
    return problems


def check_rules(objs: list[Manifest]) -> list[str]:
    problems = []
    rules = rule_files(objs)
    if not rules:
        return ["no PrometheusRule"]
    alerts = {}
    for obj in rules:
        for group in obj["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
                    if not re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))):
                        problems.append(f"{rule['alert']}: no `for:`")
                    if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
                        problems.append(f"{rule['alert']}: no severity")
                    if not rule.get("annotations", {}).get("summary"):
                        problems.append(f"{rule['alert']}: no summary")
    # the three the issue asks for, on the right series
    text = {name: str(r["expr"]) for name, r in alerts.items()}
    expanded = {name: _expand(expr, rules) for name, expr in text.items()}
    if not any("recsys_grpc_requests_total" in e and 'code!~"OK' in e for e in expanded.values()):
        problems.append("no error-ratio alert on recsys_grpc_requests_total")
    if not any(
        "histogram_quantile(0.99" in e and "recsys_grpc_request_duration_seconds_bucket" in e
        for e in expanded.values()
    ):
        problems.append("no p99 alert on recsys_grpc_request_duration_seconds")
    if not any(
        "nv_inference_queue_duration_us" in e and "nv_inference_request_success" in e
        for e in expanded.values()
    ):
        problems.append("no Triton queue-time alert")
    return problems


def _expand(expr: str, rules: list[Manifest]) -> str:
    """``expr`` with the recording rules it reads written out (one level)."""
    for obj in rules:
        for group in obj["spec"]["groups"]:
            for rule in group["rules"]:
                if "record" in rule and rule["record"] in expr:
                    expr += "\n" + str(rule["expr"])
    return expr


def check_dashboards(objs: list[Manifest]) -> list[str]:
    problems = []
    found = dashboards(objs)
    if not found:
        return ["no dashboard ConfigMap (label grafana_dashboard: '1')"]
    for name, dash in found.items():
        ids = [p.get("id") for p in all_panels(dash)]
        if any(not isinstance(i, int) for i in ids):
            problems.append(f"{name}: a panel without an integer id")
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"{name}: duplicate panel ids {dupes}")
        if not dash.get("uid") or not dash.get("title"):
            problems.append(f"{name}: no uid/title")
        for p in all_panels(dash):
            if p.get("type") != "row" and not p.get("targets"):
                problems.append(f"{name}: panel {p.get('id')} has no query")
            if not {"h", "w", "x", "y"} <= set(p.get("gridPos", {})):
                problems.append(f"{name}: panel {p.get('id')} has no gridPos")
    return problems


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod(render: Render) -> list[Manifest]:
    return render(PROD)


@pytest.fixture(scope="module")
def known() -> set[str]:
    return code_metrics() | external_metrics()


def _rename_metric(objs: list[Manifest], old: str, new: str) -> list[Manifest]:
    broken = copy.deepcopy(objs)
    for o in broken:
        if o.get("kind") == "PrometheusRule":
            for g in o["spec"]["groups"]:
                for r in g["rules"]:
                    r["expr"] = str(r["expr"]).replace(old, new)
    return broken


# ---- tests -----------------------------------------------------------------------------------


def test_prod_renders_the_monitoring_objects(prod: list[Manifest]) -> None:
    kinds = [
        (o["kind"], o["metadata"]["name"])
        for o in prod
        if o["apiVersion"].startswith("monitoring.coreos.com/")
    ]
    assert sorted(n for k, n in kinds if k == "PodMonitor") == sorted(f"recsys-{s}" for s in SCRAPED)
    assert [n for k, n in kinds if k == "PrometheusRule"] == ["recsys"]
    for o in prod:
        if o["apiVersion"].startswith("monitoring.coreos.com/"):
            assert o["apiVersion"] == "monitoring.coreos.com/v1"
            assert o["metadata"]["namespace"] == "recsys"
            # kube-prometheus-stack selects monitors and rules by its release label
            assert o["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "grafana-dashboard-recsys-recommend" in {
        o["metadata"]["name"] for o in prod if o["kind"] == "ConfigMap"
    }


def test_monitoring_is_wired_through_components_only() -> None:
    yaml = pytest.importorskip("yaml")
    prod_k = yaml.safe_load((PROD / "kustomization.yaml").read_text())
    assert "../../components/monitoring" in prod_k["components"]
    assert "../../components/tracing" in prod_k["components"]
    dev_k = yaml.safe_load((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())
    assert "../../components/tracing" in dev_k["components"]
    comp = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert comp["kind"] == "Component"


def test_every_monitor_selects_pods_with_that_port(prod: list[Manifest]) -> None:
    assert check_monitors(prod) == []


def test_monitor_check_catches_a_wrong_selector_or_port(prod: list[Manifest]) -> None:
    def broken(mutate: Callable[[Manifest], None], name: str) -> list[str]:
        objs = copy.deepcopy(prod)
        for o in objs:
            if o.get("kind") == "PodMonitor" and o["metadata"]["name"] == name:
                mutate(o)
        return check_monitors(objs)

    def wrong_label(o: Manifest) -> None:
        o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "catalogue"

    def wrong_port(o: Manifest) -> None:
        o["spec"]["podMetricsEndpoints"][0]["port"] = "prometheus"

    def wrong_milvus_ns(o: Manifest) -> None:
        o["spec"]["namespaceSelector"]["matchNames"] = ["vectors"]

    assert any("selects no pod" in p for p in broken(wrong_label, "recsys-catalog"))
    assert any("'prometheus' not among" in p for p in broken(wrong_port, "recsys-web"))
    assert any("selects namespaces" in p for p in broken(wrong_milvus_ns, "recsys-milvus"))
    gone = [
        o for o in prod if not (o.get("kind") == "PodMonitor" and o["metadata"]["name"] == "recsys-triton")
    ]
    assert check_monitors(gone) == ["no PodMonitor recsys-triton"]


def test_every_metric_name_exists(prod: list[Manifest], known: set[str]) -> None:
    # the code's own metrics are found (the scan works) ...
    for name in (
        "recsys_grpc_requests_total",
        "recsys_grpc_request_duration_seconds_bucket",
        "recsys_grpc_requests_in_flight",
        "recsys_gateway_degraded_responses_total",
        "recsys_web_request_seconds_bucket",
    ):
        assert name in known
    # ... and every name a rule or a panel reads is one of them or a listed external one
    assert check_metric_names(prod, known) == []


def test_metric_check_catches_a_renamed_metric(prod: list[Manifest], known: set[str]) -> None:
    # a rule reads a name the code does not export
    broken = _rename_metric(prod, "recsys_grpc_requests_total", "recsys_grpc_calls_total")
    assert any("unknown metric recsys_grpc_calls_total" in p for p in check_metric_names(broken, known))
    # the code renames its metric: the unchanged rules now read a name that is gone
    renamed = {n.replace("recsys_grpc_request_duration", "recsys_grpc_call_duration") for n in known}
    assert any("recsys_grpc_request_duration_seconds_bucket" in p for p in check_metric_names(prod, renamed))
    # a dashboard panel with a Triton metric Triton does not have
    objs = copy.deepcopy(prod)
    for o in objs:
        if o.get("kind") == "ConfigMap" and "recsys-recommend.json" in o.get("data", {}):
            o["data"]["recsys-recommend.json"] = o["data"]["recsys-recommend.json"].replace(
                "nv_inference_exec_count", "nv_inference_batch_count"
            )
    assert any("unknown metric nv_inference_batch_count" in p for p in check_metric_names(objs, known))


def test_every_promql_expression_parses(prod: list[Manifest]) -> None:
    exprs = list(rule_exprs(rule_files(prod)))
    assert len(exprs) >= 8
    assert check_promql(prod) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sum by (namespace, service) (rate(", "sum by (namespace, service) (rate(("),  # unbalanced
        ("histogram_quantile(0.99,", "histogram_quantil(0.99,"),  # unknown function
        ("[5m]", "[5 minutes]"),  # bad range
    ],
)
def test_promql_check_catches_broken_expressions(prod: list[Manifest], old: str, new: str) -> None:
    broken = _rename_metric(prod, old, new)
    assert broken != prod
    assert check_promql(broken), f"{old!r} -> {new!r} went unnoticed"


def test_rules_cover_errors_latency_and_triton_queue(prod: list[Manifest]) -> None:
    assert check_rules(prod) == []


def test_rule_check_catches_a_missing_for_or_alert(prod: list[Manifest]) -> None:
    objs = copy.deepcopy(prod)
    (rules,) = rule_files(objs)
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "RecsysGrpcErrorRatioHigh":
                del rule["for"]
        group["rules"] = [r for r in group["rules"] if not str(r.get("alert", "")).startswith("Triton")]
    problems = check_rules(objs)
    assert "RecsysGrpcErrorRatioHigh: no `for:`" in problems
    assert "no Triton queue-time alert" in problems


def test_dashboard_is_valid_with_unique_panel_ids(prod: list[Manifest]) -> None:
    found = dashboards(prod)
    assert list(found) == ["recsys-recommend.json"]
    # the file in the repo is the one shipped
    assert found["recsys-recommend.json"] == json.loads((DASHBOARDS / "recsys-recommend.json").read_text())
    assert check_dashboards(prod) == []
    dash = found["recsys-recommend.json"]
    exprs = " ".join(e for _, e in dashboard_exprs(dash))
    # per-hop latency per service/method, Triton batch size
    assert "sum by (service, method, le)" in exprs
    assert "nv_inference_count" in exprs and "nv_inference_exec_count" in exprs


def test_dashboard_check_catches_duplicate_ids_and_bad_json(prod: list[Manifest]) -> None:
    objs = copy.deepcopy(prod)
    for o in objs:
        if "recsys-recommend.json" in o.get("data", {}):
            dash = json.loads(o["data"]["recsys-recommend.json"])
            dash["panels"][2]["id"] = dash["panels"][1]["id"]
            o["data"]["recsys-recommend.json"] = json.dumps(dash)
    assert any("duplicate panel ids" in p for p in check_dashboards(objs))
    for o in objs:
        if "recsys-recommend.json" in o.get("data", {}):
            o["data"]["recsys-recommend.json"] = o["data"]["recsys-recommend.json"][:-2]
    with pytest.raises(json.JSONDecodeError):
        check_dashboards(objs)
