#!/usr/bin/env bash
# make image / image-train: build the serving image (or DOCKERFILE=Dockerfile.train, the training image) (TensorFlow-free unless WITH_TENSORFLOW=1) with Docker or podman.
# BASE_IMAGE defaults to python:3.11-slim when it can be pulled, else the Debian stand-in (base-image.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/podman/engine.sh
IMAGE="${1:-localhost/alexnet-service}"
base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if $ENGINE image inspect "$STANDIN" >/dev/null 2>&1; then
    base=$STANDIN
  elif timeout 60 $ENGINE pull -q docker.io/library/python:3.11-slim >/dev/null 2>&1; then
    base=docker.io/library/python:3.11-slim
  else
    echo "python:3.11-slim cannot be pulled here: building the Debian stand-in (make base-image)"
    deploy/podman/base-image.sh
    base=$STANDIN
  fi
fi
started=$(date +%s)
$ENGINE build "${BUILD_FLAGS[@]}" -f "${DOCKERFILE:-Dockerfile}" --build-arg BASE_IMAGE="$base" \
  --build-arg WITH_TENSORFLOW="${WITH_TENSORFLOW:-0}" -t "$IMAGE" .
size=$($ENGINE image inspect "$IMAGE" --format '{{.Size}}')
echo "image $IMAGE on $base: $((size / 1000000)) MB, built in $(( $(date +%s) - started )) s"
