#!/usr/bin/env bash
# Re-resolve the digests of the base images in every Dockerfile (the multi-arch index digest
# of the tag written before the @), and rewrite the pins in place. Needs registry access and
# `docker buildx` (or `crane`). Review the diff, rebuild, and commit.
#   bash deploy/scripts/pin-base-images.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
files=(services/catalog/Dockerfile services/retriever/Dockerfile services/embedder/Dockerfile
       services/embedder/Dockerfile.cuda gateway/Dockerfile)
resolve() {
  if command -v crane >/dev/null 2>&1; then
    crane digest "$1"
  else
    docker buildx imagetools inspect "$1" --format '{{json .Manifest}}' \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])'
  fi
}
for f in "${files[@]}"; do
  grep -oE '^ARG [A-Z_]+_IMAGE=[^@ ]+@sha256:[0-9a-f]{64}' "$f" | while read -r line; do
    ref=${line#*=}; tag=${ref%@*}
    digest=$(resolve "$tag")
    echo "$f: $tag -> $digest"
    sed -i "s|${tag}@sha256:[0-9a-f]\{64\}|${tag}@${digest}|" "$f"
  done
done
