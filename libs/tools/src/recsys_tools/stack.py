"""`recsys up | down | status | stack load`: the whole stack on one machine.

`recsys up` goes from nothing to a serving stack on embedded defaults:
1. data: a named MovieLens set from ../shared or ./data, else a download
   (verified sha256), else a generated data set (and it says so);
2. model: trains an artifact when none exists under the artifact dir, or
   when the latest one trained on other data (its manifest's content checksum);
3. catalog: migrates and bulk-loads the data set into embedded PostgreSQL;
4. starts catalog, retriever (Milvus Lite), embedder and gateway as child
   processes, waits for each one's health;
5. loads the artifact's movie vectors into the retriever (a new version
   beside the old one, then an alias swap) unless that version is serving;
6. prints endpoints and an example call, then waits, restarting a service
   process that exits (``Restarter``: bounded backoff): Ctrl-C (or `recsys down`
   from another shell) drains every service with SIGTERM. With ``--detach`` it
   returns instead and a detached supervisor (`recsys supervise`, pid in
   stack.json) does the restarting until `recsys down` stops it first.

Each step is a command of its own package run as a subprocess, so this module
imports no service code (and no torch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.catalog.v1 import catalog_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.retriever.v1 import retriever_pb2

STATE_FILE = "stack.json"
DATA_FILE = "catalog-data.json"  # which data set the workdir's catalog was loaded with
WEB_PORT = 8080


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    full_name: str
    port: int
    metrics_port: int


def _service(module: Any, name: str) -> str:
    """The full name of service ``name`` in generated ``module`` (from its descriptor)."""
    return str(module.DESCRIPTOR.services_by_name[name].full_name)


SERVICES = (
    ServiceDef("catalog", "recsys_catalog", _service(catalog_pb2, "Catalog"), 50052, 9102),
    ServiceDef(
        "retriever",
        "recsys_retriever",
        _service(retriever_pb2, "Retriever"),
        50054,
        9104,
    ),
    ServiceDef(
        "embedder",
        "recsys_embedder",
        _service(embedder_pb2, "Embedder"),
        50053,
        9103,
    ),
    ServiceDef("gateway", "recsys_gateway", _service(gateway_pb2, "Gateway"), 50051, 9101),
)


def _say(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="set up and start the whole stack (embedded PostgreSQL and Milvus Lite)")
    p.add_argument("--data", default="ml-100k", help="data set name or path (default ml-100k)")
    p.add_argument("--workdir", type=Path, default=Path("var"), help="state: databases, logs (default ./var)")
    p.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="model artifacts (default ./artifacts)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="interface the gateway binds (internal ones: loopback)"
    )
    p.add_argument("--port-offset", type=int, default=0, help="add to every default port (several stacks)")
    p.add_argument("--retrain", action="store_true", help="train a new artifact even if one exists")
    p.add_argument("--train-args", default="", help="extra arguments for `recsys train` (quoted)")
    p.add_argument(
        "--yes",
        action="store_true",
        help="train without asking when the estimated training time is long (a terminal asks; "
        "without one the estimate is printed and training goes on)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="return once serving; a detached supervisor restarts crashed services (stop with `recsys down`)",
    )
    p.add_argument(
        "--no-supervise", action="store_true", help="with --detach: no supervisor (nothing restarts a crash)"
    )
    p.add_argument("--synthetic-size", type=int, default=20000, help="ratings of a generated data set")
    p.add_argument("--no-web", action="store_true", help="do not start the web app")
    p.set_defaults(func=lambda a: asyncio.run(_up(a)))

    p = sub.add_parser("down", help="stop a stack started with `recsys up`")
    p.add_argument("--workdir", type=Path, default=Path("var"))
    p.set_defaults(func=_down)

    p = sub.add_parser(
        "supervise", help="keep a detached stack's services running (started by `recsys up --detach`)"
    )
    p.add_argument("--workdir", type=Path, default=Path("var"))
    p.set_defaults(func=lambda a: asyncio.run(_supervise(a)))

    p = sub.add_parser("status", help="health and versions of each service of the stack")
    p.add_argument("--workdir", type=Path, default=Path("var"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda a: asyncio.run(_status(a)))

    p = sub.add_parser("stack", help="stack maintenance: load an artifact into catalog and retriever")
    ssub = p.add_subparsers(dest="stack_command", required=True)
    lp = ssub.add_parser("load", help="load an artifact's movie vectors into the retriever and activate them")
    lp.add_argument("--artifact", type=Path, required=True, help="artifact folder (or the `latest` pointer)")
    lp.add_argument("--retriever", default="127.0.0.1:50054", help="retriever address")
    lp.add_argument("--catalog", default="127.0.0.1:50052", help="catalog address (movie year/genres)")
    lp.add_argument("--timeout", type=float, default=600.0)
    lp.set_defaults(func=lambda a: asyncio.run(_load_cmd(a)))


# ----------------------------------------------------------------------- data
def _resolve_data(name: str, workdir: Path, synthetic_size: int) -> Path:
    from recsys_data import DatasetNotFound, find_dataset

    path = Path(name)
    if path.exists():
        return path
    try:
        found = find_dataset(name)
        _say(f"data: {name} found at {found}")
        return found
    except DatasetNotFound:
        pass
    data_dir = Path("data")
    try:
        from recsys_data.fetch import fetch

        _say(f"data: downloading {name} to {data_dir}/ (sha256 verified)")
        return fetch(name, data_dir)
    except Exception as exc:  # no network, unknown name, checksum mismatch: say it and generate
        _say(f"data: could not download {name} ({exc}); generating a synthetic data set instead")
    from recsys_data.synthetic import generate

    out = workdir / "synthetic-100k"
    if not (out / "u.data").exists():
        n_users = max(50, synthetic_size // 40)
        generate(
            out,
            fmt="100k",
            n_users=n_users,
            n_movies=max(100, synthetic_size // 20),
            n_ratings=synthetic_size,
            seed=0,
        )
    _say(f"data: SYNTHETIC data set at {out} (not MovieLens; recommendations are not meaningful)")
    return out


def _run_step(title: str, cmd: list[str], env: dict[str, str] | None = None) -> None:
    _say(f"{title}: {' '.join(cmd)}")
    rc = subprocess.call(cmd, env={**os.environ, **(env or {})})
    if rc != 0:
        raise SystemExit(f"step failed ({title}), exit code {rc}")


def _recsys() -> list[str]:
    return [sys.executable, "-m", "recsys_tools.cli"]


def data_content_sha256(data: Path) -> str:
    """The data set's content checksum (``recsys_data.content_sha256``; what an artifact's
    manifest records as ``dataset.content_sha256``)."""
    from recsys_data import content_sha256, load_dataset

    return content_sha256(load_dataset(data))


#: estimated training longer than this asks before it starts (on a terminal, without --yes)
ASK_ABOVE_S = 30 * 60


def training_cost(n_ratings: int, n_movies: int, train_args: str) -> Any:
    """``recsys_embedder.training.cost.estimate`` for the loss ``train_args`` asks for."""
    from recsys_embedder.training.cost import estimate

    words = train_args.split()
    loss = "full"
    for i, w in enumerate(words):
        if w == "--loss" and i + 1 < len(words):
            loss = words[i + 1]
        elif w.startswith("--loss="):
            loss = w.split("=", 1)[1]
    return estimate(n_ratings, n_movies, loss if loss in ("full", "sampled") else "full")


def confirm_training(cost: Any, *, yes: bool, interactive: bool, ask: Any = input) -> bool:
    """Print what training will cost; on a terminal, ask when it is long (unless ``yes``)."""
    _say(f"model: training will cost {cost.summary()}")
    if cost.total_s <= ASK_ABOVE_S or yes:
        return True
    hint = (
        ""
        if cost.loss == "sampled"
        else " (--train-args '--loss sampled' encodes only the movies a step touches: "
        "4.8x the events/s measured at 60k movies)"
    )
    if not interactive:
        _say(f"model: long training{hint}; not a terminal, so going on (pass --yes to skip this note)")
        return True
    answer = str(ask(f"train now{hint}? [y/N] "))
    return answer.strip().lower() in ("y", "yes")


def artifact_data_sha256(artifact: Path) -> str | None:
    """The content checksum of the data an artifact trained on (None: the manifest has none)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    value = manifest.get("dataset", {}).get("content_sha256")
    return str(value) if value else None


def _check_workdir_data(workdir: Path, data: Path, content: str) -> None:
    """A workdir's catalog holds the data set it was first loaded with (loading merges): another
    data set there would mix the two (e.g. a holdout beside its source's TEST events)."""
    path = workdir / DATA_FILE
    if not path.exists():
        return
    loaded = json.loads(path.read_text())
    if loaded.get("content_sha256") != content:
        raise SystemExit(
            f"{workdir} holds the catalog of {loaded.get('data')}, not of {data}; loading would mix "
            "them: use another --workdir (or `recsys down` and delete this one)"
        )


def _latest_artifact(artifacts: Path) -> Path | None:
    pointer = artifacts / "latest"
    if pointer.is_file():
        target = artifacts / pointer.read_text().strip()
        if (target / "manifest.json").is_file():
            return target
    if pointer.is_dir() and (pointer / "manifest.json").is_file():
        return pointer
    return None


# ------------------------------------------------------------------ processes
def service_env(svc: ServiceDef, *, workdir: Path, artifacts: Path, host: str, offset: int) -> dict[str, str]:
    prefix = f"RECSYS_{svc.name.upper()}_"
    env = {
        f"{prefix}PORT": str(svc.port + offset),
        f"{prefix}HOST": host if svc.name == "gateway" else "127.0.0.1",
        f"{prefix}METRICS_PORT": str(svc.metrics_port + offset),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    by_name = {s.name: s for s in SERVICES}
    if svc.name == "catalog":
        env[f"{prefix}DATA_DIR"] = str(workdir / "catalog-pg")
        for up in ("embedder", "retriever"):  # AddMovies' upstreams (issue #20)
            env[f"{prefix}{up.upper()}_TARGET"] = f"127.0.0.1:{by_name[up].port + offset}"
    elif svc.name == "retriever":
        env[f"{prefix}DATA_DIR"] = str(workdir / "retriever")
    elif svc.name == "embedder":
        env[f"{prefix}ARTIFACT_DIR"] = str(artifacts)
    elif svc.name == "gateway":
        for up in ("catalog", "embedder", "retriever"):
            env[f"{prefix}{up.upper()}_TARGET"] = f"127.0.0.1:{by_name[up].port + offset}"
        for key, value in gateway_defaults(artifacts).items():
            if f"{prefix}{key}" not in os.environ:
                env[f"{prefix}{key}"] = value
    return env


def gateway_defaults(artifacts: Path) -> dict[str, str]:
    """Gateway settings (names without the ``RECSYS_GATEWAY_`` prefix) the latest artifact's
    training chose: the quiz's popularity floor (``models.pinsage.serving.quiz.min_ratings``,
    chosen on VALIDATION) and the no-signal fallback's popularity rule
    (``models.pinsage.serving.popularity``, chosen on a time split). Empty when there is no
    artifact or it has neither (the gateway's own defaults then); an operator's environment
    wins over both."""
    artifact = _latest_artifact(artifacts)
    if artifact is None:
        return {}
    manifest = json.loads((artifact / "manifest.json").read_text())
    serving = manifest.get("models", {}).get("pinsage", {}).get("serving", {})
    out: dict[str, str] = {}
    floor = (serving.get("quiz") or {}).get("min_ratings")
    if floor is not None:
        out["SAMPLE_MIN_RATINGS"] = str(int(floor))
    popularity = serving.get("popularity") or {}
    if popularity.get("ranking"):
        out["POPULAR_RANKING"] = str(popularity["ranking"])
        out["POPULAR_HALF_LIFE_DAYS"] = repr(float(popularity.get("half_life_days") or 0.0))
    return out


def web_env(*, host: str, offset: int) -> dict[str, str]:
    gateway = next(s for s in SERVICES if s.name == "gateway")
    return {
        "RECSYS_WEB_HOST": host,
        "RECSYS_WEB_PORT": str(WEB_PORT + offset),
        "RECSYS_WEB_GATEWAY_TARGET": f"127.0.0.1:{gateway.port + offset}",
    }


async def wait_http_ready(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with code {proc.returncode} before becoming ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not ready after {timeout:.0f}s")
        await asyncio.sleep(0.3)


async def wait_healthy(
    target: str, service: str, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{service} exited with code {proc.returncode} before becoming healthy")
            try:
                resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{service} at {target} not SERVING after {timeout:.0f}s")
            await asyncio.sleep(0.3)


class ProcessHandle(Protocol):
    pid: int

    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...


class PidHandle:
    """A service process this one did not start (a detached supervisor inherits them): alive while
    /proc says it runs and is not a zombie; its exit code is unknown (-1)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def poll(self) -> int | None:
        if self._returncode is None and not _running(self.pid):
            self._returncode = -1
        return self._returncode


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return _alive(pid) if not Path("/proc/self/stat").exists() else False


class Restarter:
    """Restarts a crashed service of `recsys up` (the foreground process, or the detached
    supervisor) with bounded exponential backoff: ``initial_s`` doubling to ``max_s``, reset once
    a process stayed up ``stable_s``. ``specs``: name -> (argv, env, log path) as the service was
    first started; ``procs`` is updated in place."""

    def __init__(
        self,
        procs: dict[str, ProcessHandle],
        specs: dict[str, tuple[list[str], dict[str, str], Path]],
        *,
        initial_s: float = 1.0,
        max_s: float = 30.0,
        stable_s: float = 60.0,
    ) -> None:
        self.procs, self.specs = procs, specs
        self.initial_s, self.max_s, self.stable_s = initial_s, max_s, stable_s
        self.restarts: dict[str, int] = {}
        self._delay = dict.fromkeys(procs, initial_s)
        self._started = dict.fromkeys(procs, time.monotonic())
        self._due: dict[str, float] = {}

    def poll(self) -> None:
        now = time.monotonic()
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                if now - self._started[name] >= self.stable_s:
                    self._delay[name] = self.initial_s
                continue
            if name not in self._due:
                delay = self._delay[name]
                code = "unknown" if p.returncode == -1 else p.returncode
                _say(f"{name} (pid {p.pid}) exited with code {code}; restarting in {delay:.1f}s")
                self._due[name] = now + delay
                self._delay[name] = min(delay * 2, self.max_s)
            elif now >= self._due[name]:
                del self._due[name]
                argv, env, log_path = self.specs[name]
                with open(log_path, "ab") as log:
                    self.procs[name] = subprocess.Popen(
                        argv,
                        env={**os.environ, **env},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                self._started[name] = now
                self.restarts[name] = self.restarts.get(name, 0) + 1
                _say(f"{name} restarted (pid {self.procs[name].pid}, restart {self.restarts[name]})")


def _stop_all(procs: dict[str, subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    # Reverse start order: the gateway drains first, the catalog last.
    for name in reversed(list(procs)):
        p = procs[name]
        if p.poll() is None:
            _say(f"stopping {name} (SIGTERM, drains in-flight calls)")
            p.send_signal(signal.SIGTERM)
    for name, p in procs.items():
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _say(f"{name} did not stop in {grace:.0f}s: killing")
            p.kill()


async def _up(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir.resolve()
    artifacts: Path = args.artifacts.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    state_path = workdir / STATE_FILE
    if state_path.exists():
        state = json.loads(state_path.read_text())
        alive = [n for n, pid in state.get("pids", {}).items() if _alive(pid)]
        if alive:
            raise SystemExit(
                f"a stack is already running from {workdir} ({', '.join(alive)}): `recsys down` first"
            )

    data = _resolve_data(args.data, workdir, args.synthetic_size)
    from recsys_data import content_sha256, load_dataset

    dataset = load_dataset(data)
    content = content_sha256(dataset)
    _check_workdir_data(workdir, data, content)

    artifact = None if args.retrain else _latest_artifact(artifacts)
    reason = "no artifact yet"
    if artifact is not None:
        trained = artifact_data_sha256(artifact)
        if trained is not None and trained != content:
            _say(f"model: {artifact.name} was trained on other data than {data}: training a new one")
            artifact, reason = None, "the artifact's data differs"
    if artifact is None:
        cost = training_cost(len(dataset.interactions.user_ids), len(dataset.movies), args.train_args)
        if not confirm_training(cost, yes=args.yes, interactive=sys.stdin.isatty()):
            raise SystemExit("not training: nothing started (pass --yes to train without asking)")
        del dataset
        cmd = [*_recsys(), "train", "--data", str(data), "--out", str(artifacts), *args.train_args.split()]
        _run_step(f"model: {reason}, training (progress below)", cmd)
        artifact = _latest_artifact(artifacts)
        if artifact is None:
            raise SystemExit(f"training finished but no artifact under {artifacts}")
    else:
        _say(f"model: using artifact {artifact}")

    cat_env = service_env(
        SERVICES[0], workdir=workdir, artifacts=artifacts, host=args.host, offset=args.port_offset
    )
    _run_step("catalog: migrate", [*_recsys(), "catalog", "migrate"], cat_env)
    _run_step("catalog: load data set (idempotent)", [*_recsys(), "catalog", "load", str(data)], cat_env)
    (workdir / DATA_FILE).write_text(json.dumps({"data": str(data), "content_sha256": content}) + "\n")

    procs: dict[str, subprocess.Popen[bytes]] = {}
    specs: dict[str, tuple[list[str], dict[str, str], Path]] = {}
    try:
        for svc in SERVICES:
            env = service_env(
                svc, workdir=workdir, artifacts=artifacts, host=args.host, offset=args.port_offset
            )
            log = open(workdir / "logs" / f"{svc.name}.log", "ab")
            _say(f"starting {svc.name} on port {svc.port + args.port_offset} (log: {log.name})")
            specs[svc.name] = ([sys.executable, "-m", svc.module], env, Path(log.name))
            procs[svc.name] = subprocess.Popen(
                [sys.executable, "-m", svc.module],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if svc.name == "retriever":
                await wait_healthy(
                    f"127.0.0.1:{svc.port + args.port_offset}", svc.full_name, 120, procs[svc.name]
                )
                retriever = f"127.0.0.1:{svc.port + args.port_offset}"
                _say("retriever: loading movie vectors from the artifact")
                catalog = f"127.0.0.1:{SERVICES[0].port + args.port_offset}"
                await wait_healthy(catalog, SERVICES[0].full_name, 120, procs["catalog"])
                await load_artifact_vectors(artifact, retriever, catalog, timeout=600)
        for svc in SERVICES:
            await wait_healthy(
                f"127.0.0.1:{svc.port + args.port_offset}", svc.full_name, 180, procs[svc.name]
            )
            _say(f"{svc.name}: SERVING")
        if not args.no_web:
            web_port = WEB_PORT + args.port_offset
            log = open(workdir / "logs" / "web.log", "ab")
            _say(f"starting web on port {web_port} (log: {log.name})")
            w_env = web_env(host=args.host, offset=args.port_offset)
            specs["web"] = ([sys.executable, "-m", "recsys_web"], w_env, Path(log.name))
            procs["web"] = subprocess.Popen(
                [sys.executable, "-m", "recsys_web"],
                env={**os.environ, **web_env(host=args.host, offset=args.port_offset)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            await wait_http_ready(f"http://127.0.0.1:{web_port}/readyz", 60, procs["web"])
            _say("web: ready")
        stack_state: dict[str, Any] = {
            "pids": {n: p.pid for n, p in procs.items()},
            "offset": args.port_offset,
        }
        if args.detach and not args.no_supervise:
            pid = _start_supervisor(workdir, specs)
            stack_state["supervisor"] = pid
            _say(f"supervisor: pid {pid} restarts a crashed service (log: logs/supervisor.log)")
        _write_state(state_path, stack_state)
        gw = f"{args.host}:{SERVICES[-1].port + args.port_offset}"
        if not args.no_web:
            web_url = f"http://{args.host}:{WEB_PORT + args.port_offset}/"
            print(f"\nWeb app (quiz, recommendations, movie pages): {web_url}")
        print(
            f"\nrecsys is up. Gateway: {gw} (gRPC, reflection on)\n"
            f"  recsys recommend --target {gw} --like 1,50,100 --dislike 181\n"
            f"  recsys similar --target {gw} 1\n"
            f'  grpcurl -plaintext -d \'{{"liked":[{{"movie_id":1}}],"k":5}}\' {gw} '
            "recsys.gateway.v1.Gateway/Recommend\n"
            f"  recsys status   |   recsys down   (or Ctrl-C here)\n",
            flush=True,
        )
        if args.detach:
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        handles: dict[str, ProcessHandle] = dict(procs)
        await _restart_loop(Restarter(handles, specs), state_path, stack_state, stop)
        return 0
    except BaseException:
        _stop_all(procs)
        state_path.unlink(missing_ok=True)
        raise
    finally:
        if not args.detach and state_path.exists():
            _stop_all(procs)
            state_path.unlink(missing_ok=True)


async def _restart_loop(
    restarter: Restarter, state_path: Path, state: dict[str, Any], stop: asyncio.Event
) -> None:
    """Poll every second until ``stop``: a crashed service is started again (bounded backoff)
    and its new pid written to stack.json, so `recsys down` and `recsys status` find it."""
    while not stop.is_set():
        before = {n: p.pid for n, p in restarter.procs.items()}
        restarter.poll()
        now = {n: p.pid for n, p in restarter.procs.items()}
        if now != before:
            state["pids"] = now
            _write_state(state_path, state)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """stack.json, replaced atomically (readers never see half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


SUPERVISOR_FILE = "supervisor.json"  # what the detached supervisor restarts, and how


def _start_supervisor(workdir: Path, specs: dict[str, tuple[list[str], dict[str, str], Path]]) -> int:
    spec_path = workdir / SUPERVISOR_FILE
    fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the env may hold secrets
    with os.fdopen(fd, "w") as f:
        json.dump({n: [argv, env, str(log)] for n, (argv, env, log) in specs.items()}, f)
    log = open(workdir / "logs" / "supervisor.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "recsys_tools.cli", "supervise", "--workdir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc.pid


async def _supervise(args: argparse.Namespace) -> int:
    """The detached stack's supervisor: restarts a service whose process is gone, until SIGTERM
    (`recsys down` sends it first, then stops the services)."""
    workdir: Path = args.workdir.resolve()
    state_path = workdir / STATE_FILE
    raw = json.loads((workdir / SUPERVISOR_FILE).read_text())
    specs = {n: (list(argv), dict(env), Path(log)) for n, (argv, env, log) in raw.items()}
    state = json.loads(state_path.read_text())
    state["supervisor"] = os.getpid()
    _write_state(state_path, state)
    handles: dict[str, ProcessHandle] = {n: PidHandle(int(pid)) for n, pid in state["pids"].items()}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _say(f"supervising {', '.join(handles)} (pids {', '.join(str(h.pid) for h in handles.values())})")
    await _restart_loop(Restarter(handles, specs), state_path, state, stop)
    _say("supervisor stopped (the services keep running until `recsys down` stops them)")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _down(args: argparse.Namespace) -> int:
    state_path = args.workdir / STATE_FILE
    if not state_path.exists():
        print("no stack is running (no state file)", file=sys.stderr)
        return 0
    state = json.loads(state_path.read_text())
    pids: dict[str, int] = state.get("pids", {})
    supervisor = state.get("supervisor")
    if supervisor and _alive(int(supervisor)):
        _say(f"stopping the supervisor (pid {supervisor}) so that nothing restarts")
        os.kill(int(supervisor), signal.SIGTERM)
        end = time.monotonic() + 10
        while time.monotonic() < end and _running(int(supervisor)):
            time.sleep(0.1)
        pids = json.loads(state_path.read_text()).get("pids", pids)  # its last restarts included
    for name in reversed(list(pids)):
        if _alive(pids[name]):
            _say(f"stopping {name} (pid {pids[name]})")
            os.kill(pids[name], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.2)
    for name, pid in pids.items():
        if _alive(pid):
            _say(f"{name} still running after 20s: killing")
            os.kill(pid, signal.SIGKILL)
    state_path.unlink(missing_ok=True)
    return 0


async def _status(args: argparse.Namespace) -> int:
    offset = 0
    state_path = args.workdir / STATE_FILE
    if state_path.exists():
        offset = int(json.loads(state_path.read_text()).get("offset", 0))
    rows: list[dict[str, Any]] = []
    ok = True
    for svc in SERVICES:
        target = f"127.0.0.1:{svc.port + offset}"
        row: dict[str, Any] = {"service": svc.name, "target": target}
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                resp = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=svc.full_name), timeout=2.0
                )
                row["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                row["version"] = await _version(svc, channel)
                if resp.status != health_pb2.HealthCheckResponse.SERVING:
                    ok = False
            except grpc.aio.AioRpcError as exc:
                row["health"] = f"DOWN ({exc.code().name})"
                ok = False
        rows.append(row)
    web_url = f"http://127.0.0.1:{WEB_PORT + offset}/readyz"
    try:
        await wait_http_ready(web_url, 2)
        rows.append({"service": "web", "target": web_url.removesuffix("/readyz"), "health": "SERVING"})
    except SystemExit:
        rows.append({"service": "web", "target": web_url.removesuffix("/readyz"), "health": "DOWN"})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['service']:<10} {r['target']:<16} {r['health']:<12} {r.get('version', '')}")
    bad = [
        f"{r['service']} ({r['health']})" for r in rows if r["service"] != "web" and r["health"] != "SERVING"
    ]
    if bad:
        print(f"not SERVING: {', '.join(bad)}", file=sys.stderr)
    return 0 if ok else 1


async def _version(svc: ServiceDef, channel: grpc.aio.Channel) -> str:
    try:
        if svc.name == "embedder":
            from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc

            info = await embedder_pb2_grpc.EmbedderStub(channel).ModelInfo(
                embedder_pb2.ModelInfoRequest(), timeout=2
            )
            return f"model {info.version} ({info.backend}, dim {info.dimension})"
        if svc.name == "retriever":
            from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc

            d = await retriever_pb2_grpc.RetrieverStub(channel).Describe(
                retriever_pb2.DescribeRequest(), timeout=2
            )
            from recsys.common.v1 import common_pb2

            serving = [
                f"{common_pb2.VectorSpace.Name(c.space).removeprefix('VECTOR_SPACE_').lower()} {c.version} "
                f"({c.count} vectors)"
                for c in d.collections
                if c.serving
            ]
            return f"{d.backend}, serving {', '.join(serving) or 'none'}"
        if svc.name == "catalog":
            from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc

            c = await catalog_pb2_grpc.CatalogStub(channel).Describe(catalog_pb2.DescribeRequest(), timeout=2)
            return (
                f"schema {c.schema_version}, {c.movie_count} movies, {c.rating_count} ratings "
                f"({c.dataset_name})"
            )
    except grpc.aio.AioRpcError as exc:
        return f"({exc.code().name})"
    return ""


# --------------------------------------------------------------- vector load
async def load_artifact_vectors(
    artifact: Path, retriever: str, catalog: str, *, timeout: float = 600.0
) -> None:
    """Publish an artifact's movie vectors and activate them (recsys_embedder.publish: the embedder
    owns the artifact format; the release Job runs the same code from the embedder's image)."""
    from recsys_embedder.publish import publish

    await publish(artifact, retriever, catalog, activate=True, timeout=timeout, say=_say)


async def _load_cmd(args: argparse.Namespace) -> int:
    artifact = _latest_artifact(args.artifact) or args.artifact
    await load_artifact_vectors(artifact, args.retriever, args.catalog, timeout=args.timeout)
    return 0
