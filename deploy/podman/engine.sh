# Sourced by the image scripts: ENGINE = docker when a Docker engine answers, else podman with this
# project's private configuration (CONTAINERS_CONF; nothing global is changed).
if docker info >/dev/null 2>&1; then
  ENGINE=docker
  BUILD_FLAGS=()
else
  ENGINE=podman
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf}"
  # --format docker keeps HEALTHCHECK; pip inside the build reaches the registry through the host's
  # network and trusts the host's CA bundle (and its pip.conf, when there is one).
  BUILD_FLAGS=(--format docker --network host -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  [ -f /etc/pip.conf ] && BUILD_FLAGS+=(-v /etc/pip.conf:/etc/pip.conf:ro)
fi
STANDIN=localhost/debian-python:3.11
