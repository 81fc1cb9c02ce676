#!/usr/bin/env bash
# The whole test suite: unit, integration (real proxy, real backends, real clients) and
# doc tests. Installs the build dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --all-targets "$@"
# The shipped build, as the Dockerfile makes it, and every fuzz target for a short bounded
# time on its committed corpus (both skipped when only some tests were asked for).
if [[ $# -eq 0 ]]; then
  scripts/dist-check.sh
  SECONDS_PER_TARGET=${FUZZ_SECONDS_PER_TARGET:-30} scripts/fuzz-smoke.sh
fi
