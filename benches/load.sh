#!/usr/bin/env bash
# End-to-end load benchmark: the same wrk load against
#   (a) direct       nginx serving a static file (the backend),
#   (b) nginx-proxy  nginx proxy_pass with upstream keep-alive in front of that backend,
#   (c) floor        the least a Pingora proxy can be: a `ProxyHttp` with only `upstream_peer`
#                    (examples/floor_proxy.rs, 1 worker thread), built with the same cargo
#                    profile and allocator as the Outrider binary measured,
#   (d) outrider     Outrider pass-through (1 worker thread) in front of the same backend,
# then req/s, p50, p99 and the proxy process's CPU time per request. See DESIGN.md,
# "Performance budget", for the numbers these are held against. Ratios are outrider/nginx and
# outrider/floor.
#
# With CACHE=1, every proxy answers from its cache instead (cache hits, the backend idle):
#   (a) direct       as above,
#   (b) nginx-cache  nginx proxy_cache, 200s valid for 1h, proxy_cache_lock on, its cache
#                    files on tmpfs (/dev/shm) as Outrider keeps its store in memory
#                    (benches/load/proxy.cache.nginx.conf),
#   (c) varnish      Varnish, one thread pool, malloc storage, beresp.ttl = 1h
#                    (benches/load/cache.vcl; installed from Debian's `varnish` if missing;
#                    VARNISH=0 leaves it out),
#   (d) floor-memory the ceiling: the floor proxy answering every request with the body from
#                    memory (a header and a body written by Pingora, no cache machinery),
#   (e) floor-cache  the floor proxy with Pingora's own cache (`--cache`: pingora-cache's
#                    HttpCache over its in-memory MemCache, every response stored for 1h),
#                    what a hit costs any product built on pingora-cache,
#   (f) outrider     Outrider with [defaults.cache] enabled, default_ttl 1h
#                    (benches/load/outrider.cache.toml appended to its config).
# One request warms each cache; then each must answer a second one as a hit (nginx
# `X-Cache-Status: HIT`, Varnish `X-Varnish` with two ids, Outrider `Cache-Status: ...; hit`)
# or the script stops, and again after each round's load. The caches reach the backend on a
# second port of it that keeps an access log (benches/load/backend.cache.nginx.conf; `direct`
# is measured on the unlogged one); after each cache's load, its requests that reached the
# backend must be a handful at most. Ratios are outrider/nginx-cache, outrider/varnish,
# outrider/floor-memory and outrider/floor-cache.
#
# With ROUNDS > 1 every ratio is given as the median of the per-round ratios (each round runs
# the contenders back to back, so a round's ratio compares like with like) and their min-max.
#
# With COMPRESS=gzip, wrk sends `Accept-Encoding: gzip`, the body is a JSON API response of the
# same size instead of a run of one letter, and both proxies gzip it at level 6 (nginx:
# benches/load/proxy.gzip.nginx.conf, Outrider: benches/load/outrider.gzip.toml); the backend,
# and so the `direct` row, stays uncompressed. Before loading, curl checks that both proxies
# answer with `Content-Encoding: gzip` and a body that gunzips to the file; after, wrk's bytes
# read per response show that they kept compressing under load. req/s of the proxy rows are
# then compressed responses/s.
#
# With CACHE=1 COMPRESS=gzip, compressed cache hits against compressing on every request:
#   (a) direct       the backend, uncompressed, as above,
#   (b) nginx-proxy  nginx proxy_pass with gzip level 6 (proxy.gzip.nginx.conf), compressing
#                    each response as it passes (nginx's proxy_cache would compress each hit
#                    too: it stores what the backend sent),
#   (c) outrider     Outrider with [defaults.cache] and the gzip policy above, answering from
#                    its cache. It stores the identity body and keeps the gzip encoding the
#                    first gzip hit produced next to it, so later gzip hits send those bytes.
# The identity request warms the cache; then Outrider's answers to `Accept-Encoding: gzip`
# must be hits with `Content-Encoding: gzip` that gunzip to the file, before and after each
# round's load; whether they were sent from the stored encoding (a Content-Length, no chunked
# framing, which an encoding made on the hit has on HTTP/1.1) is logged with them. No Varnish
# and no floor in this mode. The ratio is outrider/nginx-proxy compressed responses/s (the
# "compressed hits >= 50x nginx gzip-6" goal; BODY=100k is where compressing costs).
#
# With LATENCY=1, the added latency of one request at a time: wrk with 1 thread and 1
# connection (CONNECTIONS and THREADS default to 1, so each request is sent when the previous
# answer is in, on one keep-alive connection) against direct, nginx-proxy, floor and outrider
# (pass-through). Each proxy's p50 and p99 minus direct's in the same round is the latency it
# adds (wrk reports whole microseconds at these values); the report gives the median of the
# rounds' differences with min-max, and the "p50 at 1 connection <= 20 us over the backend
# alone" goal. Not with CACHE=1 or COMPRESS=gzip.
#
# Usage:   bash benches/load.sh
#          QUICK=1 bash benches/load.sh          # CI smoke check: 2 s loads
#          COMPRESS=gzip BODY=100k bash benches/load.sh   # compression cost, nginx vs Outrider
#          CACHE=1 bash benches/load.sh          # cache hits: nginx proxy_cache, Varnish, Outrider
#          QUICK=1 CACHE=1 bash benches/load.sh  # its smoke check
#          CACHE=1 COMPRESS=gzip BODY=100k ROUNDS=3 bash benches/load.sh   # gzip hits vs nginx gzip
#          LATENCY=1 ROUNDS=3 bash benches/load.sh   # added latency at 1 connection
# Env:     BODY=1k|100k        response size (default 1k)
#          COMPRESS=off|gzip   response compression by the proxies (default off)
#          CACHE=0|1           cache-hit mode (default 0), see above
#          LATENCY=0|1         added-latency mode (default 0), see above
#          VARNISH=1|0         with CACHE=1: VARNISH=0 skips the varnish contender (default 1; if
#                              it is on and varnishd can't start, the script stops; COMPRESS=gzip
#                              always leaves it out)
#          FLOOR=1|0           FLOOR=0 leaves the floor (or, with CACHE=1, floor-memory and
#                              floor-cache) out;
#                              COMPRESS=gzip always does (the floor does not compress)
#          FLOOR_BIN=PATH      use this floor_proxy binary (default: built as the example
#                              `floor_proxy` with CARGO_PROFILE, target/$CARGO_PROFILE/examples/)
#          BACKEND_MAX_HITS=5  with CACHE=1: requests a cache may send the backend during its load
#          DURATION=10s CONNECTIONS=64 THREADS=2   wrk load (QUICK=1 makes DURATION 2s;
#                              LATENCY=1 makes CONNECTIONS and THREADS 1)
#          WARMUP=3s           warm-up run before each measured one (QUICK=1: 1s)
#          WRK_TIMEOUT=2s      wrk's --timeout, past which a response counts as a socket error
#                              (default wrk's own 2s; with CACHE=1 COMPRESS=gzip 10s: nginx
#                              compressing 100 KiB bodies for 64 connections on a shared core
#                              answers some of them in over 2 s)
#          ROUNDS=1            measure each contender this many times (interleaved); medians
#                              go into the ratios
#          PIN=1               pin servers and wrk to separate CPUs (PIN=0: let the kernel place)
#          CARGO_PROFILE=release   e.g. `dist` for the LTO build (target/dist/outrider)
#          SKIP_BUILD=1        use the existing binary as is
#          OUTRIDER_BIN=PATH   benchmark this outrider binary instead (implies SKIP_BUILD),
#                              e.g. an older build to measure what a change costs
#          OUTRIDER_EXTRA_TOML text appended to Outrider's config (after outrider.gzip.toml,
#                              so with COMPRESS=gzip it must not repeat [defaults.compression])
#          KEEP_TMP=1          keep the temp dir (configs, logs, wrk output) for inspection
#
# Everything listens on 127.0.0.1 only; every load run is bounded by wrk's -d.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/benches/load

QUICK=${QUICK:-0}
BODY=${BODY:-1k}
COMPRESS=${COMPRESS:-off}
CACHE=${CACHE:-0}
LATENCY=${LATENCY:-0}
VARNISH=${VARNISH:-1}
FLOOR=${FLOOR:-1}
BACKEND_MAX_HITS=${BACKEND_MAX_HITS:-5}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-2s}
    WARMUP=${WARMUP:-1s}
else
    DURATION=${DURATION:-10s}
    WARMUP=${WARMUP:-3s}
fi
if [[ $CACHE == 1 && $COMPRESS != off ]]; then
    WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
else
    WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
fi
if [[ $LATENCY == 1 ]]; then
    CONNECTIONS=${CONNECTIONS:-1}
    THREADS=${THREADS:-1}
else
    CONNECTIONS=${CONNECTIONS:-64}
    THREADS=${THREADS:-2}
fi
ROUNDS=${ROUNDS:-1}
PIN=${PIN:-1}
CARGO_PROFILE=${CARGO_PROFILE:-release}
READY_TIMEOUT=${READY_TIMEOUT:-15} # seconds each server gets to come up

case $BODY in
    1k) BODY_BYTES=1024 ;;
    100k) BODY_BYTES=102400 ;;
    *) echo "BODY must be 1k or 100k, not '$BODY'" >&2; exit 2 ;;
esac
case $COMPRESS in
    off) BODY_PATH=/$BODY.txt ;;
    gzip) BODY_PATH=/$BODY.json ;;
    *) echo "COMPRESS must be off or gzip, not '$COMPRESS'" >&2; exit 2 ;;
esac
case $CACHE in
    0 | 1) ;;
    *) echo "CACHE must be 0 or 1, not '$CACHE'" >&2; exit 2 ;;
esac
case $LATENCY in
    0 | 1) ;;
    *) echo "LATENCY must be 0 or 1, not '$LATENCY'" >&2; exit 2 ;;
esac
case $VARNISH in
    0 | 1) ;;
    *) echo "VARNISH must be 0 or 1, not '$VARNISH'" >&2; exit 2 ;;
esac
case $FLOOR in
    0 | 1) ;;
    *) echo "FLOOR must be 0 or 1, not '$FLOOR'" >&2; exit 2 ;;
esac
[[ $COMPRESS != off ]] && FLOOR=0
# Varnish would need its own gzip setup (VCL) to be a like-for-like compressed-hit contender.
[[ $CACHE == 1 && $COMPRESS != off ]] && VARNISH=0
if [[ $LATENCY == 1 && ($CACHE == 1 || $COMPRESS != off) ]]; then
    echo "LATENCY=1 measures pass-through only: not with CACHE=1 or COMPRESS=$COMPRESS" >&2
    exit 2
fi
# ensure_tools (common.sh) installs Varnish only when it is a contender.
NEED_VARNISH=0
[[ $CACHE == 1 && $VARNISH == 1 ]] && NEED_VARNISH=1

SCRIPT_NAME=load.sh
# shellcheck source=benches/load/common.sh
source "$TEMPLATES/common.sh"
build_outrider
[[ $FLOOR == 1 ]] && build_floor

# --- CPU placement -------------------------------------------------------------------------
# With PIN=1 on a machine with 2+ CPUs, every server (backend, nginx proxy, Outrider) lives on
# SERVER_CPU and wrk alone on LOAD_CPU. The server core is then the bottleneck in every run,
# so req/s compares the servers' cost (for the proxies: proxy + the same backend), and the
# server-core busy share, core(%), shows whether that held (~100%) or whether something else
# ran there (well above our own cpu(%) + the backend's).
# Tried and rejected: the proxy alone on one core and backend + wrk on the other. nginx then
# leaves its core ~40% idle and is capped by the backend+wrk core, so req/s came out even
# between nginx and Outrider although Outrider spent 1.6-1.9x the CPU per request.
# Without pinning (PIN=0) the kernel places the three busy processes on two cores as it likes.
# The CPUs we may use, e.g. "0,1" or "0-3,6" expanded into a list.
CPUS=()
IFS=, read -r -a parts <<<"$(taskset -cp $$ | sed 's/.*: //')"
for part in "${parts[@]}"; do
    if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
        for ((i = BASH_REMATCH[1]; i <= BASH_REMATCH[2]; i++)); do CPUS+=("$i"); done
    elif [[ $part =~ ^[0-9]+$ ]]; then
        CPUS+=("$part")
    fi
done
if [[ $PIN == 1 ]] && ((${#CPUS[@]} >= 2)); then
    SERVER_CPU=${CPUS[0]}
    LOAD_CPU=${CPUS[1]}
else
    PIN=0
fi

# Move a process and, for nginx, its workers onto one CPU.
pin() {
    local pid=$1 cpu=$2 p
    [[ $PIN == 1 ]] || return 0
    for p in "$pid" $(children_of "$pid"); do
        taskset -a -cp "$cpu" "$p" >/dev/null
    done
}

on_load_cpu() {
    if [[ $PIN == 1 ]]; then taskset -c "$LOAD_CPU" "$@"; else "$@"; fi
}

# --- ports ---------------------------------------------------------------------------------

# A port nobody listens on (from /proc/net/tcp*, no extra tools) and that we haven't handed out,
# --- servers -------------------------------------------------------------------------------

# A JSON API response of exactly SIZE bytes, the body for COMPRESS=gzip: a page of user records
# (the same keys throughout, values from small vocabularies, ids and hashes that don't repeat),
# which compresses about as well as real API responses do (~5x with gzip -6), unlike a run of
# one letter (~100x+). The pagination cursor at the end takes up the bytes the records leave.
# awk's fixed seed makes it the same file on every run.
make_json() { # size outfile
    awk -v size="$1" 'BEGIN {
        srand(7)
        nf = split("Alice Bob Carol David Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy", first, " ")
        nl = split("Smith Johnson Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson Taylor", last, " ")
        nc = split("Springfield Riverside Franklin Greenville Bristol Clinton Fairview Salem Madison", city, " ")
        nr = split("admin editor viewer billing support", role, " ")
        np = split("free pro team enterprise", plan, " ")
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        head = "{\"meta\":{\"page\":3,\"cursor\":\""
        out = ""; id = 100000
        for (n = 0; ; n++) {
            f = first[int(rand() * nf) + 1]; l = last[int(rand() * nl) + 1]
            id += 1 + int(rand() * 7)
            rec = sprintf("%s{\"id\":%d,\"uuid\":\"%04x%04x-%04x-%04x-%04x%04x\",\"name\":\"%s %s\"," \
                "\"email\":\"%s.%s%d@example.com\",\"active\":%s," \
                "\"created_at\":\"2024-%02d-%02dT%02d:%02d:%02dZ\",\"roles\":[\"%s\"],\"plan\":\"%s\"," \
                "\"address\":{\"street\":\"%d %s St\",\"city\":\"%s\",\"zip\":\"%05d\"}," \
                "\"stats\":{\"logins\":%d,\"score\":%d.%d,\"last_seen\":%d}," \
                "\"links\":{\"self\":\"/api/v2/users/%d\"}}",
                n ? "," : "", id, rand() * 65536, rand() * 65536, rand() * 65536, rand() * 65536,
                rand() * 65536, rand() * 65536, f, l, tolower(f), tolower(l), rand() * 100,
                rand() < 0.8 ? "true" : "false", 1 + rand() * 12, 1 + rand() * 28, rand() * 24,
                rand() * 60, rand() * 60, role[int(rand() * nr) + 1], plan[int(rand() * np) + 1],
                1 + rand() * 9999, city[int(rand() * nc) + 1], city[int(rand() * nc) + 1],
                rand() * 100000, rand() * 5000, rand() * 100, rand() * 10,
                1700000000 + rand() * 30000000, id)
            # The head, the records so far and this one, and the 13 bytes that close the cursor
            # and the meta object, open "data" and close everything: "},"data":[ ... ]}
            if (n && length(head) + length(out) + length(rec) + 13 > size) break
            out = out rec
        }
        cursor = ""
        for (i = length(head) + length(out) + 13; i < size; i++)
            cursor = cursor substr(alnum, int(rand() * 62) + 1, 1)
        printf "%s%s\"},\"data\":[%s]}", head, cursor, out
    }' >"$2"
}

# Static files: exactly BODY_BYTES each, printable text or (COMPRESS=gzip) JSON.
mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$TMP/www/1k.txt"
head -c 102400 /dev/zero | tr '\0' 'b' >"$TMP/www/100k.txt"
if [[ $COMPRESS != off ]]; then
    make_json "$BODY_BYTES" "$TMP/www$BODY_PATH"
    [[ $(wc -c <"$TMP/www$BODY_PATH") == "$BODY_BYTES" ]] ||
        die "make_json wrote $(wc -c <"$TMP/www$BODY_PATH") bytes, not $BODY_BYTES"
fi
# The directory must be traversable by nginx workers if they run as another user.
chmod 755 "$TMP" "$TMP/www"
chmod 644 "$TMP"/www/*


BACKEND_PORT=$(free_port)
PROXY_PORT=$(free_port)
OUTRIDER_PORT=$(free_port)
ADMIN_PORT=$(free_port)
# The backend port the proxies use: the same one `direct` is measured on, except with CACHE=1
# (a second port of the same backend nginx, with an access log; see backend.cache.nginx.conf).
ORIGIN_PORT=$BACKEND_PORT
if [[ $CACHE == 1 ]]; then
    ORIGIN_PORT=$(free_port)
    VARNISH_PORT=$(free_port)
fi
[[ $FLOOR == 1 ]] && FLOOR_PORT=$(free_port)
[[ $FLOOR == 1 && $CACHE == 1 ]] && FLOOR_CACHE_PORT=$(free_port)

render "$TEMPLATES/backend.nginx.conf" "$TMP/backend.conf" \
    DIR="$TMP" PORT="$BACKEND_PORT" USER="$NGINX_USER"
if [[ $CACHE == 1 ]]; then
    render "$TEMPLATES/backend.cache.nginx.conf" "$TMP/backend.cache.conf" DIR="$TMP" PORT="$ORIGIN_PORT"
    # Into the http block, right after its `access_log off;`.
    sed -i "/^ *access_log off;/a\\    include $TMP/backend.cache.conf;" "$TMP/backend.conf"
    grep -q "include $TMP/backend.cache.conf;" "$TMP/backend.conf" ||
        die "could not add backend.cache.nginx.conf to backend.nginx.conf (no 'access_log off;' line?)"
    : >"$TMP/backend.access.log"
fi
start_nginx backend "$TMP/backend.conf"
BACKEND_PID=$LAST_PID
wait_ready backend "http://127.0.0.1:$BACKEND_PORT$BODY_PATH" "$BACKEND_PID" "$TMP/backend.error.log"
if [[ $CACHE == 1 ]]; then
    wait_ready "backend (port for the caches)" "http://127.0.0.1:$ORIGIN_PORT$BODY_PATH" "$BACKEND_PID" \
        "$TMP/backend.error.log"
fi

# With CACHE=1 COMPRESS=gzip, nginx is the compressing proxy of COMPRESS=gzip (the anchor
# Outrider's compressed hits are held against), on the backend port `direct` uses.
if [[ $CACHE == 1 && $COMPRESS == off ]]; then
    NGINX_C=nginx-cache
    # nginx's cache files on tmpfs, as Outrider's store is in memory: else the rows would
    # compare a memory store with a file system's.
    [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] || die "/dev/shm is not a tmpfs here"
    NGINX_CACHE_DIR=$(mktemp -d /dev/shm/outrider-load-nginx-cache.XXXXXX)
    CLEANUP_DIRS+=("$NGINX_CACHE_DIR")
    chmod 755 "$NGINX_CACHE_DIR"
    render "$TEMPLATES/proxy.cache.nginx.conf" "$TMP/nginx-cache.conf" \
        DIR="$TMP" PORT="$PROXY_PORT" BACKEND_PORT="$ORIGIN_PORT" USER="$NGINX_USER" \
        CACHE_DIR="$NGINX_CACHE_DIR"
    start_nginx nginx-cache "$TMP/nginx-cache.conf"
    PROXY_PID=$LAST_PID
    wait_ready nginx-cache "http://127.0.0.1:$PROXY_PORT$BODY_PATH" "$PROXY_PID" "$TMP/nginx-cache.error.log"
else
    NGINX_C=nginx-proxy
    GZIP_INCLUDE=""
    if [[ $COMPRESS == gzip ]]; then
        cp "$TEMPLATES/proxy.gzip.nginx.conf" "$TMP/proxy.gzip.conf"
        GZIP_INCLUDE="include $TMP/proxy.gzip.conf;"
    fi
    render "$TEMPLATES/proxy.nginx.conf" "$TMP/proxy.conf" \
        DIR="$TMP" PORT="$PROXY_PORT" BACKEND_PORT="$BACKEND_PORT" USER="$NGINX_USER" GZIP="$GZIP_INCLUDE"
    start_nginx proxy "$TMP/proxy.conf"
    PROXY_PID=$LAST_PID
    wait_ready nginx-proxy "http://127.0.0.1:$PROXY_PORT$BODY_PATH" "$PROXY_PID" "$TMP/proxy.error.log"
fi

# CACHE=1: Varnish in the foreground (-F) so that it is our child, with its working dir (shared
# memory log, compiled VCL) in the temp dir, no management port (-T none) and no privilege
# drop (-j none: as root it would switch to the varnish users, which can't reach $TMP; as any
# other user there is nothing to drop).
if [[ $CACHE == 1 && $VARNISH == 1 ]]; then
    [[ -x $VARNISHD ]] || die "varnishd not found (install Debian's varnish, or VARNISH=0 to leave it out)"
    render "$TEMPLATES/cache.vcl" "$TMP/cache.vcl" BACKEND_PORT="$ORIGIN_PORT"
    "$VARNISHD" -F -j none -a "127.0.0.1:$VARNISH_PORT" -T none -f "$TMP/cache.vcl" \
        -s malloc,256m -n "$TMP/varnish" -p thread_pools=1 >"$TMP/varnish.log" 2>&1 &
    VARNISH_PID=$!
    PIDS+=("$VARNISH_PID")
    wait_ready "varnish (set VARNISH=0 to leave it out)" "http://127.0.0.1:$VARNISH_PORT$BODY_PATH" "$VARNISH_PID" \
        "$TMP/varnish.log"
fi

# The floor: pass-through to the backend, or (CACHE=1) the body answered from memory.
if [[ $FLOOR == 1 ]]; then
    FLOOR_C=floor
    floor_args=("127.0.0.1:$FLOOR_PORT" "127.0.0.1:$BACKEND_PORT")
    if [[ $CACHE == 1 ]]; then
        FLOOR_C=floor-memory
        floor_args+=(--memory "$TMP/www$BODY_PATH")
    fi
    "$FLOOR_PROXY" "${floor_args[@]}" >"$TMP/floor.log" 2>&1 &
    FLOOR_PID=$!
    PIDS+=("$FLOOR_PID")
    wait_ready "$FLOOR_C" "http://127.0.0.1:$FLOOR_PORT$BODY_PATH" "$FLOOR_PID" "$TMP/floor.log"
fi
# CACHE=1: and the floor with Pingora's own cache, reaching the backend where the caches do.
if [[ -n ${FLOOR_CACHE_PORT:-} ]]; then
    "$FLOOR_PROXY" "127.0.0.1:$FLOOR_CACHE_PORT" "127.0.0.1:$ORIGIN_PORT" --cache >"$TMP/floor-cache.log" 2>&1 &
    FLOOR_CACHE_PID=$!
    PIDS+=("$FLOOR_CACHE_PID")
    wait_ready floor-cache "http://127.0.0.1:$FLOOR_CACHE_PORT$BODY_PATH" "$FLOOR_CACHE_PID" "$TMP/floor-cache.log"
fi

render "$TEMPLATES/outrider.toml" "$TMP/outrider.toml" \
    PORT="$OUTRIDER_PORT" ADMIN_PORT="$ADMIN_PORT" BACKEND_PORT="$ORIGIN_PORT"
if [[ $COMPRESS == gzip ]]; then
    printf '\n' >>"$TMP/outrider.toml"
    cat "$TEMPLATES/outrider.gzip.toml" >>"$TMP/outrider.toml"
fi
if [[ $CACHE == 1 ]]; then
    printf '\n' >>"$TMP/outrider.toml"
    cat "$TEMPLATES/outrider.cache.toml" >>"$TMP/outrider.toml"
fi
[[ -n ${OUTRIDER_EXTRA_TOML:-} ]] && printf '\n%s\n' "$OUTRIDER_EXTRA_TOML" >>"$TMP/outrider.toml"
"$OUTRIDER" --config "$TMP/outrider.toml" >"$TMP/outrider.log" 2>&1 &
OUTRIDER_PID=$!
PIDS+=("$OUTRIDER_PID")
wait_ready outrider "http://127.0.0.1:$ADMIN_PORT/readyz" "$OUTRIDER_PID" "$TMP/outrider.log"

# See "CPU placement".
pin "$BACKEND_PID" "${SERVER_CPU:-}"
pin "$PROXY_PID" "${SERVER_CPU:-}"
[[ -n ${VARNISH_PID:-} ]] && pin "$VARNISH_PID" "${SERVER_CPU:-}" # manager and its cache child
pin "$OUTRIDER_PID" "${SERVER_CPU:-}"
[[ -n ${FLOOR_PID:-} ]] && pin "$FLOOR_PID" "${SERVER_CPU:-}"
[[ -n ${FLOOR_CACHE_PID:-} ]] && pin "$FLOOR_CACHE_PID" "${SERVER_CPU:-}"

declare -A URL=(
    [direct]="http://127.0.0.1:$BACKEND_PORT$BODY_PATH"
    [$NGINX_C]="http://127.0.0.1:$PROXY_PORT$BODY_PATH"
    [outrider]="http://127.0.0.1:$OUTRIDER_PORT$BODY_PATH"
)
declare -A MEASURED_PID=([direct]=$BACKEND_PID [$NGINX_C]=$PROXY_PID [outrider]=$OUTRIDER_PID)
CONTENDERS=(direct "$NGINX_C")
if [[ -n ${VARNISH_PID:-} ]]; then
    URL[varnish]="http://127.0.0.1:$VARNISH_PORT$BODY_PATH"
    MEASURED_PID[varnish]=$VARNISH_PID
    CONTENDERS+=(varnish)
fi
if [[ -n ${FLOOR_PID:-} ]]; then
    URL[$FLOOR_C]="http://127.0.0.1:$FLOOR_PORT$BODY_PATH"
    MEASURED_PID[$FLOOR_C]=$FLOOR_PID
    CONTENDERS+=("$FLOOR_C")
fi
if [[ -n ${FLOOR_CACHE_PID:-} ]]; then
    URL[floor-cache]="http://127.0.0.1:$FLOOR_CACHE_PORT$BODY_PATH"
    MEASURED_PID[floor-cache]=$FLOOR_CACHE_PID
    CONTENDERS+=(floor-cache)
fi
CONTENDERS+=(outrider)
CACHES=()
if [[ $CACHE == 1 ]]; then
    for c in "${CONTENDERS[@]}"; do
        [[ $c == direct || $c == floor-memory || $c == nginx-proxy ]] || CACHES+=("$c")
    done
fi

# Each contender must answer 200 with the whole body before it is worth measuring. With
# CACHE=1 this is also the request that warms each cache.
for c in "${CONTENDERS[@]}"; do
    read -r code size < <(curl -s -o /dev/null --max-time 5 -w '%{http_code} %{size_download}\n' "${URL[$c]}" || echo "000 0")
    [[ $code == 200 && $size == "$BODY_BYTES" ]] ||
        die "$c (${URL[$c]}) answered HTTP $code with $size bytes, expected 200 with $BODY_BYTES"
done
log "all contenders answer 200 with $BODY_BYTES bytes; outrider $("$OUTRIDER" --version 2>/dev/null || true)"

# The value of header NAME (case-insensitive, the last one if repeated) in a curl -D dump.
header() { # file name
    awk -F': *' -v n="$2" 'tolower($1) == tolower(n) { v = $0; sub(/^[^:]*: */, "", v); sub(/\r$/, "", v) }
        END { print v }' "$1"
}

# Whether a cache's response (headers in FILE) says it came from the cache.
is_hit() { # contender headers-file
    case $1 in
        # $upstream_cache_status: HIT (not STALE, UPDATING, REVALIDATED: those had a backend in them).
        # (floor_proxy --cache says so the same way.)
        nginx-cache | floor-cache) [[ $(header "$2" X-Cache-Status) == HIT ]] ;;
        # X-Varnish carries this request's id, and on a hit also the id of the request that
        # fetched the object ("32770 3"); Age is there on misses too, so it proves nothing.
        varnish) [[ $(header "$2" X-Varnish) =~ ^[0-9]+\ [0-9]+$ ]] ;;
        # RFC 9211: `Cache-Status: outrider; hit; ttl=3599` (a miss says `fwd=...` instead).
        outrider) [[ ,$(header "$2" Cache-Status | tr -d ' ' | tr '[:upper:]' '[:lower:]'), =~ \;hit(\;|,) ]] ;;
        *) return 1 ;;
    esac
}

# Whether a response (headers, body files) carries the file: as is, or with COMPRESS=gzip as
# `Content-Encoding: gzip` that gunzips to it.
is_the_file() { # headers-file body-file
    if [[ $COMPRESS == gzip ]]; then
        [[ $(header "$1" Content-Encoding | tr '[:upper:]' '[:lower:]') == gzip ]] &&
            gzip -dc <"$2" 2>/dev/null | cmp -s - "$TMP/www$BODY_PATH"
    else
        cmp -s "$2" "$TMP/www$BODY_PATH"
    fi
}

# A gzip hit sent from a stored encoding has its length up front; one encoded while it is sent
# has no Content-Length and (HTTP/1.1) chunked framing.
from_stored_encoding() { # headers-file
    [[ -n $(header "$1" Content-Length) && $(header "$1" Transfer-Encoding) != *chunked* ]]
}

# CACHE=1: the warmed caches must now serve hits, else the rows would measure a proxy (or a
# cache miss path) under a cache's name; measure() checks again after each load. A few tries:
# a cache may store the body just after it sent it on. With COMPRESS=gzip the hit is asked for
# with `Accept-Encoding: gzip` and must be gzip; the tries go on until one comes from the
# stored encoding (the first gzip hit makes it), and the evidence says whether one did.
check_hit() { # contender when
    local c=$1 when=$2 hit=0 try code size evidence
    local headers=$TMP/hit-$c.headers body=$TMP/hit-$c.body ask=()
    [[ $COMPRESS == gzip ]] && ask=(-H "Accept-Encoding: gzip")
    for ((try = 1; try <= 10; try++)); do
        hit=0
        read -r code size < <(curl -s "${ask[@]}" -D "$headers" -o "$body" --max-time 5 \
            -w '%{http_code} %{size_download}\n' "${URL[$c]}" || echo "000 0")
        if [[ $code == 200 ]] && is_hit "$c" "$headers" && is_the_file "$headers" "$body"; then
            hit=1
            [[ $COMPRESS != gzip ]] && break
            from_stored_encoding "$headers" && break
        fi
        sleep 0.2
    done
    if ((!hit)); then
        sed 's/\r$//; s/^/    /' "$headers" >&2
        die "$c (${URL[$c]}) did not serve a cache hit$([[ $COMPRESS == gzip ]] && echo " in gzip that" \
            "gunzips to the file") $when ($((try - 1)) tries; last answer: HTTP $code, $size bytes;" \
            "headers above)"
    fi
    case $c in
        nginx-cache | floor-cache) evidence="X-Cache-Status: $(header "$headers" X-Cache-Status)" ;;
        varnish) evidence="X-Varnish: $(header "$headers" X-Varnish)" ;;
        outrider) evidence="Cache-Status: $(header "$headers" Cache-Status)" ;;
    esac
    if [[ $COMPRESS == gzip ]]; then
        if from_stored_encoding "$headers"; then
            evidence+="; Content-Encoding: gzip, Content-Length: $(header "$headers" Content-Length)"
            evidence+=" (sent from the stored encoding)"
        else
            evidence+="; Content-Encoding: gzip, no Content-Length (encoded for this hit)"
        fi
    fi
    log "$c serves hits $when ($evidence)"
}
for c in "${CACHES[@]}"; do
    check_hit "$c" "after a warming request"
done

# COMPRESS=gzip: wrk will ask for gzip. The proxies must then answer with Content-Encoding: gzip
# and a body that gunzips to the file, and the backend (`direct`) without any coding; else the
# rows would not measure what they are labelled with.
WRK_ARGS=()
declare -A GZ_BYTES HDR_BYTES # body and header bytes per contender, from this check
if [[ $COMPRESS == gzip ]]; then
    WRK_ARGS=(-H "Accept-Encoding: gzip")
    for c in "${CONTENDERS[@]}"; do
        curl -s --max-time 5 -H "Accept-Encoding: gzip" -D "$TMP/check-$c.headers" \
            -o "$TMP/check-$c.body" "${URL[$c]}" ||
            die "$c (${URL[$c]}) did not answer a request with Accept-Encoding: gzip"
        coding=$(awk -F': *' 'tolower($1) == "content-encoding" { sub(/\r$/, "", $2); print tolower($2) }' \
            "$TMP/check-$c.headers")
        if [[ $c == direct ]]; then
            [[ -z $coding ]] || die "the backend answered with Content-Encoding: $coding; it must stay uncompressed"
            cmp -s "$TMP/check-$c.body" "$TMP/www$BODY_PATH" || die "the backend's body differs from the file"
        else
            [[ $coding == gzip ]] || {
                cat "$TMP/check-$c.headers" >&2
                die "$c answered without Content-Encoding: gzip (got '${coding:-none}', headers above)"
            }
            gzip -dc <"$TMP/check-$c.body" | cmp -s - "$TMP/www$BODY_PATH" ||
                die "$c's gzip body does not decompress to the file (saved in $TMP/check-$c.body)"
        fi
        GZ_BYTES[$c]=$(wc -c <"$TMP/check-$c.body")
        HDR_BYTES[$c]=$(wc -c <"$TMP/check-$c.headers")
    done
    log "with Accept-Encoding: gzip, nginx-proxy sends ${GZ_BYTES[nginx-proxy]} and outrider" \
        "${GZ_BYTES[outrider]} gzip bytes for the $BODY_BYTES-byte body; direct stays uncompressed"
fi

# --- measuring -----------------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# utime+stime in clock ticks of a process and its direct children (nginx master + worker;
# for Outrider, /proc/PID/stat already sums all its threads).
cpu_ticks() {
    local total=0 p stat fields
    for p in "$1" $(children_of "$1"); do
        { stat=$(<"/proc/$p/stat"); } 2>/dev/null || continue
        read -r -a fields <<<"${stat##*) }"
        # After "pid (comm) ", utime and stime are the 12th and 13th fields (0-based 11, 12).
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# "busy,total" ticks of SERVER_CPU from /proc/stat ("0,0" without pinning: column shows "-").
core_ticks() {
    local line
    [[ $PIN == 1 ]] || { echo 0,0; return; }
    line=$(grep "^cpu$SERVER_CPU " /proc/stat)
    # Fields: user nice system idle iowait irq softirq steal; idle + iowait is not busy.
    awk '{ for (i = 2; i <= 9; i++) t += $i; printf "%d,%d", t - $5 - $6, t }' <<<"$line"
}


run_wrk() { # duration url outfile
    on_load_cpu wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --timeout "$WRK_TIMEOUT" --latency "${WRK_ARGS[@]}" \
        "$2" >"$3" 2>&1 ||
        { cat "$3" >&2; die "wrk failed against $2"; }
}

# wrk's "N requests in 5.00s, 1.20GB read": bytes read per response, headers included.
bytes_per_response() {
    awk '/requests in/ {
        v = $(NF - 1); f = 1
        if (v ~ /KB$/) f = 1024; else if (v ~ /MB$/) f = 1048576; else if (v ~ /GB$/) f = 1073741824
        else if (v ~ /TB$/) f = 1099511627776
        sub(/[A-Z]+$/, "", v); if ($1 > 0) printf "%.0f", v * f / $1; else print "nan" }' "$1"
}

declare -A RPS P50 P99 P50_US P99_US CPU_US CPU_PCT CORE_PCT WIRE # keyed "contender round"
declare -A ORIGIN_HITS # CACHE=1: backend requests during a cache's warm-up + load, same keys
ERRORS=0

# CACHE=1: lines in the access log of the backend port the caches use (one per request).
origin_requests() { wc -l <"$TMP/backend.access.log"; }

measure() { # contender round
    local c=$1 r=$2 out="$TMP/wrk-$1-$2.txt" before after core_before core_after t0 t1 requests origin0
    [[ $CACHE == 1 ]] && origin0=$(origin_requests)
    run_wrk "$WARMUP" "${URL[$c]}" "$TMP/warmup-$c-$r.txt"
    before=$(cpu_ticks "${MEASURED_PID[$c]}")
    core_before=$(core_ticks)
    t0=$EPOCHREALTIME
    run_wrk "$DURATION" "${URL[$c]}" "$out"
    t1=$EPOCHREALTIME
    core_after=$(core_ticks)
    after=$(cpu_ticks "${MEASURED_PID[$c]}")

    RPS[$c $r]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    P50[$c $r]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99[$c $r]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    P50_US[$c $r]=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    P99_US[$c $r]=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    requests=$(awk '/requests in/ {print $1}' "$out")
    WIRE[$c $r]=$(bytes_per_response "$out")
    [[ -n ${RPS[$c $r]} && -n $requests && ${P50_US[$c $r]} =~ ^[0-9]+$ && ${P99_US[$c $r]} =~ ^[0-9]+$ ]] ||
        { cat "$out" >&2; die "could not parse wrk output for $c"; }
    CPU_US[$c $r]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "nan" }')
    # Share of one core the measured process used: near 100% means it was the bottleneck.
    CPU_PCT[$c $r]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.0f", t / hz / (b - a) * 100 }')
    CORE_PCT[$c $r]=$(awk -v x="$core_before" -v y="$core_after" 'BEGIN {
        split(x, a, ","); split(y, b, ",")
        if (b[2] > a[2]) printf "%.0f", (b[1] - a[1]) * 100 / (b[2] - a[2]); else print "-" }')

    if [[ " ${CACHES[*]} " == *" $c "* ]]; then
        check_hit "$c" "after round $r's load"
        ORIGIN_HITS[$c $r]=$(($(origin_requests) - origin0))
        if ((${ORIGIN_HITS[$c $r]} > BACKEND_MAX_HITS)); then
            ERRORS=1
            printf '!! %s (round %s): %s requests reached the backend during its warm-up and load (at most %s allowed): not cache hits\n' \
                "$c" "$r" "${ORIGIN_HITS[$c $r]}" "$BACKEND_MAX_HITS" >&2
        fi
    fi

    # wrk only reports these lines when something went wrong.
    if grep -qE '^ *(Socket errors|Non-2xx or 3xx responses)' "$out"; then
        ERRORS=1
        printf '!! %s (round %s): %s\n' "$c" "$r" "$(grep -E '^ *(Socket errors|Non-2xx)' "$out" | sed 's/^ *//' | paste -sd ';' -)" >&2
    fi
}

# Other busy processes (a cargo build...) share these CPUs and skew every number: say so.
# One second of /proc/stat, while our servers sit idle (the load average lags too much).
idle_percent() {
    local a b
    read -r -a a </proc/stat
    sleep 1
    read -r -a b </proc/stat
    # Fields 1..8: user nice system idle iowait irq softirq steal.
    awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
        split(a, x); split(b, y); for (i = 2; i <= 9; i++) t += y[i] - x[i]
        printf "%.0f", t ? (y[5] - x[5]) * 100 / t : 100 }'
}
IDLE=$(idle_percent)
((IDLE >= 90)) || log "warning: CPUs only ${IDLE}% idle before starting; other processes will skew the numbers"
log "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --timeout $WRK_TIMEOUT --latency (warm-up $WARMUP)," \
    "body $BODY, $ROUNDS round(s), pinning $([[ $PIN == 1 ]] && echo "servers on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU" || echo off)"
for ((r = 1; r <= ROUNDS; r++)); do
    for c in "${CONTENDERS[@]}"; do
        log "round $r: $c"
        measure "$c" "$r"
    done
done

# --- report --------------------------------------------------------------------------------


echo
# LATENCY=1 shows latencies in microseconds, the unit the added latency is judged in.
LAT_UNIT=ms
[[ $LATENCY == 1 ]] && LAT_UNIT=us
printf '%-16s %10s %10s %10s %12s %8s %8s\n' contender req/s "p50($LAT_UNIT)" "p99($LAT_UNIT)" 'cpu(us/req)' \
    'cpu(%)' 'core(%)'
declare -A MED_RPS MED_P99 MED_CPU
for c in "${CONTENDERS[@]}"; do
    rps=() p99=() cpu=()
    for ((r = 1; r <= ROUNDS; r++)); do
        label=$c
        ((ROUNDS > 1)) && label="$c #$r"
        p50_shown=${P50[$c $r]} p99_shown=${P99[$c $r]}
        [[ $LATENCY == 1 ]] && p50_shown=${P50_US[$c $r]} p99_shown=${P99_US[$c $r]}
        printf '%-16s %10s %10s %10s %12s %8s %8s\n' "$label" "${RPS[$c $r]}" "$p50_shown" "$p99_shown" \
            "${CPU_US[$c $r]}" "${CPU_PCT[$c $r]}" "${CORE_PCT[$c $r]}"
        rps+=("${RPS[$c $r]}") p99+=("${P99[$c $r]}") cpu+=("${CPU_US[$c $r]}")
    done
    MED_RPS[$c]=$(median "${rps[@]}")
    MED_P99[$c]=$(median "${p99[@]}")
    MED_CPU[$c]=$(median "${cpu[@]}")
done
if ((ROUNDS > 1)); then
    if [[ $LATENCY == 1 ]]; then
        echo "(added latency: the median of the $ROUNDS rounds' differences, min-max in brackets)"
    else
        echo "(ratios: the median of the $ROUNDS rounds' ratios, min-max in brackets)"
    fi
fi

# The median over the rounds of A's microsecond latency (P50_US or P99_US) minus B's in the
# same round, and with several rounds their min-max: "14 (12-19)".
round_difference() { # metric a b
    local -n values=$1
    local a=$2 b=$3 r per=()
    for ((r = 1; r <= ROUNDS; r++)); do per+=("$((${values[$a $r]} - ${values[$b $r]}))"); done
    if ((ROUNDS > 1)); then
        printf '%s (%s-%s)' "$(median "${per[@]}")" "$(printf '%s\n' "${per[@]}" | sort -g | head -1)" \
            "$(printf '%s\n' "${per[@]}" | sort -g | tail -1)"
    else
        printf '%s' "${per[0]}"
    fi
}

# The ratio A/B of one metric (RPS, P99 or CPU_US) as the median of the per-round ratios, and
# with several rounds their min-max: "1.31 (1.27-1.35)".
round_ratio() { # metric a b
    local -n values=$1
    local a=$2 b=$3 r per=()
    for ((r = 1; r <= ROUNDS; r++)); do per+=("$(ratio "${values[$a $r]}" "${values[$b $r]}")"); done
    if ((ROUNDS > 1)); then
        printf '%s (%s-%s)' "$(median "${per[@]}")" "$(printf '%s\n' "${per[@]}" | sort -g | head -1)" \
            "$(printf '%s\n' "${per[@]}" | sort -g | tail -1)"
    else
        printf '%s' "${per[0]}"
    fi
}
ratio_line() { # a b
    echo "ratios: $1/$2 req/s = $(round_ratio RPS "$1" "$2")  p99 = $(round_ratio P99 "$1" "$2")" \
        " cpu/req = $(round_ratio CPU_US "$1" "$2")"
}
if [[ $LATENCY == 1 ]]; then
    for c in "${CONTENDERS[@]}"; do
        [[ $c == direct ]] && continue
        printf 'added latency over direct, %s: p50 %s us, p99 %s us\n' "$c" \
            "$(round_difference P50_US "$c" direct)" "$(round_difference P99_US "$c" direct)"
    done
    # What Outrider adds to Pingora's own proxy loop, at one request at a time.
    [[ -n ${FLOOR_C:-} ]] && printf 'added latency over floor, outrider: p50 %s us, p99 %s us\n' \
        "$(round_difference P50_US outrider "$FLOOR_C")" "$(round_difference P99_US outrider "$FLOOR_C")"
    added=() alone=()
    for ((r = 1; r <= ROUNDS; r++)); do
        added+=("$((${P50_US[outrider $r]} - ${P50_US[direct $r]}))") alone+=("${P50_US[direct $r]}")
    done
    added_p50=$(median "${added[@]}")
    echo "goal: outrider's p50 at 1 connection <= 20 us over the backend alone ($(median "${alone[@]}") us):" \
        "$added_p50 us, $(awk -v a="$added_p50" 'BEGIN { print (a <= 20) ? "met" : "not met" }')"
elif [[ $CACHE == 1 ]]; then
    for c in "${CACHES[@]}"; do
        [[ $c == outrider ]] && continue
        ratio_line outrider "$c"
    done
    [[ $COMPRESS == gzip ]] && ratio_line outrider nginx-proxy
    [[ -n ${FLOOR_C:-} ]] && ratio_line outrider "$FLOOR_C"
    if [[ -n ${FLOOR_CACHE_PID:-} ]]; then
        # What pingora-cache's hit path costs (floor-cache over floor-memory), and what
        # Outrider's policy costs on top of it (outrider over floor-cache).
        ratio_line floor-cache "$FLOOR_C"
        cpu_of() { # contender: median CPU us per request over the rounds
            local v=() r
            for ((r = 1; r <= ROUNDS; r++)); do v+=("${CPU_US[$1 $r]}"); done
            median "${v[@]}"
        }
        echo "cpu per hit (medians, us): outrider $(cpu_of outrider), floor-cache $(cpu_of floor-cache)," \
            "$FLOOR_C $(cpu_of "$FLOOR_C")"
    fi
    echo "ratios: outrider/direct req/s = $(round_ratio RPS outrider direct)"
    summary=""
    for c in "${CACHES[@]}"; do
        n=""
        for ((r = 1; r <= ROUNDS; r++)); do n+="${n:+/}${ORIGIN_HITS[$c $r]}"; done
        summary+="${summary:+, }$c $n"
    done
    echo "cache: requests that reached the backend during each cache's warm-up and load" \
        "(per round, at most $BACKEND_MAX_HITS allowed): $summary"
else
    ratio_line outrider nginx-proxy
    [[ -n ${FLOOR_C:-} ]] && ratio_line outrider "$FLOOR_C"
    [[ -n ${FLOOR_C:-} ]] && ratio_line "$FLOOR_C" nginx-proxy
    echo "ratios: outrider/direct req/s = $(round_ratio RPS outrider direct)"
fi
echo "cpu: user+sys time of the process serving that row (the backend nginx for 'direct'," \
    "the proxy for the others) per request, and as a share of one core (${CLK_TCK} Hz ticks);" \
    "core: how busy the servers' CPU was, whoever used it."

if [[ $COMPRESS == gzip ]]; then
    # The curl check saw one response; wrk's bytes read show whether the proxies kept
    # compressing under load (a proxy falling back to identity would read like `direct`).
    declare -A MED_WIRE
    for c in "${CONTENDERS[@]}"; do
        wire=()
        for ((r = 1; r <= ROUNDS; r++)); do wire+=("${WIRE[$c $r]}"); done
        MED_WIRE[$c]=$(median "${wire[@]}")
    done
    echo
    echo "compression (gzip level 6): the $BODY_BYTES-byte JSON body is ${GZ_BYTES[nginx-proxy]} bytes" \
        "gzipped by nginx-proxy, ${GZ_BYTES[outrider]} by outrider; bytes read per response under load" \
        "(headers included): direct ${MED_WIRE[direct]}, nginx-proxy ${MED_WIRE[nginx-proxy]}," \
        "outrider ${MED_WIRE[outrider]}"
    served="compressed responses/s"
    [[ $CACHE == 1 ]] && served="compressed responses/s (outrider's from its cache)"
    echo "$served: nginx-proxy ${MED_RPS[nginx-proxy]}, outrider ${MED_RPS[outrider]} (medians);" \
        "outrider/nginx = $(round_ratio RPS outrider nginx-proxy)" \
        " cpu/req = $(round_ratio CPU_US outrider nginx-proxy)"
    if [[ $CACHE == 1 ]]; then
        per=()
        for ((r = 1; r <= ROUNDS; r++)); do per+=("$(ratio "${RPS[outrider $r]}" "${RPS[nginx-proxy $r]}")"); done
        hits_ratio=$(median "${per[@]}")
        echo "goal: compressed hits >= 50x nginx gzip-6: ${hits_ratio}x," \
            "$(awk -v x="$hits_ratio" 'BEGIN { print (x >= 50) ? "met" : "not met" }')"
        # A hit is cheap enough that something besides its own CPU can bound outrider's row (wrk
        # reading every response on its one core, other load on the server core: its cpu(%)
        # then stays well below nginx's): CPU per response says how many hits the server core
        # pays for one nginx gzip response.
        echo "by CPU per response: nginx-proxy/outrider = $(round_ratio CPU_US nginx-proxy outrider)" \
            "(nginx-proxy ${MED_CPU[nginx-proxy]} us, outrider ${MED_CPU[outrider]} us)"
    fi
    for c in nginx-proxy outrider; do
        # Headers (and chunk framing) come on top of the body: compare with the headers the
        # check saw plus a size halfway between the gzip and the identity body.
        if awk -v w="${MED_WIRE[$c]}" -v g="${GZ_BYTES[$c]}" -v h="${HDR_BYTES[$c]}" -v b="$BODY_BYTES" \
            'BEGIN { exit !(w > h + g + (b - g) / 2) }'; then
            ERRORS=1
            printf '!! %s read %s bytes per response under load, nearer the %s-byte identity body than its %s gzip bytes\n' \
                "$c" "${MED_WIRE[$c]}" "$BODY_BYTES" "${GZ_BYTES[$c]}" >&2
        fi
    done
fi

if ((ERRORS)); then
    KEEP_TMP=1
    die "wrk reported socket errors or non-2xx responses, or a proxy stopped compressing or" \
        "caching under load (see above; raw output in $TMP)"
fi
