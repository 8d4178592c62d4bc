#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs unit and integration tests
# (integration tests need root: real namespaces, cgroups, mounts, Redis, registry), then
# a second pass, "cgroup v2 (VM)", of the engine's tests inside cgroup-v2-only VMs
# (scripts/vm-test.sh), since the host may mount cgroup v1 only.
# Usage: scripts/test.sh [substring-filter ...]
#   With a filter only the host pass runs, unless FAASBOX_VM=1. FAASBOX_VM=0 skips the
#   VM pass (said so in the output); FAASBOX_VM_KERNELS="6.1 6.12" picks its kernels.
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
rc=0
# --test-timeout: a test that hangs (a container that never reports, a cleanup waiting on
# it) fails with its name after 15 minutes instead of stalling CI to its limit.
node --test --test-concurrency=1 --test-reporter=spec --test-timeout=900000 "${files[@]}" || rc=$?

vm=${FAASBOX_VM:-$([ $# -eq 0 ] && echo 1 || echo 0)}
if [ "$vm" != 1 ]; then
  [ $# -eq 0 ] && echo "test: cgroup v2 (VM): SKIPPED (FAASBOX_VM=$vm)"
  exit "$rc"
fi
# What runs in the VM: everything that makes containers or cgroups against the kernel
# (the engine, its cgroup drivers, zygote, seeds, the isolation proofs), the pool
# tests that create containers and idle-container freezing end to end. The rest does not touch cgroups and would only add time:
# measured: these files took 860-910 s per kernel in the VM (2 vCPUs, host load ~12).
vm_files=(dist/test/worker/engine/*.test.js dist/worker/engine/cgroups/*.test.js dist/worker/engine/process.test.js
  dist/test/e2e/hostile.test.js dist/test/e2e/pools.test.js dist/test/e2e/workers.test.js dist/test/e2e/freeze.test.js)
# --test-timeout: a hung file fails with its name instead of stalling CI to its limit.
vm_cmd="node --test --test-concurrency=1 --test-reporter=spec --test-timeout=900000 ${vm_files[*]}"
for k in ${FAASBOX_VM_KERNELS:-6.1 6.12}; do
  echo "test: ===== cgroup v2 (VM), kernel $k ====="
  st=0; out=$(bash scripts/vm-test.sh --prepare --kernel "$k" 2>&1) || st=$?
  if [ "$st" != 0 ]; then
    echo "$out"
    if [ "$st" = 3 ]; then echo "test: cgroup v2 (VM), kernel $k: SKIPPED: $(echo "$out" | sed -n 's/^vm-test: cannot make the VM here: //p' | tail -n 1)"; continue; fi
    echo "test: cgroup v2 (VM), kernel $k: FAILED to prepare the VM"; rc=1; continue
  fi
  vrc=0
  bash scripts/vm-test.sh --kernel "$k" --timeout 2400 -- "$vm_cmd" || vrc=$?
  if [ "$vrc" = 0 ]; then echo "test: cgroup v2 (VM), kernel $k: passed"; else echo "test: cgroup v2 (VM), kernel $k: FAILED (exit $vrc)"; rc=1; fi
done
exit "$rc"
