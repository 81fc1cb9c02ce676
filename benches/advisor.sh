#!/usr/bin/env bash
# What the traffic advisor costs on the request path: the same wrk load against two Outriders
# built from the same binary, in front of the same nginx backend, one with the advisor on
# (the default) and one with `[admin] advisor = false`; rounds interleaved, medians reported.
# The route has no cache and 1 KiB GET bodies answered 200: the advisor's worst case, since it
# hashes every such body (for its cacheability estimate) besides counting the request.
#
# With BASE_BIN=PATH it is an A/B of two builds instead: both sides run the same config
# (advisor on), "on" with the binary under test and "off" with BASE_BIN (e.g. a copy of
# target/dist/outrider from before a change), so a change's cost or gain on a pass-through
# request is measured side by side. OUTRIDER_EXTRA_TOML is appended to both configs: with a
# cache table there, the A/B is of cache hits (the round's warm-up makes the one miss).
#
# Usage:   bash benches/advisor.sh
#          QUICK=1 bash benches/advisor.sh      # 2 s rounds
#          BASE_BIN=/tmp/outrider-before CARGO_PROFILE=dist SKIP_BUILD=1 bash benches/advisor.sh
#          OUTRIDER_EXTRA_TOML=$'[defaults.cache]\nenabled = true\ndefault_ttl = "1h"' \
#              BASE_BIN=/tmp/outrider-before CARGO_PROFILE=dist SKIP_BUILD=1 bash benches/advisor.sh
# Env:     ROUNDS=5 DURATION=5s WARMUP=2s CONNECTIONS=64 THREADS=2
#          PIN=1               servers on the first CPU, wrk on the second (PIN=0: kernel places)
#          CARGO_PROFILE=release (e.g. dist), SKIP_BUILD=1, OUTRIDER_BIN=PATH, KEEP_TMP=1
#
# Everything listens on 127.0.0.1 only; every load run is bounded by wrk's -d.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/benches/load
CARGO_PROFILE=${CARGO_PROFILE:-release}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
if [[ ${QUICK:-0} == 1 ]]; then DURATION=2s WARMUP=1s; fi
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PIN=${PIN:-1}
READY_TIMEOUT=20

SCRIPT_NAME=advisor.sh
# shellcheck source=benches/load/common.sh
source "$TEMPLATES/common.sh"
build_outrider

SERVER_CPU=0
LOAD_CPU=1
if [[ $PIN == 1 ]] && (($(nproc) < 2)); then PIN=0; fi
pin() { [[ $PIN == 1 ]] && for p in "$1" $(children_of "$1"); do taskset -a -cp "$SERVER_CPU" "$p" >/dev/null; done; return 0; }
on_load_cpu() { if [[ $PIN == 1 ]]; then taskset -c "$LOAD_CPU" "$@"; else "$@"; fi; }

mkdir -p "$TMP/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$TMP/www/1k.txt"
chmod 755 "$TMP" "$TMP/www"
chmod 644 "$TMP"/www/*
BACKEND_PORT=$(free_port)
render "$TEMPLATES/backend.nginx.conf" "$TMP/backend.conf" DIR="$TMP" PORT="$BACKEND_PORT" USER="$NGINX_USER"
start_nginx backend "$TMP/backend.conf"
pin "$LAST_PID"

declare -A URL PID
for variant in on off; do
    port=$(free_port)
    admin=$(free_port)
    render "$TEMPLATES/outrider.toml" "$TMP/outrider-$variant.toml" \
        PORT="$port" ADMIN_PORT="$admin" BACKEND_PORT="$BACKEND_PORT"
    [[ -n ${OUTRIDER_EXTRA_TOML:-} ]] && printf '\n%s\n' "$OUTRIDER_EXTRA_TOML" >>"$TMP/outrider-$variant.toml"
    binary=$OUTRIDER
    if [[ -n ${BASE_BIN:-} ]]; then
        [[ $variant == off ]] && binary=$BASE_BIN
    elif [[ $variant == off ]]; then
        sed -i 's/^\[admin\]$/[admin]\nadvisor = false/' "$TMP/outrider-$variant.toml"
    fi
    "$binary" --config "$TMP/outrider-$variant.toml" >"$TMP/outrider-$variant.log" 2>&1 &
    PID[$variant]=$!
    PIDS+=("${PID[$variant]}")
    wait_ready "outrider-$variant" "http://127.0.0.1:$admin/readyz" "${PID[$variant]}" "$TMP/outrider-$variant.log"
    pin "${PID[$variant]}"
    URL[$variant]="http://127.0.0.1:$port/1k.txt"
    # The switch must be what differs: /advice says whether this one observes.
    enabled=$(curl -sf "http://127.0.0.1:$admin/advice" | awk -F': *' '/"enabled"/ { gsub(/[ ,]/, "", $2); print $2 }')
    want=$([[ $variant == on || -n ${BASE_BIN:-} ]] && echo true || echo false)
    [[ $enabled == "$want" ]] || die "outrider-$variant reports advisor enabled=$enabled, expected $want"
done

# utime+stime of a process in clock ticks (/proc/PID/stat sums all of Outrider's threads).
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
    local stat fields
    stat=$(<"/proc/$1/stat")
    read -r -a fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}

declare -A RPS CPU_US
for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which goes first, so a drift within a round does not favour one side.
    order=(on off)
    ((r % 2 == 0)) && order=(off on)
    for variant in "${order[@]}"; do
        on_load_cpu wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${URL[$variant]}" >/dev/null 2>&1
        out="$TMP/wrk-$variant-$r.txt"
        before=$(cpu_ticks "${PID[$variant]}")
        on_load_cpu wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "${URL[$variant]}" >"$out" 2>&1 ||
            { cat "$out" >&2; die "wrk failed against outrider-$variant"; }
        grep -qE '^ *(Socket errors|Non-2xx)' "$out" && { cat "$out" >&2; die "errors under load (outrider-$variant)"; }
        after=$(cpu_ticks "${PID[$variant]}")
        RPS[$variant $r]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
        CPU_US[$variant $r]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$(awk '/requests in/ {print $1}' "$out")" \
            'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "nan" }')
    done
    log "round $r: advisor on ${RPS[on $r]} req/s (${CPU_US[on $r]} us CPU/req), off ${RPS[off $r]} req/s (${CPU_US[off $r]} us)"
done

ratios=() cpu_ratios=() on=() off=() on_cpu=() off_cpu=()
for ((r = 1; r <= ROUNDS; r++)); do
    on+=("${RPS[on $r]}")
    off+=("${RPS[off $r]}")
    on_cpu+=("${CPU_US[on $r]}")
    off_cpu+=("${CPU_US[off $r]}")
    ratios+=("$(ratio "${RPS[on $r]}" "${RPS[off $r]}")")
    cpu_ratios+=("$(ratio "${CPU_US[on $r]}" "${CPU_US[off $r]}")")
done
sorted() { printf '%s\n' "$@" | sort -g | paste -sd ' ' -; }
[[ -n ${BASE_BIN:-} ]] && printf '\n"on": %s, "off": %s (BASE_BIN)' "$OUTRIDER" "$BASE_BIN"
printf '\n%-8s %12s %14s   (medians of %s interleaved rounds)\n' advisor "req/s" "CPU us/req" "$ROUNDS"
printf '%-8s %12s %14s\n' on "$(median "${on[@]}")" "$(median "${on_cpu[@]}")" \
    off "$(median "${off[@]}")" "$(median "${off_cpu[@]}")"
printf 'req/s on/off:      %s (per round, sorted: %s)\n' "$(median "${ratios[@]}")" "$(sorted "${ratios[@]}")"
printf 'CPU/req on/off:    %s (per round, sorted: %s)\n' "$(median "${cpu_ratios[@]}")" "$(sorted "${cpu_ratios[@]}")"
