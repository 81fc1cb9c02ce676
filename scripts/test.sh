#!/usr/bin/env bash
# The whole test suite: unit, integration (real proxy, real backends, real clients) and
# doc tests. Installs the build dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --all-targets "$@"
# The shipped build, as the Dockerfile makes it (skipped when only some tests were asked for).
if [[ $# -eq 0 ]]; then
  scripts/dist-check.sh
fi
