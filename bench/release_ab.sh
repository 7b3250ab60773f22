#!/bin/sh
# Old release vs this working tree, the whole stack, through the public gateway, in one run:
# bench/gateway_bench.py --baseline with the old stack's rows labelled 'base' and this tree's 'new',
# alternating at every level and form, the echo floor beside them, per-hop tables of each stack.
#
#   sh bench/release_ab.sh REV [DATA] [gateway_bench args...]
#   sh bench/release_ab.sh 68a460e ../shared/data/movielens/ml-100k.zip --concurrency 1,16,64 --duration 10
#
# REV is checked out into a temporary git worktree and run from there with PYTHONPATH (the venv's
# packages are this tree's editable installs; PYTHONPATH puts the old sources first). Both stacks
# use the same model artifact (ARTIFACTS, default ./artifacts: trained once if missing), embedded
# PostgreSQL and Milvus Lite, at port offsets 3000 (old) and 4000 (new); both are up at once, only
# the one being measured gets load.
set -eu
REV=${1:?usage: sh bench/release_ab.sh REV [DATA] [gateway_bench args...]}
shift
DATA=${1:-ml-100k}
[ $# -gt 0 ] && shift
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
ART=${ARTIFACTS:-$ROOT/artifacts}
WORK=$(mktemp -d /tmp/release-ab.XXXXXX)
git worktree add -q --detach "$WORK/old" "$REV"
OLD="$WORK/old"
OLDPP="$OLD/libs/api/src:$OLD/libs/core/src:$OLD/libs/data/src:$OLD/libs/tools/src:$OLD/services/catalog/src:$OLD/services/embedder/src:$OLD/services/retriever/src"
OLDPP="$OLDPP:$OLD/gateway/src:$OLD/web/src"
cleanup() {
  PYTHONPATH="$OLDPP" "$PY" -m recsys_tools.cli down --workdir "$WORK/old-stack" >/dev/null 2>&1 || true
  "$PY" -m recsys_tools.cli down --workdir "$WORK/new-stack" >/dev/null 2>&1 || true
  git worktree remove --force "$OLD" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
echo "==> old stack ($REV, port offset 3000)"
PYTHONPATH="$OLDPP" "$PY" -m recsys_tools.cli up --data "$DATA" --workdir "$WORK/old-stack" \
  --artifacts "$ART" --port-offset 3000 --detach --no-web >"$WORK/old.log" 2>&1 \
  || { tail -30 "$WORK/old.log"; exit 1; }
echo "==> new stack (this tree, port offset 4000)"
"$PY" -m recsys_tools.cli up --data "$DATA" --workdir "$WORK/new-stack" --artifacts "$ART" \
  --port-offset 4000 --detach --no-web >"$WORK/new.log" 2>&1 || { tail -30 "$WORK/new.log"; exit 1; }
"$PY" "$ROOT/bench/gateway_bench.py" --data "$DATA" --target 127.0.0.1:54051 --port-offset 4000 \
  --label new --baseline 127.0.0.1:53051,12101 --baseline-stack-offset 3000 "$@"
