#!/usr/bin/env bash
# What holding a response for its ETag costs (issue #5): the same requests through two Outrider
# instances in front of one nginx backend,
#   hold    the defaults: a 200 GET without ETag is held (up to etag.max_body, 1 MiB), hashed,
#           and sent with a generated ETag (the buffered leg);
#   stream  `[defaults.etag] generate = false`: the body streams through Pingora's leg untouched.
# It reports
#   - time to first byte and to the last byte, p50 and p99 over SAMPLES sequential keep-alive
#     requests (one curl), for 1 KiB, 16 KiB, 256 KiB and 1 MiB bodies;
#   - the same for 1 MiB from a backend that sends it at 512 KiB/s (nginx limit_rate, which lets the first second's
#     share go at once: the body takes about one second) (the price of holding a slow body:
#     the client sees nothing until the last byte arrived);
#   - memory: RSS at idle and peak RSS (VmHWM) after CONNECTIONS concurrent clients downloaded the
#     1 MiB body for DURATION, i.e. up to CONNECTIONS bodies held at once.
#
# Usage:   bash benches/hold.sh
#          QUICK=1 bash benches/hold.sh      # smoke check: fewer samples, 2 s load
# Env:     SAMPLES=400 SLOW_SAMPLES=5 CONNECTIONS=64 DURATION=5s CARGO_PROFILE=release
#          SKIP_BUILD=1, OUTRIDER_BIN=PATH, KEEP_TMP=1 as in load.sh
#
# Everything listens on 127.0.0.1 only; the load run is bounded by wrk's -d.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/benches/load

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    SAMPLES=${SAMPLES:-50}
    SLOW_SAMPLES=${SLOW_SAMPLES:-2}
    DURATION=${DURATION:-2s}
else
    SAMPLES=${SAMPLES:-400}
    SLOW_SAMPLES=${SLOW_SAMPLES:-5}
    DURATION=${DURATION:-5s}
fi
CONNECTIONS=${CONNECTIONS:-64}
CARGO_PROFILE=${CARGO_PROFILE:-release}
READY_TIMEOUT=${READY_TIMEOUT:-15}

SCRIPT_NAME=hold.sh
# shellcheck source=benches/load/common.sh
source "$TEMPLATES/common.sh"
build_outrider

# --- servers -------------------------------------------------------------------------------

declare -A SIZE=([1k]=1024 [16k]=16384 [256k]=262144 [1m]=1048576)
SIZES=(1k 16k 256k 1m)
mkdir -p "$TMP/www"
for s in "${SIZES[@]}"; do
    head -c "${SIZE[$s]}" /dev/zero | tr '\0' 'h' >"$TMP/www/$s.txt"
done
chmod 755 "$TMP" "$TMP/www"
chmod 644 "$TMP"/www/*

BACKEND_PORT=$(free_port)
render "$TEMPLATES/backend.nginx.conf" "$TMP/backend.conf" \
    DIR="$TMP" PORT="$BACKEND_PORT" USER="$NGINX_USER"
start_nginx backend "$TMP/backend.conf"
BACKEND_PID=$LAST_PID
wait_ready backend "http://127.0.0.1:$BACKEND_PORT/untagged/1k.txt" "$BACKEND_PID" "$TMP/backend.error.log"

LEGS=(hold stream)
declare -A PORT PID
for leg in "${LEGS[@]}"; do
    PORT[$leg]=$(free_port)
    admin=$(free_port)
    render "$TEMPLATES/outrider.toml" "$TMP/$leg.toml" \
        PORT="${PORT[$leg]}" ADMIN_PORT="$admin" BACKEND_PORT="$BACKEND_PORT"
    [[ $leg == stream ]] && printf '\n[defaults.etag]\ngenerate = false\n' >>"$TMP/$leg.toml"
    "$OUTRIDER" --config "$TMP/$leg.toml" >"$TMP/$leg.log" 2>&1 &
    PID[$leg]=$!
    PIDS+=("${PID[$leg]}")
    wait_ready "outrider ($leg)" "http://127.0.0.1:$admin/readyz" "${PID[$leg]}" "$TMP/$leg.log"
done

# The rows must measure what they are labelled with: the backend sends no ETag under
# /untagged/ and /slow/, hold adds one to every size (1 MiB is exactly max_body, still held),
# stream sends none.
for leg in "${LEGS[@]}"; do
    for s in "${SIZES[@]/#/untagged/}" slow/1m; do
        url="http://127.0.0.1:${PORT[$leg]}/$s.txt"
        read -r code size < <(curl -s -D "$TMP/check.headers" -o /dev/null --max-time 10 \
            -w '%{http_code} %{size_download}\n' "$url" || echo "000 0")
        want=${SIZE[${s#*/}]}
        [[ $code == 200 && $size == "$want" ]] || die "$url answered $code with $size bytes, expected 200 with $want"
        if grep -qi '^etag:' "$TMP/check.headers"; then tagged=1; else tagged=0; fi
        [[ $leg == hold && $tagged == 1 ]] || [[ $leg == stream && $tagged == 0 ]] ||
            die "$url: ETag present=$tagged does not fit the $leg leg"
    done
done
log "both instances answer; hold tags every body, stream none; outrider $("$OUTRIDER" --version 2>/dev/null || true)"

# --- time to first and last byte -----------------------------------------------------------

# p50 and p99 of a column of seconds, printed in microseconds.
percentiles() { # file column
    sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END {
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
        printf "%.0f %.0f\n", v[i50] * 1e6, v[i99] * 1e6 }'
}

# One curl, N sequential requests on one keep-alive connection; the first one (connect) dropped.
time_requests() { # url count outfile
    local urls=() i
    for ((i = 0; i <= $2; i++)); do urls+=(-o /dev/null "$1"); done
    curl -s --max-time 120 -w '%{time_starttransfer} %{time_total}\n' "${urls[@]}" |
        tail -n +2 >"$3"
}

printf '\n%-13s %-7s %12s %12s %12s %12s\n' body leg 'ttfb p50' 'ttfb p99' 'total p50' 'total p99'
declare -A TTFB50
for s in "${SIZES[@]/#/untagged/}" slow/1m; do
    n=$SAMPLES
    [[ $s == slow/* ]] && n=$SLOW_SAMPLES
    for leg in "${LEGS[@]}"; do
        out="$TMP/times-${s//\//-}-$leg.txt"
        time_requests "http://127.0.0.1:${PORT[$leg]}/$s.txt" "$n" "$out"
        read -r f50 f99 < <(percentiles "$out" 1)
        read -r t50 t99 < <(percentiles "$out" 2)
        TTFB50[$s $leg]=$f50
        printf '%-13s %-7s %10s µs %10s µs %10s µs %10s µs\n' "$s" "$leg" "$f50" "$f99" "$t50" "$t99"
    done
done
echo "($SAMPLES sequential keep-alive requests per row, $SLOW_SAMPLES for slow/1m; curl's time_starttransfer and time_total)"

# --- memory --------------------------------------------------------------------------------

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

echo
printf '%-7s %14s %26s %12s\n' leg 'idle RSS' "peak RSS, $CONNECTIONS x 1 MiB" 'responses'
for leg in "${LEGS[@]}"; do
    idle=$(status_kib "${PID[$leg]}" VmRSS)
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:${PORT[$leg]}/untagged/1m.txt" >"$TMP/wrk-$leg.txt" 2>&1 ||
        { cat "$TMP/wrk-$leg.txt" >&2; die "wrk failed against $leg"; }
    peak=$(status_kib "${PID[$leg]}" VmHWM)
    responses=$(awk '/requests in/ { print $1 }' "$TMP/wrk-$leg.txt")
    grep -qE '^ *(Socket errors|Non-2xx)' "$TMP/wrk-$leg.txt" &&
        log "warning: $leg: $(grep -E '^ *(Socket errors|Non-2xx)' "$TMP/wrk-$leg.txt" | paste -sd ';' -)"
    printf '%-7s %10.1f MiB %22.1f MiB %12s\n' "$leg" "$(awk -v k="$idle" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$peak" 'BEGIN { print k / 1024 }')" "$responses"
done
echo "(peak RSS is the process's high-water mark since start; wrk -t2 -c$CONNECTIONS -d$DURATION on the 1 MiB body)"
