#!/usr/bin/env bash
# The project's checks: generated code fresh, lint, format, types, tests.
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "==> ruff check"; .venv/bin/ruff check .
echo "==> ruff format --check"; .venv/bin/ruff format --check .
echo "==> mypy"; .venv/bin/mypy libs/core/src/recsys_core libs/data/src/recsys_data libs/tools/src/recsys_tools services/*/src gateway/src web/src
echo "==> pytest"; .venv/bin/python -m pytest "$@"

# The retriever against a real Milvus standalone server (the PyPI `milvus` wheel). That server binds
# every interface, so it only runs inside a private network namespace (loopback only).
echo "==> retriever on a real Milvus server (private network namespace)"
WHEEL_DIR=${MILVUS_WHEEL_DIR:-/tmp/milvus-wheel}
if ! unshare -n true 2>/dev/null; then
  echo "    skipped: cannot create a network namespace here (unshare -n)"
elif ! .venv/bin/python -m pip download -q --no-deps -d "$WHEEL_DIR" milvus==2.3.5; then
  echo "    skipped: could not download the milvus==2.3.5 wheel"
else
  MILVUS_WHEEL_DIR="$WHEEL_DIR" sh services/retriever/scripts/milvus_server_tests.sh
fi
