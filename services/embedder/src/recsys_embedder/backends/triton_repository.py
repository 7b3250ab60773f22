"""Triton's model repository API over HTTP (stdlib only): load a model and check what it serves.

Triton runs with ``--model-control-mode=explicit`` (deploy/k8s/components/triton): a model in
the repository loads at start only when named by ``--load-model``, and a new export of it is
(re)loaded by ``POST v2/repository/models/<name>/load`` - no restart. While the new copy loads
the old one keeps serving; the call returns once the new one is ready or failed.

``python -m recsys_embedder triton-load --triton http://triton:8000 --model recsys_query
--artifact /artifacts/latest`` (the release pipeline's triton-load Job) loads the model and then
checks that Triton serves the artifact's version (the ``artifact_version`` parameter export
writes into ``config.pbtxt``), so a load of a stale repository fails the Job.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from recsys_core.errors import DependencyUnavailable, FailedPrecondition

from recsys_embedder.backends.triton_backend import VERSION_PARAMETER


def _request(url: str, *, method: str, timeout_s: float, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DependencyUnavailable("triton", f"{url}: {exc}") from exc


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url if "://" in url else f"http://{url}"


def load_model(url: str, model: str, *, timeout_s: float = 300.0) -> None:
    """``POST v2/repository/models/<model>/load``: (re)load ``model`` from the repository."""
    status, body = _request(
        f"{_base(url)}/v2/repository/models/{model}/load", method="POST", body=b"{}", timeout_s=timeout_s
    )
    if status != 200:
        raise FailedPrecondition(f"triton refused to load {model!r} (HTTP {status}): {_error(body)}")


def served_version(url: str, model: str, *, timeout_s: float = 30.0) -> str:
    """The artifact version the ready ``model`` was exported from ("" when it has none)."""
    status, body = _request(f"{_base(url)}/v2/models/{model}/ready", method="GET", timeout_s=timeout_s)
    if status != 200:
        raise DependencyUnavailable("triton", f"model {model!r} is not ready (HTTP {status})")
    status, body = _request(f"{_base(url)}/v2/models/{model}/config", method="GET", timeout_s=timeout_s)
    if status != 200:
        raise DependencyUnavailable("triton", f"no config for {model!r} (HTTP {status}): {_error(body)}")
    config: dict[str, Any] = json.loads(body or b"{}")
    return str(config.get("parameters", {}).get(VERSION_PARAMETER, {}).get("string_value", ""))


def load_and_check(url: str, model: str, expected_version: str, *, timeout_s: float = 300.0) -> str:
    """Load ``model``; fail unless Triton then serves ``expected_version`` of it."""
    load_model(url, model, timeout_s=timeout_s)
    served = served_version(url, model)
    if served != expected_version:
        raise FailedPrecondition(
            f"triton loaded {model!r} exported from artifact {served or '?'}, not {expected_version}: "
            "run the export for this artifact first"
        )
    return served


def _error(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body.decode(errors="replace")))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]
