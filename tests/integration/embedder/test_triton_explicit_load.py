"""Explicit model control, as deploy/k8s/components/triton runs Triton: a new export of the model
loads through the repository API (`python -m recsys_embedder triton-load`, the release pipeline's
triton-load Job) without restarting tritonserver (pytriton's bundled server, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def test_a_new_export_loads_without_a_restart(tmp_path: Path, base_artifact: Path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] not installed")
    from recsys_embedder.__main__ import main
    from recsys_embedder.artifacts import load_artifact
    from recsys_embedder.backends.triton_local import LocalTriton, TritonUnavailable, site_packages
    from recsys_embedder.backends.triton_repository import served_version
    from recsys_embedder.export import write_model_repository

    from .conftest import copy_version

    root = tmp_path / "arts"
    root.mkdir()
    v2 = copy_version(base_artifact, root, "v2")
    repo = tmp_path / "repo"
    write_model_repository(load_artifact(base_artifact), repo, kind="python", site_packages=site_packages())
    server = LocalTriton(repo, tmp_path / "run", load_models=("recsys_query",), http=True)
    try:
        server.start()
    except TritonUnavailable as exc:
        pytest.skip(f"tritonserver cannot start here: {exc}")
    try:
        pid = server.proc.pid if server.proc else None
        assert served_version(server.http_url, "recsys_query") == "v1"  # --load-model at start
        args = ["triton-load", "--triton", server.http_url, "--model", "recsys_query"]
        # the repository still holds v1's export: loading it for artifact v2 fails the step
        assert main([*args, "--artifact", str(v2)]) == 1
        # export v2 into the live repository, load it: same process, new version served
        write_model_repository(load_artifact(v2), repo, kind="python", site_packages=site_packages())
        assert served_version(server.http_url, "recsys_query") == "v1"  # explicit: nothing reloads by itself
        assert main([*args, "--artifact", str(v2)]) == 0
        assert served_version(server.http_url, "recsys_query") == "v2"
        assert server.proc is not None and server.proc.pid == pid and server.proc.poll() is None
        # a model the repository does not have is refused
        assert (
            main(["triton-load", "--triton", server.http_url, "--model", "nope", "--artifact", str(v2)]) == 1
        )
    finally:
        server.stop()
