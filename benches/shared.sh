#!/usr/bin/env bash
# The shared cache tier end to end: the same wrk load (random GETs over N distinct URLs)
# against three Outriders in front of one nginx backend, in interleaved rounds:
#   local    [cache] big enough for every URL, filled by [cache.warm]: every request a local hit;
#   shared   [cache.shared] on a local redis-server, its own [cache] too small to keep more than
#            a dozen objects: nearly every request a local miss and a shared (Redis) hit;
#   origin   no cache: every request goes to the backend.
# Prints req/s, p50 and p99 per mode (medians over rounds) and the ratios shared/local and
# shared/origin. After each shared run, the shared hits counted by Outrider must be at least
# 90% of wrk's requests, or the script stops (else it would be measuring something else).
#
# Usage:   bash benches/shared.sh
#          QUICK=1 bash benches/shared.sh        # 2 s loads, 1 round
# Env:     URLS=2000 BODY=1k DURATION=10s WARMUP=2s CONNECTIONS=32 THREADS=2 ROUNDS=3
#          CARGO_PROFILE=release  SKIP_BUILD=1  OUTRIDER_BIN=PATH  KEEP_TMP=1
# Everything listens on 127.0.0.1 only; redis-server runs without persistence.
set -euo pipefail

SCRIPT_NAME=shared.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/load/common.sh
source "$ROOT/benches/load/common.sh"

QUICK=${QUICK:-0}
URLS=${URLS:-2000}
BODY=${BODY:-1k}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-2s}
    WARMUP=${WARMUP:-1s}
    ROUNDS=${ROUNDS:-1}
else
    DURATION=${DURATION:-10s}
    WARMUP=${WARMUP:-2s}
    ROUNDS=${ROUNDS:-3}
fi
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
CARGO_PROFILE=${CARGO_PROFILE:-release}
READY_TIMEOUT=${READY_TIMEOUT:-30}

ensure_tools
command -v redis-server >/dev/null || die "redis-server is missing (scripts/deps.sh installs it)"
build_outrider

# --- backend: nginx serving $URLS files of $BODY ----------------------------------------
case $BODY in
1k) size=1024 ;;
100k) size=102400 ;;
*) die "BODY is 1k or 100k" ;;
esac
mkdir -p "$TMP/www/item"
head -c "$size" /dev/zero | tr '\0' 'x' >"$TMP/body"
for ((i = 1; i <= URLS; i++)); do ln -s "$TMP/body" "$TMP/www/item/$i"; done
BACKEND_PORT=$(free_port)
render "$ROOT/benches/load/backend.nginx.conf" "$TMP/backend.conf" \
    "DIR=$TMP" "PORT=$BACKEND_PORT" "USER=$NGINX_USER"
start_nginx backend "$TMP/backend.conf"
wait_ready backend "http://127.0.0.1:$BACKEND_PORT/item/1" "$LAST_PID" "$TMP/backend.error.log"

# --- redis -------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
    sleep 0.05
done

# --- the three Outriders ------------------------------------------------------------------
declare -A PORT ADMIN
start_outrider() { # mode cache-toml
    local mode=$1 extra=$2 port admin warm
    port=$(free_port)
    admin=$(free_port)
    PORT[$mode]=$port
    ADMIN[$mode]=$admin
    render "$ROOT/benches/load/outrider.toml" "$TMP/outrider-$mode.toml" \
        "PORT=$port" "ADMIN_PORT=$admin" "BACKEND_PORT=$BACKEND_PORT"
    printf '%s\n' "${extra//@PORT@/$port}" >>"$TMP/outrider-$mode.toml"
    "$OUTRIDER" --config "$TMP/outrider-$mode.toml" >"$TMP/outrider-$mode.log" 2>&1 &
    PIDS+=("$!")
    wait_ready "outrider ($mode)" "http://127.0.0.1:$admin/healthz" "$!" "$TMP/outrider-$mode.log"
}
warm_urls() { # the [cache.warm] list for an Outrider on @PORT@
    local i list=""
    for ((i = 1; i <= URLS; i++)); do list+="\"http://127.0.0.1:@PORT@/item/$i\", "; done
    printf 'urls = [%s]\nconcurrency = 8\n' "${list%, }"
}
CACHED_ROUTE='[defaults.cache]
enabled = true
default_ttl = "1h"'
start_outrider local "[cache]
max_size = \"256MiB\"
[cache.warm]
$(warm_urls)
$CACHED_ROUTE"
start_outrider shared "[cache]
max_size = \"64KiB\"
max_object_size = \"16KiB\"
[cache.shared]
url = \"redis://127.0.0.1:$REDIS_PORT/0\"
key_prefix = \"bench:\"
timeout = \"25ms\"
[cache.warm]
$(warm_urls)
$CACHED_ROUTE"
start_outrider origin ""

metric() { # mode name labels -> value (0 if absent)
    curl -sf "http://127.0.0.1:${ADMIN[$1]}/metrics" |
        awk -v n="$2" -v l="$3" '$1 == n l || (l == "" && $1 == n) { v = $2 } END { print v + 0 }'
}
for mode in local shared; do
    deadline=$((SECONDS + 120))
    until (($(metric "$mode" outrider_cache_warm_fetches_total '{result="ok"}') >= URLS)); do
        ((SECONDS < deadline)) || die "$mode: warm fetches did not finish"
        sleep 0.2
    done
done
log "warmed: $URLS URLs in the local cache, and in Redis through the shared tier"

# --- load ------------------------------------------------------------------------------
cat >"$TMP/random.lua" <<LUA
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
    return wrk.format("GET", "/item/" .. math.random(1, $URLS))
end
LUA
declare -A RPS P50 P99
run() { # mode round
    local mode=$1 r=$2 out="$TMP/wrk-$1-$2.txt" url="http://127.0.0.1:${PORT[$1]}"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$TMP/random.lua" "$url" >/dev/null 2>&1
    local before
    before=$(metric "$mode" outrider_cache_shared_requests_total '{op="get",result="hit"}')
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$TMP/random.lua" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed against $mode"; }
    grep -q 'Non-2xx\|Socket errors' "$out" && { cat "$out" >&2; die "$mode: errors under load"; }
    RPS[$mode $r]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$mode $r]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    P99[$mode $r]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    if [[ $mode == shared ]]; then
        local requests hits
        requests=$(awk '/requests in/ {print $1}' "$out")
        hits=$(($(metric shared outrider_cache_shared_requests_total '{op="get",result="hit"}') - before))
        ((hits * 10 >= requests * 9)) ||
            die "shared: only $hits of $requests requests were shared-tier hits"
    fi
    log "$mode round $r: ${RPS[$mode $r]} req/s, p50 ${P50[$mode $r]} ms, p99 ${P99[$mode $r]} ms"
}
log "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $URLS URLs of $BODY, $ROUNDS round(s)"
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in local shared origin; do run "$mode" "$r"; done
done

printf '\n%-8s %12s %10s %10s\n' mode req/s p50_ms p99_ms
declare -A MED
for mode in local shared origin; do
    rps=() p50=() p99=()
    for ((r = 1; r <= ROUNDS; r++)); do
        rps+=("${RPS[$mode $r]}") p50+=("${P50[$mode $r]}") p99+=("${P99[$mode $r]}")
    done
    MED[$mode]=$(median "${rps[@]}")
    printf '%-8s %12.0f %10.3f %10.3f\n' "$mode" "${MED[$mode]}" "$(median "${p50[@]}")" "$(median "${p99[@]}")"
done
printf '\nreq/s ratios: shared/local %s, shared/origin %s\n' \
    "$(ratio "${MED[shared]}" "${MED[local]}")" "$(ratio "${MED[shared]}" "${MED[origin]}")"
