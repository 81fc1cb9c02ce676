#!/usr/bin/env bash
# What the Dockerfile does, checked without a Docker engine: its build command builds the
# shipped binary, and the image's entrypoint (the binary with OUTRIDER_CONFIG pointing at the
# reference config) parses its flags and accepts that config.
set -euo pipefail
cd "$(dirname "$0")/.."

build=$(sed -n 's/^RUN \(cargo build [^&]*\).*/\1/p' Dockerfile)
[[ "$build" == "cargo build --profile dist --locked " ]] || { echo "unexpected build line in Dockerfile: $build" >&2; exit 1; }
$build
bin="${CARGO_TARGET_DIR:-target}/dist/outrider"
"$bin" --help >/dev/null
"$bin" --version
OUTRIDER_CONFIG=conf/outrider.toml "$bin" check >/dev/null
"$bin" check --config conf/outrider.toml >/dev/null
printf 'dist binary: %s bytes, entrypoint flags and reference config accepted\n' "$(stat -c %s "$bin")"
