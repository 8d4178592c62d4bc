#!/usr/bin/env bash
# Installs what faasbox and its tests need on a fresh Debian/Ubuntu machine (as root),
# then installs npm dependencies and builds (the C stage and the TypeScript).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need+=(redis-server)
have busybox || need+=(busybox-static)
have runc || need+=(runc)
have cc || need+=(gcc)
# libc.a: the C stage and the tests' probe program are linked statically.
dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
# Debian's interpreter by path: the python3 image is built from it and its standard library
# (libpython3-stdlib comes with the package), never from another python3 on PATH.
[ -x /usr/bin/python3 ] && [ -d /usr/lib/python3.11 ] || need+=(python3)
have tar || need+=(tar)
have make || need+=(make)
have ip || need+=(iproute2)
have promtool || need+=(prometheus)
# bench image's peer beside skopeo+umoci (its registry, docker-registry, the puller's tests install).
have podman || need+=(podman)
have unshare || need+=(util-linux)
# Image layers (issue 12): zstd-compressed layers are decompressed by Debian's zstd; the tests
# make images with umoci and push them with skopeo, third-party tools, not faasbox.
have zstd || need+=(zstd)
have umoci || need+=(umoci)
have skopeo || need+=(skopeo)
# The puller's tests (issue 12) run a real registry (distribution 2.8) with htpasswd (bcrypt)
# and token auth (an ES256 key whose self-signed certificate openssl makes).
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
have htpasswd || need+=(apache2-utils)
have openssl || need+=(openssl)
# Bridge mode's egress policy (worker/engine/network/nft.ts) and the tests' net guard.
have nft || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install: ${need[*]}" >&2; exit 1; fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts these as system services on install; faasbox runs its own instances.
  for svc in redis-server prometheus docker-registry; do
    if [ -d /run/systemd/system ]; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  done
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
else
  npm run -s build
fi
