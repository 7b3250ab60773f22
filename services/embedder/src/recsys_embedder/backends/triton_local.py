"""Start the ``tritonserver`` bundled in PyPI's ``nvidia-pytriton`` on this machine (CPU, python
backend only) for tests and the benchmark.

Its quirks, handled here: the python backend's stub links against this Python's
``libpython`` (so ``LD_LIBRARY_PATH`` gets ``sysconfig``'s LIBDIR and the wheel's
bundled libs), the stub for this Python version must sit in the backend folder
as ``triton_python_backend_stub``, and the model code must find numpy and
onnxruntime (``export.write_model_repository(kind="python", site_packages=...)``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


class TritonUnavailable(RuntimeError):
    """The bundled tritonserver is missing or did not become ready (the message says why)."""


def bundle_dir() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise TritonUnavailable("nvidia-pytriton is not installed (pip install nvidia-pytriton)") from exc
    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise TritonUnavailable(f"no tritonserver binary in {root}")
    return root


def site_packages() -> list[str]:
    """Folders the python-backend model needs on sys.path (this environment's site-packages)."""
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    return paths or [sysconfig.get_paths()["purelib"]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalTriton:
    """``with LocalTriton(repo, workdir) as t: t.url`` - a tritonserver on 127.0.0.1 (gRPC only)."""

    def __init__(
        self,
        repo: str | Path,
        workdir: str | Path,
        *,
        startup_timeout_s: float = 90.0,
        load_models: tuple[str, ...] | None = None,
        http: bool = False,
    ) -> None:
        """``load_models``: ``--model-control-mode=explicit`` with these ``--load-model``s (as the
        cluster runs it), else ``none`` (every model at start); ``http``: also the HTTP endpoint
        (``http_url``, the repository API)."""
        self.repo = Path(repo)
        self.workdir = Path(workdir)
        self.startup_timeout_s = startup_timeout_s
        self.load_models = load_models
        self.http = http
        self.port = 0
        self.http_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "tritonserver.log"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _backends(self, bundle: Path) -> Path:
        ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
        stub = bundle / "python_backend_stubs" / ver / "triton_python_backend_stub"
        if not stub.is_file():
            raise TritonUnavailable(f"nvidia-pytriton has no python backend stub for Python {ver}")
        dest = self.workdir / "backends" / "python"
        dest.mkdir(parents=True, exist_ok=True)
        for f in (bundle / "backends" / "python").iterdir():
            if f.is_file() and not (dest / f.name).exists():
                os.symlink(f, dest / f.name)
        if not (dest / "triton_python_backend_stub").exists():
            shutil.copy(stub, dest / "triton_python_backend_stub")
        return dest.parent

    def start(self) -> LocalTriton:
        bundle = bundle_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        backends = self._backends(bundle)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        wheel_libs = bundle.parent.parent / "nvidia_pytriton.libs"
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(
            p for p in (libdir, str(wheel_libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env.setdefault("OMP_NUM_THREADS", "1")
        self.port = self.port or _free_port()  # a restart keeps its ports
        if self.load_models is None:
            control = ["--model-control-mode=none"]
        else:
            control = ["--model-control-mode=explicit", *(f"--load-model={m}" for m in self.load_models)]
        if self.http:
            self.http_port = self.http_port or _free_port()
            http = ["--http-address=127.0.0.1", f"--http-port={self.http_port}"]
        else:
            http = ["--allow-http=false"]
        cmd = [
            str(bundle / "bin" / "tritonserver"),
            f"--model-repository={self.repo}",
            f"--backend-directory={backends}",
            f"--cache-directory={bundle / 'caches'}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.port}",
            *http,
            "--allow-metrics=false",
            *control,
            "--strict-readiness=true",
            "--exit-on-error=true",
            "--log-verbose=0",
        ]
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.close()
            raise TritonUnavailable(f"cannot run tritonserver: {exc}") from exc
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        deadline = time.monotonic() + self.startup_timeout_s
        client = grpcclient.InferenceServerClient(self.url)
        try:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise TritonUnavailable(
                        f"tritonserver exited with {self.proc.returncode}: {self.log_tail()}"
                    )
                with contextlib.suppress(InferenceServerException):
                    if client.is_server_ready(client_timeout=1.0):
                        return
                time.sleep(0.2)
        finally:
            client.close()
        self.stop()
        raise TritonUnavailable(f"tritonserver not ready after {self.startup_timeout_s}s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
