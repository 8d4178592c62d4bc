#!/usr/bin/env bash
# Brings faasbox up on this machine (as root): installs what it needs, builds, and runs
# the all-in-one stack in the foreground. Extra arguments go to `faasbox up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/faasbox.js up "$@"
