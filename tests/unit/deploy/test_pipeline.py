"""Static checks of the release pipeline as Kubernetes Jobs (issue #18; deploy/k8s/components/
pipeline and pipeline-triton; deploy/README.md, "Release pipeline (Jobs)").

Offline, as the other deploy checks: the overlays are rendered with `kubectl kustomize`, and each
Job's command is checked against what would run it: the module exists in a package its image's
Dockerfile installs (with the extras it needs), and the module's own ``__main__`` argparse accepts
the arguments (the parser is called; the command never runs). Each check is a function returning
its errors, and a test breaks the manifests in memory to see each one fail.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"

Manifest = dict[str, Any]

# The pipeline's objects (kind, name) in every overlay, and those only where Triton serves.
PIPELINE = {
    ("Job", "catalog-load"),
    ("Job", "train"),
    ("Job", "train-gpu"),
    ("Job", "stack-load"),
    ("CronJob", "nightly-retrain"),
}
TRITON_ONLY = {("Job", "export")}
OVERLAY_TRITON = {"dev": False, "prod": True}

# The image (as the manifests name it, before an overlay maps it to a registry) -> its Dockerfile.
IMAGES = {
    "recsys/catalog": "services/catalog/Dockerfile",
    "recsys/retriever": "services/retriever/Dockerfile",
    "recsys/embedder": "services/embedder/Dockerfile",
    "recsys/embedder-cuda": "services/embedder/Dockerfile.cuda",
    "recsys/embedder-train": "services/embedder/Dockerfile.train",
    "recsys/embedder-train-cuda": "services/embedder/Dockerfile.train",
}
# Top-level package -> the folder (pip install ./<folder>) that provides it.
PACKAGES = {
    "recsys_data": "libs/data",
    "recsys_core": "libs/core",
    "recsys_catalog": "services/catalog",
    "recsys_retriever": "services/retriever",
    "recsys_embedder": "services/embedder",
}
# (module, first argument) -> the extras of its package it needs beyond the dependencies:
# training imports DGL (`train`); torch's ONNX exporter imports onnx (`export`).
EXTRAS = {
    ("recsys_embedder.training", None): {"train"},
    ("recsys_embedder", "export"): {"export"},
}
# The parser's top-level command each module's __main__ puts in front of its arguments, and the
# namespace attribute naming the subcommand (None: the module has one command).
SUBCOMMAND_DEST = {
    "recsys_catalog": "catalog_command",
    "recsys_embedder": "embedder_command",
    "recsys_data": "data_command",
    "recsys_embedder.training": None,
}


# ---- helpers ---------------------------------------------------------------------------------


def find(objs: list[Manifest], kind: str, name: str) -> Manifest:
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"{kind}/{name} is not rendered")


def pod_spec(obj: Manifest) -> Manifest:
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def pipeline_objects(objs: list[Manifest]) -> list[Manifest]:
    """The Jobs and CronJobs of the release pipeline (the catalog migration Job too: it runs a
    module of an image the same way)."""
    return [o for o in objs if o["kind"] in ("Job", "CronJob")]


def image_name(image: str) -> str:
    """registry.example.com/recsys/catalog:0.1.0@sha256:... -> recsys/catalog."""
    m = re.search(r"(recsys/[a-z0-9-]+)(?=[:@]|$)", image)
    assert m, f"not a recsys image: {image}"
    return m.group(1)


def where(obj: Manifest, c: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"


def env_values(objs: list[Manifest], c: Manifest) -> dict[str, str]:
    """A container's `env` (literal values and ConfigMap keys) as Kubernetes resolves it."""
    env: dict[str, str] = {}
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == ref["name"]]
            assert cms, f"ConfigMap {ref['name']} is not rendered"
            assert ref["key"] in cms[0].get("data", {}), f"ConfigMap {ref['name']} has no {ref['key']}"
            env[item["name"]] = cms[0]["data"][ref["key"]]
    return env


def expand(objs: list[Manifest], c: Manifest) -> list[str]:
    """command + args with $(VAR) references replaced as the kubelet does; an unknown one stays."""
    env = env_values(objs, c)
    return [
        re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
        for a in [*c.get("command", []), *c.get("args", [])]
    ]


def python_module(argv: list[str]) -> tuple[str, list[str]] | None:
    if len(argv) >= 3 and argv[0] == "python" and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


def dockerfile_installs(rel: str) -> dict[str, set[str]]:
    """Package folder -> extras, from the `pip install ./<folder>[extras]` lines of a Dockerfile."""
    text = re.sub(r"\\\n", " ", (ROOT / rel).read_text())
    installs: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#") or "pip install" not in line:
            continue
        for m in re.finditer(r"\./((?:libs|services)/[a-z]+|gateway|web)(?:\[([a-z0-9_,]+)\])?", line):
            installs.setdefault(m.group(1), set()).update(filter(None, (m.group(2) or "").split(",")))
    return installs


class _Parsed(Exception):
    def __init__(self, ns: argparse.Namespace) -> None:
        super().__init__("parsed")
        self.ns = ns


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """A Job's flags must be the real ones, not prefixes argparse would also accept."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)


@contextlib.contextmanager
def intercept_parse() -> Iterator[None]:
    """Stop a __main__ right after its argparse accepted the arguments (the command never runs)."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        _no_abbreviations(self)
        raise _Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_args  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]


def parse_with_main(module: str, args: list[str]) -> tuple[argparse.Namespace | None, str]:
    """Run ``python -m module args`` up to its argparse: (namespace, "") or (None, the error)."""
    if not args or args == ["serve"]:
        return None, "no subcommand: the module would serve, not run a step"
    main = importlib.import_module(f"{module}.__main__").main
    err = io.StringIO()
    with intercept_parse(), contextlib.redirect_stderr(err):
        try:
            main(args)
        except _Parsed as parsed:
            return parsed.ns, ""
        except SystemExit as exc:
            return None, f"argparse rejected it (exit {exc.code}): {err.getvalue().strip()}"
    return None, "the module returned without parsing its arguments"


def publish_is_available() -> bool:
    """``python -m recsys_embedder publish`` (recsys_embedder.publish) is another change; until it
    is in, the publish commands cannot be parsed here."""
    return importlib.util.find_spec("recsys_embedder.publish") is not None


# ---- the checks: each returns its errors -----------------------------------------------------


def image_errors(objs: list[Manifest]) -> list[str]:
    """Every Job/CronJob container runs `python -m MODULE` and its image installs MODULE's
    package (with the extras the command needs), whose source has that __main__."""
    errors: list[str] = []
    for obj in pipeline_objects(objs):
        for c in containers(pod_spec(obj)):
            argv = expand(objs, c)
            pm = python_module(argv)
            if pm is None:
                errors.append(f"{where(obj, c)}: {argv[:3]} is not `python -m MODULE`")
                continue
            module, args = pm
            image = image_name(c["image"])
            if image not in IMAGES:
                errors.append(f"{where(obj, c)}: image {image} has no known Dockerfile")
                continue
            top = module.split(".")[0]
            folder = PACKAGES.get(top)
            installs = dockerfile_installs(IMAGES[image])
            if folder is None or folder not in installs:
                errors.append(f"{where(obj, c)}: {image} ({IMAGES[image]}) does not install {module}")
                continue
            main = ROOT / folder / "src" / Path(*module.split(".")) / "__main__.py"
            if not main.is_file():
                errors.append(f"{where(obj, c)}: {main.relative_to(ROOT)} does not exist")
            needed = EXTRAS.get((module, args[0] if args else None), set()) | EXTRAS.get(
                (module, None), set()
            )
            if needed - installs[folder]:
                errors.append(
                    f"{where(obj, c)}: `python -m {module}` needs {folder}[{','.join(sorted(needed))}], "
                    f"{IMAGES[image]} installs [{','.join(sorted(installs[folder]))}]"
                )
    return errors


def parse_errors(objs: list[Manifest], *, include_publish: bool) -> list[str]:
    """Every Job/CronJob command is accepted by its module's argparse, $(VAR)s resolved."""
    errors: list[str] = []
    for obj in pipeline_objects(objs):
        for c in containers(pod_spec(obj)):
            argv = expand(objs, c)
            if unresolved := [a for a in argv if "$(" in a]:
                errors.append(f"{where(obj, c)}: unresolved {unresolved}")
                continue
            pm = python_module(argv)
            if pm is None:
                errors.append(f"{where(obj, c)}: not `python -m MODULE`")
                continue
            module, args = pm
            if module == "recsys_embedder" and args[:1] == ["publish"] and not include_publish:
                continue
            ns, error = parse_with_main(module, args)
            if ns is None:
                errors.append(f"{where(obj, c)}: python -m {module} {' '.join(args)}: {error}")
                continue
            dest = SUBCOMMAND_DEST.get(module)
            if getattr(ns, "func", None) is None or (dest and getattr(ns, dest, None) != args[0]):
                errors.append(f"{where(obj, c)}: python -m {module} {args[:1]} selects no subcommand")
    return errors


def mounts(c: Manifest) -> dict[str, Manifest]:
    return {m["mountPath"]: m for m in c.get("volumeMounts", [])}


def claim_of(spec: Manifest, c: Manifest, path: str) -> tuple[str | None, bool]:
    """(the PVC claim mounted at or above ``path``, whether writable)."""
    best: Manifest | None = None
    for mount_path, m in mounts(c).items():
        if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
            if best is None or len(mount_path) > len(best["mountPath"]):
                best = m
    if best is None:
        return None, False
    vol = next((v for v in spec.get("volumes", []) if v["name"] == best["name"]), {})
    pvc = vol.get("persistentVolumeClaim")
    writable = not best.get("readOnly") and not (pvc or {}).get("readOnly")
    return (pvc["claimName"] if pvc else None), writable


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def volume_errors(objs: list[Manifest]) -> list[str]:
    """Mounts name declared volumes; claims are rendered; the paths in the commands lie on the
    right volume (writable where written); the embedder and Triton read what the Jobs write."""
    errors: list[str] = []
    claims = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PersistentVolumeClaim"}
    embedder = find(objs, "Deployment", "embedder")
    e_spec = embedder["spec"]["template"]["spec"]
    (e_c,) = e_spec["containers"]
    e_env = {
        k: v
        for o in objs
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("embedder-config")
        for k, v in o.get("data", {}).items()
    }
    artifact_dir = e_env.get("RECSYS_EMBEDDER_ARTIFACT_DIR", "")
    served_claim, _ = claim_of(e_spec, e_c, artifact_dir)
    if served_claim is None:
        errors.append(f"embedder: RECSYS_EMBEDDER_ARTIFACT_DIR={artifact_dir!r} is on no PVC")
    for name in ("artifacts",):
        sc = claims.get(name, {}).get("spec", {}).get("storageClassName")
        if not sc:
            errors.append(f"PVC {name}: no explicit storageClassName")
    for obj in pipeline_objects(objs):
        spec = pod_spec(obj)
        declared = {v["name"] for v in spec.get("volumes", [])}
        for v in spec.get("volumes", []):
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim is not None and claim not in claims:
                errors.append(f"{obj['kind']}/{obj['metadata']['name']}: claim {claim} is not rendered")
        for c in containers(spec):
            for m in c.get("volumeMounts", []):
                if m["name"] not in declared:
                    errors.append(f"{where(obj, c)}: mounts {m['name']}, no such volume")
            argv = expand(objs, c)
            pm = python_module(argv)
            if pm is None:
                continue
            module, args = pm
            env = env_values(objs, c)
            if "RECSYS_DATA_DIR" in env and env["RECSYS_DATA_DIR"] not in mounts(c):
                errors.append(f"{where(obj, c)}: RECSYS_DATA_DIR={env['RECSYS_DATA_DIR']} is not a mount")
            # (path, the claim it must be on, must be writable)
            wants: list[tuple[str | None, str | None, bool]] = []
            if module == "recsys_data" and args[:1] == ["fetch"]:
                dest = flag(args, "--dest")
                if dest != env.get("RECSYS_DATA_DIR") or dest not in mounts(c):
                    errors.append(f"{where(obj, c)}: fetches to {dest}, not the mounted RECSYS_DATA_DIR")
                elif mounts(c)[dest].get("readOnly"):
                    errors.append(f"{where(obj, c)}: fetches to a read-only mount")
            elif module == "recsys_embedder.training":
                wants.append((flag(args, "--out"), served_claim, True))
            elif module == "recsys_embedder" and args[:1] == ["export"]:
                wants.append((flag(args, "--artifact-dir"), served_claim, False))
                wants.append((flag(args, "--out"), triton_claim(objs), True))
                model = e_env.get("RECSYS_EMBEDDER_TRITON_MODEL_NAME")
                if flag(args, "--name") != model:
                    errors.append(
                        f"{where(obj, c)}: exports {flag(args, '--name')}, the embedder asks {model}"
                    )
            elif module == "recsys_embedder" and args[:1] == ["publish"]:
                wants.append((flag(args, "--artifact"), served_claim, False))
            for path, claim, write in wants:
                got, writable = claim_of(spec, c, path or "")
                if claim is None or got != claim:
                    errors.append(f"{where(obj, c)}: {path} is on claim {got}, expected {claim}")
                elif write and not writable:
                    errors.append(f"{where(obj, c)}: writes {path} on a read-only mount")
    # Data sets: the fetch init container and the step after it share the pod's data volume.
    for obj in pipeline_objects(objs):
        spec = pod_spec(obj)
        fetchers = [c for c in spec.get("initContainers", []) if c["name"] == "fetch"]
        for f in fetchers:
            dest_vol = mounts(f).get(flag(expand(objs, f), "--dest") or "", {}).get("name")
            for c in containers(spec):
                env = env_values(objs, c)
                if c is not f and "RECSYS_DATA_DIR" in env:
                    if mounts(c).get(env["RECSYS_DATA_DIR"], {}).get("name") != dest_vol:
                        errors.append(f"{where(obj, c)}: reads data sets from another volume than fetch")
    return errors


def triton_claim(objs: list[Manifest]) -> str | None:
    tritons = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "triton"]
    if not tritons:
        return None
    spec = tritons[0]["spec"]["template"]["spec"]
    args = spec["containers"][0].get("args", [])
    repo = next((a.split("=", 1)[1] for a in args if a.startswith("--model-repository=")), "")
    claim, _ = claim_of(spec, spec["containers"][0], repo)
    return claim


def gpu_errors(objs: list[Manifest]) -> list[str]:
    """train-gpu: train's command with --device cuda, a GPU, scheduled as Triton is."""
    errors: list[str] = []
    import yaml

    triton = yaml.safe_load((K8S / "components" / "triton" / "deployment.yaml").read_text())
    t_spec = triton["spec"]["template"]["spec"]
    cpu, gpu = find(objs, "Job", "train"), find(objs, "Job", "train-gpu")
    (c_cpu,) = pod_spec(cpu)["containers"]
    (c_gpu,) = pod_spec(gpu)["containers"]
    for section in ("requests", "limits"):
        if str(c_gpu["resources"].get(section, {}).get("nvidia.com/gpu")) != "1":
            errors.append(f"train-gpu: {section} nvidia.com/gpu is not 1")
        if "nvidia.com/gpu" in c_cpu["resources"].get(section, {}):
            errors.append(f"train: {section} asks for a GPU")
    for key in ("nodeSelector", "tolerations"):
        if pod_spec(gpu).get(key) != t_spec.get(key):
            errors.append(
                f"train-gpu: {key} {pod_spec(gpu).get(key)} differs from Triton's {t_spec.get(key)}"
            )
    a_cpu, a_gpu = expand(objs, c_cpu), expand(objs, c_gpu)
    if flag(a_gpu, "--device") != "cuda" or flag(a_cpu, "--device") != "cpu":
        errors.append(f"devices: train {flag(a_cpu, '--device')}, train-gpu {flag(a_gpu, '--device')}")
    strip = lambda a: [x for i, x in enumerate(a) if x != "--device" and (i == 0 or a[i - 1] != "--device")]  # noqa: E731
    if strip(a_cpu) != strip(a_gpu):
        errors.append(f"train-gpu runs another command than train: {a_gpu} vs {a_cpu}")
    if image_name(c_gpu["image"]) != "recsys/embedder-train-cuda":
        errors.append(f"train-gpu: image {c_gpu['image']} is not the CUDA train image")
    return errors


def cronjob_errors(objs: list[Manifest], triton: bool) -> list[str]:
    """nightly-retrain: suspended, never two at once, train -> (export) -> publish in one pod,
    each step the command of its Job."""
    errors: list[str] = []
    cron = find(objs, "CronJob", "nightly-retrain")
    if cron["spec"].get("suspend") is not True:
        errors.append("nightly-retrain is not suspended by default")
    if cron["spec"].get("concurrencyPolicy") != "Forbid":
        errors.append("nightly-retrain may run twice at once")
    spec = pod_spec(cron)
    steps = [c["name"] for c in spec.get("initContainers", [])] + [c["name"] for c in spec["containers"]]
    want = ["fetch", "train", *(["export"] if triton else []), "publish"]
    if steps != want:
        errors.append(f"nightly-retrain steps {steps}, expected {want}")
    if [c["name"] for c in spec["containers"]] != ["publish"]:
        errors.append("nightly-retrain: publish must be the one main container (after every init step)")
    jobs = {"fetch": ("train", "fetch"), "train": ("train", "train"), "publish": ("stack-load", "load")}
    if triton:
        jobs["export"] = ("export", "export")
    by_name = {c["name"]: c for c in containers(spec)}
    for step, (job, container) in jobs.items():
        if step not in by_name:
            continue
        job_c = next(c for c in containers(pod_spec(find(objs, "Job", job))) if c["name"] == container)
        if expand(objs, by_name[step]) != expand(objs, job_c) or by_name[step]["image"] != job_c["image"]:
            errors.append(f"nightly-retrain step {step} differs from Job/{job}'s {container}")
    return errors


def suspension_errors(objs: list[Manifest]) -> list[str]:
    errors = []
    for kind, name in PIPELINE | TRITON_ONLY:
        for o in objs:
            if (o["kind"], o["metadata"]["name"]) == (kind, name) and o["spec"].get("suspend") is not True:
                errors.append(f"{kind}/{name} is not created suspended (it would run out of order)")
            if (o["kind"], o["metadata"]["name"]) == (kind, name) and kind == "Job":
                if o["spec"].get("ttlSecondsAfterFinished") is None:
                    errors.append(f"{kind}/{name} is never cleaned up")
    return errors


# ---- tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overlays(rendered: dict[str, list[Manifest]]) -> dict[str, list[Manifest]]:
    missing = set(OVERLAY_TRITON) - set(rendered)
    assert not missing, f"overlays {missing} are gone"
    return rendered


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_pipeline_renders_in_the_overlay(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    objs = overlays[overlay]
    have = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert PIPELINE <= have, f"missing {PIPELINE - have}"
    if OVERLAY_TRITON[overlay]:
        assert TRITON_ONLY <= have
    else:
        assert not TRITON_ONLY & have, "export without Triton: nothing would read the model"
    kustomization = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
    assert "../../components/pipeline\n" in kustomization


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_every_command_is_a_module_of_its_image(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    errors = image_errors(overlays[overlay])
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_every_command_parses(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    errors = parse_errors(overlays[overlay], include_publish=False)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_publish_commands_parse(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    if not publish_is_available():
        pytest.skip("recsys_embedder.publish is not in yet (python -m recsys_embedder publish)")
    errors = parse_errors(overlays[overlay], include_publish=True)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_volumes_and_claims_are_consistent(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    errors = volume_errors(overlays[overlay])
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_gpu_variant_requests_a_gpu(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    errors = gpu_errors(overlays[overlay])
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_cronjob_is_suspended_and_runs_the_steps_in_order(
    overlays: dict[str, list[Manifest]], overlay: str
) -> None:
    errors = cronjob_errors(overlays[overlay], OVERLAY_TRITON[overlay])
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", sorted(OVERLAY_TRITON))
def test_jobs_are_suspended_and_cleaned_up(overlays: dict[str, list[Manifest]], overlay: str) -> None:
    errors = suspension_errors(overlays[overlay])
    assert not errors, "\n".join(errors)


def test_catalog_and_training_use_one_data_set(overlays: dict[str, list[Manifest]]) -> None:
    """The artifact's movie ids must be the catalog's: one setting names the data set for both."""
    for objs in overlays.values():
        load = expand(objs, pod_spec(find(objs, "Job", "catalog-load"))["containers"][0])
        train = expand(objs, pod_spec(find(objs, "Job", "train"))["containers"][0])
        assert load[3:5] == ["load", flag(train, "--data")]
        raw = pod_spec(find(objs, "Job", "train"))["containers"][0]["command"]
        assert flag(raw, "--data") == "$(RECSYS_PIPELINE_DATASET)"


# ---- each check fails when the manifests are broken --------------------------------------------


def _container(objs: list[Manifest], kind: str, name: str, container: str) -> Manifest:
    return next(c for c in containers(pod_spec(find(objs, kind, name))) if c["name"] == container)


def _set_flag(c: Manifest, name: str, value: str | None = None, rename: str | None = None) -> None:
    cmd = c["command"]
    i = cmd.index(name)
    if rename is not None:
        cmd[i] = rename
    if value is not None:
        cmd[i + 1] = value


BREAKAGES: dict[str, tuple[Callable[[list[Manifest]], None], Callable[[list[Manifest]], list[str]]]] = {
    # a misspelt flag, and a prefix of a real one (argparse would accept it by default)
    "train-flag-typo": (
        lambda o: _set_flag(_container(o, "Job", "train", "train"), "--threads", rename="--threadz"),
        lambda o: parse_errors(o, include_publish=False),
    ),
    "train-flag-abbreviated": (
        lambda o: _set_flag(_container(o, "Job", "train", "train"), "--threads", rename="--thread"),
        lambda o: parse_errors(o, include_publish=False),
    ),
    "catalog-unknown-subcommand": (
        lambda o: _container(o, "Job", "catalog-load", "load")["command"].__setitem__(3, "import"),
        lambda o: parse_errors(o, include_publish=False),
    ),
    "fetch-unknown-data-set": (
        lambda o: next(
            c for c in o if c["kind"] == "ConfigMap" and c["metadata"]["name"] == "pipeline-config"
        )["data"].__setitem__("RECSYS_PIPELINE_DATASET", "ml-42"),
        lambda o: parse_errors(o, include_publish=False),
    ),
    "job-serves-instead": (
        lambda o: _container(o, "Job", "catalog-migrate", "migrate")["command"].__setitem__(3, "serve"),
        lambda o: parse_errors(o, include_publish=False),
    ),
    "train-in-the-catalog-image": (
        lambda o: _container(o, "Job", "train", "train").__setitem__(
            "image", "localhost:5000/recsys/catalog:dev"
        ),
        image_errors,
    ),
    "train-in-the-serving-image": (
        lambda o: _container(o, "Job", "train", "train").__setitem__(
            "image", "localhost:5000/recsys/embedder:dev"
        ),
        image_errors,
    ),
    "train-writes-elsewhere": (
        lambda o: _set_flag(_container(o, "Job", "train", "train"), "--out", value="/tmp/artifacts"),
        volume_errors,
    ),
    "train-writes-read-only": (
        lambda o: next(
            m for m in _container(o, "Job", "train", "train")["volumeMounts"] if m["name"] == "artifacts"
        ).__setitem__("readOnly", True),
        volume_errors,
    ),
    "mount-without-volume": (
        lambda o: pod_spec(find(o, "Job", "train"))["volumes"].pop(),
        volume_errors,
    ),
    "publish-reads-elsewhere": (
        lambda o: _set_flag(_container(o, "Job", "stack-load", "load"), "--artifact", value="/tmp/latest"),
        volume_errors,
    ),
    "no-storage-class": (
        lambda o: find(o, "PersistentVolumeClaim", "artifacts")["spec"].pop("storageClassName"),
        volume_errors,
    ),
    "gpu-variant-without-gpu": (
        lambda o: _container(o, "Job", "train-gpu", "train")["resources"]["limits"].pop("nvidia.com/gpu"),
        gpu_errors,
    ),
    "gpu-variant-on-cpu": (
        lambda o: _set_flag(_container(o, "Job", "train-gpu", "train"), "--device", value="cpu"),
        gpu_errors,
    ),
    "gpu-variant-anywhere": (
        lambda o: pod_spec(find(o, "Job", "train-gpu")).pop("tolerations"),
        gpu_errors,
    ),
    "cronjob-on": (
        lambda o: find(o, "CronJob", "nightly-retrain")["spec"].__setitem__("suspend", False),
        lambda o: cronjob_errors(o, False),
    ),
    "cronjob-publishes-first": (
        lambda o: pod_spec(find(o, "CronJob", "nightly-retrain"))["initContainers"].reverse(),
        lambda o: cronjob_errors(o, False),
    ),
    "cronjob-trains-differently": (
        lambda o: (
            _set_flag(_container(o, "CronJob", "nightly-retrain", "train"), "--epochs", value="1")
            if "--epochs" in _container(o, "CronJob", "nightly-retrain", "train")["command"]
            else _container(o, "CronJob", "nightly-retrain", "train")["command"].extend(["--epochs", "1"])
        ),
        lambda o: cronjob_errors(o, False),
    ),
    "job-runs-on-apply": (
        lambda o: find(o, "Job", "train").__setitem__(
            "spec", {**find(o, "Job", "train")["spec"], "suspend": False}
        ),
        suspension_errors,
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_check_fails_when_broken(overlays: dict[str, list[Manifest]], breakage: str) -> None:
    breaker, check = BREAKAGES[breakage]
    objs = copy.deepcopy(overlays["dev"])
    assert not check(objs), "the check fails on the unbroken manifests"
    breaker(objs)
    assert check(objs), f"{breakage}: the check did not notice"


def test_export_checks_fail_when_broken(overlays: dict[str, list[Manifest]]) -> None:
    """prod's Triton step: the model name, the repository claim, the image with onnx."""
    for breaker, check in (
        (
            lambda o: _set_flag(_container(o, "Job", "export", "export"), "--name", value="other"),
            volume_errors,
        ),
        (
            lambda o: _set_flag(_container(o, "Job", "export", "export"), "--out", value="/tmp/m"),
            volume_errors,
        ),
        (
            lambda o: _container(o, "Job", "export", "export").__setitem__(
                "image", "registry.example.com/recsys/embedder:0.1.0"
            ),
            image_errors,
        ),
        (lambda o: _set_flag(_container(o, "Job", "export", "export"), "--kind", value="tensorrt"), None),
        (
            lambda o: pod_spec(find(o, "CronJob", "nightly-retrain"))["initContainers"].pop(),
            lambda o: cronjob_errors(o, True),
        ),
    ):
        objs = copy.deepcopy(overlays["prod"])
        chk = check or (lambda o: parse_errors(o, include_publish=False))
        assert not chk(objs)
        breaker(objs)
        assert chk(objs)
