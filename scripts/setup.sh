#!/usr/bin/env bash
# Set up a development/runtime environment in .venv from nothing:
# every package of the repo (editable) with the pinned versions of
# requirements/constraints.txt. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
echo "==> installing packages (pinned by requirements/constraints.txt)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements/constraints.txt \
  -e libs/api \
  -e libs/core \
  -e libs/data \
  -e libs/tools \
  -e "services/catalog[embedded]" \
  -e "services/retriever[embedded]" \
  -e "services/embedder[train,triton,export]" \
  -e gateway \
  -e "web[test]" \
  -r requirements/dev.txt
echo "==> ok: .venv ready ($(.venv/bin/python --version))"
