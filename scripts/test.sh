#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs unit and integration tests
# (integration tests need root: real namespaces, cgroups, mounts, Redis, registry).
# Usage: scripts/test.sh [substring-filter ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mapfile -t files < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [ $# -gt 0 ]; then
  sel=()
  for f in "${files[@]}"; do for p in "$@"; do [[ "$f" == *"$p"* ]] && sel+=("$f") && break; done; done
  files=("${sel[@]}")
fi
if [ ${#files[@]} -eq 0 ]; then echo "test: no test files matched" >&2; exit 1; fi
# One file at a time: integration tests share the kernel (cgroups, mounts) and 2 cores.
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
