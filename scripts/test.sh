#!/usr/bin/env bash
# The whole test suite: unit, integration (real proxy, real backends, real clients) and
# doc tests. Installs the build dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --all-targets "$@"
