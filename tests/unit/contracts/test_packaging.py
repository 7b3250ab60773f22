"""Each service installs with only its own dependencies: no torch or DGL outside the embedder."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {
    "libs/api": "recsys-api",
    "libs/core": "recsys-core",
    "libs/data": "recsys-data",
    "libs/tools": "recsys-tools",
    "services/catalog": "recsys-catalog",
    "services/retriever": "recsys-retriever",
    "services/embedder": "recsys-embedder",
    "gateway": "recsys-gateway",
    "web": "recsys-web",
}
HEAVY = {"torch", "dgl", "tritonclient", "onnx", "onnxruntime", "nvidia-pytriton"}


def _deps(path: str, extras: bool = False) -> set[str]:
    project = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]
    reqs = list(project.get("dependencies", []))
    if extras:
        for group in project.get("optional-dependencies", {}).values():
            reqs += group
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in reqs}


@pytest.mark.parametrize("path", sorted(PACKAGES))
def test_package_names(path: str) -> None:
    project = tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]
    assert project["name"] == PACKAGES[path]


@pytest.mark.parametrize("path", sorted(set(PACKAGES) - {"services/embedder"}))
def test_no_ml_stack_outside_the_embedder(path: str) -> None:
    assert not _deps(path, extras=True) & HEAVY


def test_dgl_only_for_training() -> None:
    assert "dgl" not in _deps("services/embedder")
    assert "torch" in _deps("services/embedder")
    assert "dgl" in _deps("services/embedder", extras=True)


def test_every_pin_is_in_the_constraints_file() -> None:
    pinned = {
        re.split(r"[=<>]", line, maxsplit=1)[0].strip().lower().replace("_", "-")
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for path in PACKAGES:
        for dep in _deps(path, extras=True):
            if dep.startswith("recsys-"):
                continue
            assert dep.replace("_", "-") in pinned, (
                f"{path}: {dep} is not pinned in requirements/constraints.txt"
            )
