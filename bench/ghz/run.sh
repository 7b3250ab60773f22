#!/usr/bin/env bash
# Run the gateway's ghz configs (bench/ghz/*.json) against a local stack (`recsys up`).
#
#   bash bench/ghz/run.sh [--python] [--host 127.0.0.1:50051] [--duration 20s] [--writes] [CONFIG...]
#
# With real ghz (https://ghz.sh/docs/install) when it is on PATH; with --python (or when
# RECSYS_LOADGEN=python) the same configs run with recsys_tools.loadgen instead. Without
# ghz and without --python it says so and exits 2 (nothing was measured).
#
# CONFIG: config names or files (default: every config but record_feedback, which writes
# to the catalog; --writes adds it). Call data comes from bench/ghz/make_data.py (run
# here when bench/ghz/data/ is missing; MovieLens-derived, never committed).
# Reports (ghz JSON) go to bench/ghz/results/<config>.json, a summary to stdout.
# Only loopback hosts: load is never sent elsewhere by accident (--allow-remote to override).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
HOST=127.0.0.1:50051
DURATION=""
ENGINE=${RECSYS_LOADGEN:-ghz}
WRITES=0
ALLOW_REMOTE=0
CONFIGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --python) ENGINE=python ;;
    --host) HOST=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --writes) WRITES=1 ;;
    --allow-remote) ALLOW_REMOTE=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) CONFIGS+=("$1") ;;
  esac
  shift
done

case "$HOST" in
  127.*|localhost:*|\[::1\]:*) ;;
  *) if [ "$ALLOW_REMOTE" != 1 ]; then
       echo "run.sh: refusing to load $HOST (not loopback); pass --allow-remote if you mean it" >&2
       exit 2
     fi ;;
esac

if [ "$ENGINE" = ghz ] && ! command -v ghz >/dev/null 2>&1; then
  echo "run.sh: ghz is not installed (https://ghz.sh/docs/install); nothing measured." >&2
  echo "        Use --python to run the same configs with recsys_tools.loadgen." >&2
  exit 2
fi

if [ ${#CONFIGS[@]} -eq 0 ]; then
  for f in bench/ghz/*.json; do
    case "$f" in *record_feedback.json) [ "$WRITES" = 1 ] || continue ;; esac
    CONFIGS+=("$f")
  done
fi

if [ ! -d bench/ghz/data ]; then
  echo "==> generating call data (bench/ghz/make_data.py)"
  "$PY" bench/ghz/make_data.py
fi

echo "==> checking the gateway at $HOST"
"$PY" - "$HOST" <<'PYEOF'
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

host = sys.argv[1]
with grpc.insecure_channel(host) as ch:
    try:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="recsys.gateway.v1.Gateway"), timeout=5
        )
    except grpc.RpcError as exc:
        sys.exit(f"run.sh: the gateway at {host} does not answer ({exc.code().name}); start it with `recsys up`")
if resp.status != health_pb2.HealthCheckResponse.SERVING:
    sys.exit(f"run.sh: the gateway at {host} is not SERVING; wait for `recsys up` to finish")
PYEOF

mkdir -p bench/ghz/results
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
status=0
for cfg in "${CONFIGS[@]}"; do
  [ -f "$cfg" ] || cfg=bench/ghz/${cfg%.json}.json
  name=$(basename "$cfg" .json)
  out=bench/ghz/results/$name.json
  echo "==> $name ($ENGINE)"
  # One effective config with host/duration applied: ghz versions differ on whether flags
  # override --config, so nothing is passed beside it.
  "$PY" - "$cfg" "$TMP/$name.json" "$HOST" "$DURATION" <<'PYEOF'
import json
import sys

src, dst, host, duration = sys.argv[1:5]
cfg = json.load(open(src))
cfg["host"] = host
if duration:
    cfg["duration"] = duration
    cfg.pop("total", None)
json.dump(cfg, open(dst, "w"), indent=2)
PYEOF
  if [ "$ENGINE" = ghz ]; then
    ghz --config "$TMP/$name.json" -O json -o "$out" || { status=1; continue; }
  else
    extra=()
    [ "$ALLOW_REMOTE" = 1 ] && extra+=(--allow-remote)
    "$PY" -m recsys_tools.loadgen --config "$TMP/$name.json" --format json --output "$out" "${extra[@]}" \
      || { status=1; continue; }
  fi
  "$PY" - "$out" <<'PYEOF'
import json
import sys

r = json.load(open(sys.argv[1]))
lat = {d["percentage"]: d["latency"] / 1e6 for d in (r.get("latencyDistribution") or []) if d}
codes = ", ".join(f"{k} {v}" for k, v in sorted(r["statusCodeDistribution"].items()))
p = lambda q: f"{lat[q]:.1f}" if q in lat else "-"
print(f"    {r['count']} calls, {r['rps']:.0f}/s, p50 {p(50)} ms, p99 {p(99)} ms  [{codes}]")
PYEOF
done
exit $status
