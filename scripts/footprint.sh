#!/usr/bin/env bash
# What the shipped binary weighs: its stripped size, its idle RSS, and its RSS holding 10,000
# cached objects of 4 KiB. Builds the `dist` profile (as the Dockerfile does) unless
# OUTRIDER_BIN names a binary. Loopback only; needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${OUTRIDER_BIN:-}
if [[ -z "$BIN" ]]; then
  cargo build --profile dist --quiet
  BIN=target/dist/outrider
fi
OBJECTS=${OBJECTS:-10000}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

backend=$(port); data=$(port); admin=$(port)
mkdir -p "$work/www"
head -c 4096 /dev/urandom | base64 -w0 | head -c 4096 >"$work/www/object"
(cd "$work/www" && exec python3 -m http.server "$backend" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
cat >"$work/outrider.toml" <<CONF
[server]
listen = "127.0.0.1:$data"
upgrade_sock = "$work/upgrade.sock"
[admin]
listen = "127.0.0.1:$admin"
[log]
level = "warn"
[upstreams.app]
endpoints = ["127.0.0.1:$backend"]
[defaults.cache]
enabled = true
default_ttl = "1h"
[defaults.compression]
enabled = false
CONF
"$BIN" --config "$work/outrider.toml" 2>"$work/outrider.log" &
pid=$!
pids+=($pid)
wait_port "$backend"; wait_port "$data"; wait_port "$admin"
sleep 1
size=$(stat -c %s "$BIN")
idle=$(rss_kib "$pid")

python3 - "$data" "$OBJECTS" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    c.request("GET", f"/object?n={i}")
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"object {i}: status {r.status}")
PY
cache_json=$(curl -fsS "http://127.0.0.1:$admin/cache")
objects=$(echo "$cache_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"])')
accounted=$(echo "$cache_json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
# jemalloc returns freed pages to the OS after its 10 s decay; measure what stays.
sleep "${SETTLE:-11}"
full=$(rss_kib "$pid")

printf 'binary (stripped): %.1f MiB (%s bytes)\n' "$(echo "$size / 1048576" | bc -l)" "$size"
printf 'idle RSS: %.1f MiB\n' "$(echo "$idle / 1024" | bc -l)"
printf 'RSS with %s cached objects of 4 KiB: %.1f MiB (the cache accounts for %.1f MiB of them)\n' "$objects" "$(echo "$full / 1024" | bc -l)" "$(echo "$accounted / 1048576" | bc -l)"
