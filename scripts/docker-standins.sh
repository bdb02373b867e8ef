#!/usr/bin/env bash
# Local stand-ins for the base images the Dockerfile and compose file name, for machines where
# Docker Hub cannot be reached. Each tag that neither exists locally nor pulls is built from
# Debian bookworm packages (debootstrap --variant=minbase, then `docker import`):
#   python:3.11-slim   Debian's Python 3.11 with venv and pip (`python` on PATH, as upstream)
#   nginx:1.27-alpine  Debian's nginx 1.22 (so the proxy config must not need a newer nginx)
# The host's extra CA certificates are installed in them, so that pip inside a build can verify
# the package index through a TLS-inspecting egress. Needs root and a running Docker engine.
set -euo pipefail

PYTHON_TAG=python:3.11-slim
NGINX_TAG=nginx:1.27-alpine
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORK=${STANDIN_WORK:-$(mktemp -d /tmp/latentserve-standins.XXXXXX)}

missing=()
for tag in "$PYTHON_TAG" "$NGINX_TAG"; do
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag: present"
  elif timeout 30 docker pull -q "$tag" >/dev/null 2>&1; then
    echo "base image $tag: pulled"
  else
    missing+=("$tag")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "registry unreachable for ${missing[*]}: building Debian stand-ins"

command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
root="$WORK/rootfs"
# One root filesystem for both stand-ins: `docker import` of the same tarball shares its layer.
debootstrap --variant=minbase \
  --include=ca-certificates,python3,python3-venv,python3-pip,python-is-python3,nginx-light \
  bookworm "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }

if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
# As in the official nginx image: logs to the container's stdout and stderr.
ln -sf /dev/stdout "$root/var/log/nginx/access.log"
ln -sf /dev/stderr "$root/var/log/nginx/error.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

tar -C "$root" -c . >"$WORK/rootfs.tar"
for tag in "${missing[@]}"; do
  case "$tag" in
    "$PYTHON_TAG")
      docker import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' \
        "$WORK/rootfs.tar" "$tag" >/dev/null ;;
    "$NGINX_TAG")
      docker import \
        --change 'EXPOSE 80' \
        --change 'CMD ["nginx", "-g", "daemon off;"]' \
        "$WORK/rootfs.tar" "$tag" >/dev/null ;;
  esac
  echo "base image $tag: stand-in built from Debian bookworm"
done
