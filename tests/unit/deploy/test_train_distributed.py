"""The multi-node training Job (issue #19, deploy/k8s/components/train-distributed): torchrun's
rendezvous wiring is consistent (a check function returning errors, and breakages it catches)."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
Manifest = dict[str, Any]


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def rendezvous_errors(objs: list[Manifest]) -> list[str]:
    job = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["name"] == "train-ddp")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    svcs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
    c = pod["containers"][0]
    argv = [*c.get("command", []), *c.get("args", [])]
    errors: list[str] = []
    if spec.get("completionMode") != "Indexed":
        errors.append("not an Indexed Job")
    if not spec.get("suspend"):
        errors.append("not suspended")
    if argv[:3] != ["python", "-m", "torch.distributed.run"]:
        errors.append(f"not torchrun: {argv[:3]}")
    if not (spec.get("parallelism") == spec.get("completions") == int(_flag(argv, "--nnodes") or -1)):
        errors.append("parallelism, completions and --nnodes differ")
    sub = pod.get("subdomain")
    svc = svcs.get(sub or "")
    if svc is None or svc["spec"].get("clusterIP") != "None":
        errors.append(f"subdomain {sub!r} is not a headless Service")
    elif not svc["spec"].get("publishNotReadyAddresses"):
        errors.append("the Service does not publish not-ready pods (rendezvous precedes readiness)")
    else:
        labels = job["spec"]["template"]["metadata"]["labels"]
        if any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
            errors.append("the Service does not select the Job's pods")
        if int(_flag(argv, "--master_port") or -1) not in [p["port"] for p in svc["spec"]["ports"]]:
            errors.append("--master_port is not a port of the Service")
    if _flag(argv, "--master_addr") != f"{job['metadata']['name']}-0.{sub}":
        errors.append(f"--master_addr {_flag(argv, '--master_addr')} is not pod 0 of the Job")
    env = {e["name"]: e for e in c.get("env", [])}
    ref = env.get("JOB_COMPLETION_INDEX", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if _flag(argv, "--node_rank") != "$(JOB_COMPLETION_INDEX)" or (
        ref != "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    ):
        errors.append("--node_rank is not the pod's completion index")
    if argv[argv.index("-m", 3) + 1 : argv.index("-m", 3) + 2] != ["recsys_embedder.training"]:
        errors.append("torchrun does not run recsys_embedder.training")
    return errors


def _render(render: Callable[[Path], list[Manifest]], tmp: Path) -> list[Manifest]:
    rel = {n: os.path.relpath(K8S / p, tmp) for n, p in
           {"base": "base", "pipe": "components/pipeline", "ddp": "components/train-distributed"}.items()}  # fmt: skip
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: recsys\n"
        f"resources: [{rel['base']}]\ncomponents: [{rel['pipe']}, {rel['ddp']}]\n"
    )
    return render(tmp)


def test_rendezvous_is_wired(render: Callable[[Path], list[Manifest]], tmp_path: Path) -> None:
    assert rendezvous_errors(_render(render, tmp_path)) == []


def test_the_command_parses(render: Callable[[Path], list[Manifest]], tmp_path: Path) -> None:
    from recsys_embedder.training.__main__ import build_parser

    job = next(
        o for o in _render(render, tmp_path) if o["metadata"]["name"] == "train-ddp" and o["kind"] == "Job"
    )
    argv = job["spec"]["template"]["spec"]["containers"][0]["command"]
    args = [a.replace("$(RECSYS_PIPELINE_DATASET)", "ml-100k") for a in argv[argv.index("-m", 3) + 2 :]]
    ns = build_parser().parse_args(["train", *args])
    assert ns.out == "/artifacts" and ns.func is not None


BREAKAGES: dict[str, Callable[[Manifest, Manifest], None]] = {
    "master_addr": lambda j, s: j["spec"]["template"]["spec"]["containers"][0]["command"].__setitem__(
        10, "train-ddp"
    ),
    "nnodes": lambda j, s: j["spec"].__setitem__("parallelism", 3),
    "subdomain": lambda j, s: j["spec"]["template"]["spec"].__setitem__("subdomain", "train"),
    "not_headless": lambda j, s: s["spec"].__setitem__("clusterIP", "10.0.0.1"),
    "node_rank": lambda j, s: j["spec"]["template"]["spec"]["containers"][0]["command"].__setitem__(8, "0"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_breakage_is_caught(
    render: Callable[[Path], list[Manifest]], tmp_path: Path, breakage: str
) -> None:
    objs = copy.deepcopy(_render(render, tmp_path))
    job = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["name"] == "train-ddp")
    svc = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "train-ddp")
    BREAKAGES[breakage](job, svc)
    assert rendezvous_errors(objs)
