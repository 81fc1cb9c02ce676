#!/usr/bin/env bash
# What the Dockerfile does, checked without a Docker engine: its build command builds the
# shipped binary, and the image's entrypoint (the binary with OUTRIDER_CONFIG pointing at the
# reference config) parses its flags and accepts that config. Then the footprint ceilings this
# release ships under: a stripped binary of at most 13 MB, and at most 15 MB of RSS when idle.
# The binary's target was 12 MB until the shared cache tier linked a Redis client (about
# 0.85 MB with its URL parser and our tier code); getting back under 12 MB is open work.
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
size=$(stat -c %s "$bin")
printf 'dist binary: %s bytes, entrypoint flags and reference config accepted\n' "$size"
(( size <= 13000000 )) || { echo "the dist binary is $size bytes, over the 13 MB ceiling" >&2; exit 1; }

# Idle RSS: the binary serving a minimal policy, nothing in flight. Bash only (a fresh machine may
# lack python and curl): ports are picked at random among those nothing answers on.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p; while :; do p=$((20000 + RANDOM % 40000)); listening "$p" || { echo "$p"; return; }; done; }
work=$(mktemp -d)
data=$(free_port); admin=$(free_port)
cat >"$work/outrider.toml" <<CONF
[server]
listen = "127.0.0.1:$data"
upgrade_sock = "$work/upgrade.sock"
[admin]
listen = "127.0.0.1:$admin"
[upstreams.app]
endpoints = ["127.0.0.1:9"]
CONF
"$bin" --config "$work/outrider.toml" 2>"$work/outrider.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do listening "$admin" && listening "$data" && break; sleep 0.1; done
listening "$admin" || { cat "$work/outrider.log" >&2; echo "the dist binary did not start" >&2; exit 1; }
sleep 1 # past start-up: the background services have run their first round
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
printf 'dist binary idle RSS: %s KiB\n' "$rss_kib"
(( rss_kib * 1024 <= 15000000 )) || { echo "idle RSS is $rss_kib KiB, over the 15 MB ceiling" >&2; exit 1; }
