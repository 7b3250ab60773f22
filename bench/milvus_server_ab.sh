#!/bin/sh
# Issue #15: the whole stack on Milvus Lite (the embedded default) vs the same stack on a real
# Milvus 2.3.5 standalone server (PyPI `milvus` wheel), measured through the public gateway in one
# run (bench/gateway_bench.py --baseline: Lite rows are 'base', server rows 'server', alternating
# at every level and form, the echo floor beside them, per-hop tables of each stack).
#
#   .venv/bin/pip download --no-deps -d /tmp/milvus-wheel milvus==2.3.5      # once, with network
#   sh bench/milvus_server_ab.sh [DATA] [gateway_bench args...]
#   sh bench/milvus_server_ab.sh ../shared/data/movielens/ml-100k.zip --concurrency 1,16,64 --duration 10
#
# The Milvus server binds every interface, so it and both stacks run inside a private network
# namespace (loopback only): services/retriever/scripts/milvus_server_tests.sh starts the server
# there and runs this script again with MILVUS_URI set. Both stacks use the same model artifact
# (ARTIFACTS, default ./artifacts: trained once if missing) and an exact FLAT index
# (RECSYS_RETRIEVER_INDEX_TYPE=FLAT on the server too: same rankings, so only the cost differs).
# Both stacks are up at once; only the one being measured gets load.
set -eu
if [ -z "${MILVUS_URI:-}" ]; then
  exec sh services/retriever/scripts/milvus_server_tests.sh run sh "$0" "$@"
fi
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
DATA=${1:-ml-100k}
[ $# -gt 0 ] && shift
ART=${ARTIFACTS:-$ROOT/artifacts}
WORK=$(mktemp -d /tmp/milvus-ab.XXXXXX)
cleanup() {
  "$PY" -m recsys_tools.cli down --workdir "$WORK/lite" >/dev/null 2>&1 || true
  "$PY" -m recsys_tools.cli down --workdir "$WORK/server" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
echo "==> stack on Milvus Lite (port offset 3000)"
"$PY" -m recsys_tools.cli up --data "$DATA" --workdir "$WORK/lite" --artifacts "$ART" \
  --port-offset 3000 --detach --no-web >"$WORK/lite.log" 2>&1 || { tail -30 "$WORK/lite.log"; exit 1; }
echo "==> stack on the Milvus server (port offset 4000)"
RECSYS_RETRIEVER_MILVUS_URI="$MILVUS_URI" RECSYS_RETRIEVER_INDEX_TYPE=FLAT \
  "$PY" -m recsys_tools.cli up --data "$DATA" --workdir "$WORK/server" --artifacts "$ART" \
  --port-offset 4000 --detach --no-web >"$WORK/server.log" 2>&1 || { tail -30 "$WORK/server.log"; exit 1; }
"$PY" "$ROOT/bench/gateway_bench.py" --data "$DATA" --target 127.0.0.1:54051 --port-offset 4000 \
  --label server --baseline 127.0.0.1:53051,12101 --baseline-stack-offset 3000 "$@"
