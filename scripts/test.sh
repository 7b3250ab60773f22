#!/usr/bin/env bash
# The project's checks: generated code fresh, lint, format, types, tests.
# Usage: scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "==> ruff check"; .venv/bin/ruff check .
echo "==> ruff format --check"; .venv/bin/ruff format --check .
echo "==> mypy"; .venv/bin/mypy libs/core/src/recsys_core services/*/src gateway/src web/src
echo "==> pytest"; .venv/bin/python -m pytest "$@"
