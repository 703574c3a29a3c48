#!/usr/bin/env bash
# A stand-in for python:3.11-slim built from Debian packages, for machines that cannot pull from Docker Hub.
set -euo pipefail
source "$(dirname "$0")/engine.sh"
tar=$(mktemp --suffix=.tar)
trap 'rm -f "$tar"' EXIT
# As slim as python:3.11-slim: the merged-/usr hook instead of the usrmerge package (which pulls in 54 MB of
# Perl), and dpkg leaving out documentation, manual pages and translations as Debian's -slim images do
# (129 MB instead of 225 MB).
mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --include=python3.11,python3.11-venv,python-is-python3,ca-certificates,passwd bookworm "$tar"
$ENGINE import "$tar" "$STANDIN" >/dev/null
echo "built $STANDIN"
