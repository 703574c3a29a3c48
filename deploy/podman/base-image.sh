#!/usr/bin/env bash
# A stand-in for python:3.11-slim built from Debian packages, for machines that cannot pull from Docker Hub.
set -euo pipefail
source "$(dirname "$0")/engine.sh"
tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
mmdebstrap --quiet --variant=minbase \
  --include=python3.11,python3.11-venv,python-is-python3,ca-certificates,passwd bookworm "$tar"
$ENGINE import "$tar" "$STANDIN" >/dev/null
echo "built $STANDIN"
