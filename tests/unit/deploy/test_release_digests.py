"""Release images by digest (issue #18 "Pinning"): the CI step that writes the pushed digests into
the prod overlay (recsys_tools.release), the check after it, and the release workflow that runs
both over the same image list as the overlay."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from recsys_tools import release

from .conftest import K8S, ROOT, Manifest

PROD = K8S / "overlays" / "prod"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _prod_images() -> list[str]:
    text = (PROD / "kustomization.yaml").read_text(encoding="utf-8")
    return [e.name for e in release._entries(text.splitlines(keepends=True))]


def _recsys_images() -> list[str]:
    return [n.removeprefix("recsys/") for n in _prod_images() if n.startswith("recsys/")]


def _containers(objs: list[Manifest]) -> Iterator[tuple[str, str]]:
    for obj in objs:
        spec = obj.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec") or spec.get(
            "template", {}
        ).get("spec")
        if not pod:
            continue
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            yield f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}", c["image"]


@pytest.fixture
def pinned_prod(tmp_path: Path) -> Path:
    """A copy of deploy/k8s with the prod overlay pinned by the release step's CLI."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    args = ["pin", str(copy / "overlays" / "prod"), "--tag", "0.2.0"]
    for name in _recsys_images():
        args += ["--image", f"{name}={DIGEST}"]
    assert release.main(args) == 0
    return copy / "overlays" / "prod"


def test_pinned_prod_pulls_every_recsys_image_by_digest(
    pinned_prod: Path, render: Callable[[Path], list[Manifest]]
) -> None:
    assert release.main(["check", str(pinned_prod)]) == 0
    images = dict(_containers(render(pinned_prod)))
    ours = {
        where: image for where, image in images.items() if "/recsys/" in image or image.startswith("recsys/")
    }
    assert len(ours) >= 10, images  # the services, the web, the pipeline Jobs
    for where, image in ours.items():
        assert image.startswith("registry.example.com/recsys/"), f"{where}: {image} has no images: entry"
        assert image.endswith(f":0.2.0@{DIGEST}"), f"{where}: {image}"


def test_the_pin_step_changes_only_tags_and_digests(pinned_prod: Path) -> None:
    before = (PROD / "kustomization.yaml").read_text(encoding="utf-8").splitlines()
    after = (pinned_prod / "kustomization.yaml").read_text(encoding="utf-8").splitlines()
    added = [line for line in after if line.strip().startswith("digest:")]
    assert len(added) == len(_recsys_images())
    kept = [line for line in after if not line.strip().startswith("digest:")]
    assert len(kept) == len(before)
    for old, new in zip(before, kept, strict=True):
        if old != new:
            assert old.strip().startswith("newTag:") and new.strip() == "newTag: 0.2.0", (old, new)
    # idempotent: pinning again (another digest) replaces, never adds
    text = (pinned_prod / "kustomization.yaml").read_text(encoding="utf-8")
    again = release.pin(text, {"web": "sha256:" + "f" * 64})
    assert again.count("digest:") == text.count("digest:")
    assert "sha256:" + "f" * 64 in again


def test_check_fails_for_the_unpinned_overlay(capsys: pytest.CaptureFixture[str]) -> None:
    assert release.main(["check", str(PROD)]) == 1
    err = capsys.readouterr().err
    for name in _recsys_images():
        assert f"recsys/{name} has no digest" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "web=sha256:abc"], "is not a sha256 digest"),
        (["--image", f"nosuch={DIGEST}"], "no images entry for nosuch"),
        (["--image", "web"], "want <image>=sha256:<digest>"),
        ([], "no digests given"),
        (["--image", f"web={DIGEST}", "--tag", "bad tag"], "is not a valid image tag"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    overlay = tmp_path / "prod"
    shutil.copytree(PROD, overlay)
    original = (overlay / "kustomization.yaml").read_bytes()
    assert release.main(["pin", str(overlay), *args]) == 2
    assert message in capsys.readouterr().err
    assert (overlay / "kustomization.yaml").read_bytes() == original


def test_buildx_metadata_files_give_the_digest(tmp_path: Path) -> None:
    meta = tmp_path / "catalog.json"
    meta.write_text(
        json.dumps(
            {"containerimage.digest": DIGEST, "image.name": "registry.example.com/recsys/catalog:0.2.0"}
        )
    )
    assert release.read_buildx_metadata(meta) == ("catalog", DIGEST)
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(release.ReleaseError, match="was the image pushed"):
        release.read_buildx_metadata(empty)


def test_the_release_workflow_builds_every_overlay_image_and_pins_them(yaml_module: ModuleType) -> None:
    flow = yaml_module.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    matrix = flow["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert sorted(m["image"] for m in matrix) == sorted(_recsys_images())
    for m in matrix:
        dockerfile = ROOT / m["dockerfile"]
        assert dockerfile.is_file(), m
        declared = set(re.findall(r"^ARG (\w+)", dockerfile.read_text(encoding="utf-8"), re.M))
        for arg in filter(None, m["build_args"].split()):
            assert arg.split("=", 1)[0] in declared, f"{m['image']}: {arg} is no ARG of {m['dockerfile']}"
    steps = " ".join(str(s.get("run", "")) for s in flow["jobs"]["pin"]["steps"])
    assert "release.py pin deploy/k8s/overlays/prod" in steps
    assert "release.py check deploy/k8s/overlays/prod" in steps
    # the overlay's registry is the one the workflow pushes to
    registry = flow["env"]["REGISTRY"]
    text = (PROD / "kustomization.yaml").read_text(encoding="utf-8")
    assert all(f"newName: {registry}/recsys/{n}\n" in text for n in _recsys_images())
