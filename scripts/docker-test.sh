#!/usr/bin/env bash
# `make docker-test`: build and run the project's image and compose stack on a real Docker
# engine, then assert what they must do (tests/docker/). Installs Debian's docker.io, starts
# its dockerd in the background (no systemd here) with a data root of its own, builds stand-in
# base images when Docker Hub cannot be reached, and at the end, pass or fail, stops dockerd by
# its pid and removes its data root. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTEST=${PYTEST:-.venv/bin/pytest}
STATE=$(mktemp -d /tmp/latentserve-docker.XXXXXX)
export DOCKER_HOST="unix://$STATE/docker.sock"

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

dockerd_pid=
cleanup() {
  status=$?
  if [ -n "$dockerd_pid" ]; then
    # Whatever a failed test left running goes with the engine.
    docker ps -q | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  # Mounts left under the data root would make its removal fail.
  grep -o " $STATE[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$STATE"
  exit "$status"
}
trap cleanup EXIT

dockerd --data-root "$STATE/data" --exec-root "$STATE/exec" --pidfile "$STATE/dockerd.pid" \
  --host "$DOCKER_HOST" >"$STATE/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || { tail -n 30 "$STATE/dockerd.log" >&2; exit 1; }
echo "dockerd $(docker version -f '{{.Server.Version}}') running (pid $dockerd_pid)"

scripts/docker-standins.sh
echo "engine and base images ready after ${SECONDS} s"
LATENTSERVE_DOCKER_TEST=1 "$PYTEST" -p no:cacheprovider tests/docker "$@"
echo "docker-test passed after ${SECONDS} s; figures in bench/out/docker-test.json"
