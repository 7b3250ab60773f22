#!/usr/bin/env bash
# The tables of docs/reliability.md from one command (issue #16): the fault suite (each service
# and PostgreSQL killed, stopped or hung under load) and the hostile-input suite against one
# `recsys up` stack, then both tables printed and written to the file given (default
# reliability-report.md). Usage: scripts/reliability_report.sh [OUT.md] [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-reliability-report.md}
shift || true
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
RECSYS_RELIABILITY_REPORT="$(realpath -m "$OUT")" .venv/bin/python -m pytest -p no:cacheprovider -q \
  tests/e2e/test_faults.py tests/e2e/test_hostile_input.py "$@"
echo "==> $OUT"
cat "$OUT"
