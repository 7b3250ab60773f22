"""The packages depend on each other in one direction only (issue #17 item 1).

    recsys (generated API)   recsys_core (server kit)
                 \\             /      \\
                  \\     recsys_data     \\
                   \\        |            \\
        recsys_catalog, recsys_retriever, recsys_embedder, recsys_gateway, recsys_web
                              |
                        recsys_tools (CLI, local stack, load generator)

Every import statement of every module is read (also those inside functions), so a lazy import
that points the wrong way fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: top-level package -> (its source folder, the recsys packages it may import besides itself)
PACKAGES: dict[str, tuple[str, frozenset[str]]] = {
    "recsys": ("libs/api/src/recsys", frozenset()),
    "recsys_core": ("libs/core/src/recsys_core", frozenset()),
    "recsys_data": ("libs/data/src/recsys_data", frozenset({"recsys_core"})),
    "recsys_catalog": (
        "services/catalog/src/recsys_catalog",
        frozenset({"recsys", "recsys_core", "recsys_data"}),
    ),
    "recsys_retriever": ("services/retriever/src/recsys_retriever", frozenset({"recsys", "recsys_core"})),
    "recsys_embedder": (
        "services/embedder/src/recsys_embedder",
        frozenset({"recsys", "recsys_core", "recsys_data"}),
    ),
    "recsys_gateway": ("gateway/src/recsys_gateway", frozenset({"recsys", "recsys_core"})),
    "recsys_web": ("web/src/recsys_web", frozenset({"recsys", "recsys_core"})),
    # the tools may use everything (they start and drive the services)
    "recsys_tools": (
        "libs/tools/src/recsys_tools",
        frozenset(
            {
                "recsys",
                "recsys_core",
                "recsys_data",
                "recsys_catalog",
                "recsys_retriever",
                "recsys_embedder",
                "recsys_gateway",
                "recsys_web",
            }
        ),
    ),
}


def imported_packages(folder: Path) -> dict[str, list[str]]:
    """Top-level recsys packages imported anywhere under ``folder`` -> the files importing them."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "recsys" or top.startswith("recsys_"):
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_point_one_way(package: str) -> None:
    folder, allowed = PACKAGES[package]
    assert (ROOT / folder).is_dir(), f"{folder} is missing"
    wrong = {
        name: files
        for name, files in imported_packages(ROOT / folder).items()
        if name != package and name not in allowed
    }
    assert not wrong, f"{package} imports packages above it or beside it: {wrong}"


def test_every_recsys_package_is_placed() -> None:
    """A new top-level package must be given its place in the table above."""
    tops = {
        p.name
        for base in ("libs", "services", ".")
        for p in (ROOT / base).glob("*/src/*")
        if p.is_dir() and (p / "__init__.py").exists()
    }
    assert tops == set(PACKAGES), f"unplaced packages: {sorted(tops - set(PACKAGES))}"


def test_kit_pulls_no_data_or_ml_dependencies() -> None:
    """The kit ships in every image, so it depends on gRPC/pydantic/prometheus only."""
    import tomllib

    deps = tomllib.loads((ROOT / "libs/core/pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in deps}
    assert not names & {"numpy", "torch", "dgl", "tqdm", "asyncpg", "pymilvus", "recsys-tools"}, names
