#!/bin/sh
# Run the retriever's `milvus_server` tests against a real Milvus standalone server (the `milvus`
# PyPI wheel, 2.3.5) inside a private network namespace: that server binds every interface, so it
# must only ever see a loopback interface. Needs root (or user namespaces) for `unshare -n`.
#
#   sh services/retriever/scripts/milvus_server_tests.sh           # from the repository root
#   sh services/retriever/scripts/milvus_server_tests.sh bench --sizes 4000,100000 --index HNSW
#                                  # bench/retriever_bench.py against that server instead of pytest
#   sh services/retriever/scripts/milvus_server_tests.sh run CMD [ARGS...]
#                                  # any command, in the namespace, with MILVUS_URI set to the server
#
# The wheel goes into a throw-away directory (not the venv); the server runs in its own process
# group, killed at the end.
set -eu
if [ -z "${IN_PRIVATE_NETNS:-}" ]; then
  exec env IN_PRIVATE_NETNS=1 unshare -n sh "$0" "$@"
fi
ip link set lo up
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
WORK=$(mktemp -d /tmp/milvus-server-tests.XXXXXX)
# Inside the namespace there is no network: fetch the wheel beforehand with
#   .venv/bin/pip download --no-deps -d /tmp/milvus-wheel milvus==2.3.5
WHEEL_DIR=${MILVUS_WHEEL_DIR:-/tmp/milvus-wheel}
"$PY" -m pip install -q --no-deps --no-index --find-links "$WHEEL_DIR" --target "$WORK/site" milvus==2.3.5
cleanup() {
  echo "stopping Milvus (process group $MPID)"
  # the server's own process group (setsid below): the wrapper, milvus and its children
  if [ -n "${MPID:-}" ]; then
    "$PY" -c "import os, signal; os.killpg($MPID, signal.SIGTERM)" 2>/dev/null || true
    sleep 5
    "$PY" -c "import os, signal; os.killpg($MPID, signal.SIGKILL)" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PYTHONPATH="$WORK/site" setsid "$PY" -c "import sys; sys.argv = ['milvus-server', '--data', '$WORK/data']
from milvus import main
main()" >"$WORK/server.log" 2>&1 &
MPID=$!
i=0
until "$PY" -c "import socket; socket.create_connection(('127.0.0.1', 19530), timeout=1)" 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -gt 180 ] && { echo "Milvus did not start; log:"; tail -50 "$WORK/server.log"; exit 1; }
  sleep 1
done
sleep 5
if [ "${1:-}" = "bench" ]; then
  shift
  OMP_NUM_THREADS=1 "$PY" "$ROOT/bench/retriever_bench.py" --milvus-uri http://127.0.0.1:19530 "$@"
elif [ "${1:-}" = "run" ]; then
  shift
  MILVUS_URI=http://127.0.0.1:19530 "$@"
else
  OMP_NUM_THREADS=1 RECSYS_TEST_MILVUS_URI=http://127.0.0.1:19530 \
    "$ROOT/.venv/bin/pytest" -q -m milvus_server tests/integration/retriever "$@"
fi
