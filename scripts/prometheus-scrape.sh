#!/usr/bin/env bash
# A real Prometheus server scrapes Outrider's /metrics and its query API returns the request rate.
#
# Installs Debian's `prometheus` package when missing, builds outrider, and runs, all on
# loopback and under a temporary directory:
#   backend     python3 -m http.server
#   outrider    data plane in front of it, admin plane scraped by Prometheus every second
#   prometheus  /usr/bin/prometheus directly (not the system service), temporary TSDB
# then sends bounded load (curl in a loop for LOAD_SECONDS) and polls
#   sum(rate(outrider_requests_total[30s]))
# until Prometheus answers a positive rate. Exits non-zero if it never does, or if the
# outrider target is not "up". Every process it started is stopped on exit.
#
# Environment: PROFILE=debug|release (default debug), LOAD_SECONDS (default 10),
# QUERY_DEADLINE_SECONDS (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-debug}
LOAD_SECONDS=${LOAD_SECONDS:-10}
QUERY_DEADLINE_SECONDS=${QUERY_DEADLINE_SECONDS:-60}

log() { printf '[prometheus-scrape] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

if [ ! -x /usr/bin/prometheus ]; then
    log "installing the Debian prometheus package"
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends prometheus
fi
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"

case "$PROFILE" in
    release) cargo build --release --bin outrider; OUTRIDER=target/release/outrider ;;
    debug) cargo build --bin outrider; OUTRIDER=target/debug/outrider ;;
    *) die "PROFILE must be debug or release" ;;
esac

work=$(mktemp -d)
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        for f in "$work"/*.log; do
            [ -f "$f" ] && { log "--- $(basename "$f") (last 20 lines)"; tail -n 20 "$f" >&2; }
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `curl URL` succeeds, or dies after $2 seconds.
wait_for() {
    local url=$1 seconds=$2 what=$3
    local deadline=$((SECONDS + seconds))
    until curl -fsS -o /dev/null "$url" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what did not come up at $url"
        sleep 0.2
    done
}

# The first value of an instant-vector answer, or nothing.
first_value() {
    python3 -c '
import json, sys
doc = json.load(sys.stdin)
if doc.get("status") != "success":
    sys.exit("query failed: " + json.dumps(doc))
result = doc["data"]["result"]
if result:
    print(result[0]["value"][1])
'
}

backend_port=$(free_port)
data_port=$(free_port)
admin_port=$(free_port)
prom_port=$(free_port)

mkdir -p "$work/www"
printf 'hello from the backend\n' >"$work/www/index.html"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$backend_port" \
    >"$work/backend.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$backend_port/index.html" 10 "the backend"

cat >"$work/outrider.toml" <<EOF
[server]
listen = "127.0.0.1:$data_port"
threads = 2
grace_period = "1s"

[admin]
listen = "127.0.0.1:$admin_port"

[log]
level = "warn"

[upstreams.app]
endpoints = ["127.0.0.1:$backend_port"]

[[routes]]
name = "web"
match = { path_prefix = "/" }
EOF
"$OUTRIDER" --config "$work/outrider.toml" >"$work/outrider.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$admin_port/readyz" 20 "outrider"
log "outrider: data 127.0.0.1:$data_port, admin 127.0.0.1:$admin_port"

# What Prometheus will read must first pass Prometheus' own parser and linter.
curl -fsS "http://127.0.0.1:$admin_port/metrics" | promtool check metrics \
    || die "promtool check metrics rejected the exposition"

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: outrider
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$admin_port"]
EOF
promtool check config "$work/prometheus.yml" >/dev/null || die "prometheus.yml is invalid"
/usr/bin/prometheus \
    --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" \
    >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$prom_port/-/ready" 30 "prometheus"
log "prometheus: 127.0.0.1:$prom_port, scraping every 1s"

# Prometheus hands new targets to its scrapers only every few seconds: load starts once the
# first scrape has succeeded, so the whole load is seen.
deadline=$((SECONDS + 30))
until [ "$(curl -fsS -G "http://127.0.0.1:$prom_port/api/v1/query" \
        --data-urlencode 'query=up{job="outrider"}' 2>/dev/null | first_value 2>/dev/null)" = "1" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "Prometheus never scraped outrider successfully"
    sleep 0.5
done
log "prometheus: first scrape of outrider succeeded"

# Bounded load: one curl after another for LOAD_SECONDS.
log "load: GET / through outrider for ${LOAD_SECONDS}s"
sent=0
failed=0
load_started=$(date +%s.%N)
load_end=$((SECONDS + LOAD_SECONDS))
while [ "$SECONDS" -lt "$load_end" ]; do
    if curl -fsS -o /dev/null "http://127.0.0.1:$data_port/index.html"; then
        sent=$((sent + 1))
    else
        failed=$((failed + 1))
    fi
done
load_ended=$(date +%s.%N)
log "load: $sent requests answered, $failed failed"
[ "$sent" -gt 0 ] || die "no request went through outrider"

# query EXPR [TIME]: an instant query, at TIME (unix seconds) if given.
query() {
    local args=(--data-urlencode "query=$1")
    [ $# -ge 2 ] && args+=(--data-urlencode "time=$2")
    curl -fsS -G "http://127.0.0.1:$prom_port/api/v1/query" "${args[@]}"
}


rate_query='sum(rate(outrider_requests_total[30s]))'
rate=""
deadline=$((SECONDS + QUERY_DEADLINE_SECONDS))
while :; do
    rate=$(query "$rate_query" | first_value || true)
    if [ -n "$rate" ] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)' "$rate"; then
        break
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "Prometheus never returned a positive rate for $rate_query (last answer: '${rate}')"
    sleep 1
done

health=$(curl -fsS "http://127.0.0.1:$prom_port/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
mine = [t for t in targets if t["labels"].get("job") == "outrider"]
print(mine[0]["health"] + " " + (mine[0].get("lastError") or "-") if mine else "missing -")
')
target_health=${health%% *}
[ "$target_health" = "up" ] || die "the outrider target is not up: $health"

# Every answered request reaches Prometheus: wait for the scrape after the last one.
total=""
while :; do
    total=$(query 'sum(outrider_requests_total)' | first_value || true)
    [ "${total:-0}" = "$sent" ] && break
    [ "$SECONDS" -lt "$deadline" ] || die "sum(outrider_requests_total) = '${total}' in Prometheus, but $sent requests were answered"
    sleep 1
done

# Over the middle half of the load, Prometheus' rate is the offered rate.
offered=$(python3 -c "print($sent / ($load_ended - $load_started))")
at=$(python3 -c "print($load_started + 0.75 * ($load_ended - $load_started))")
mid_window=$(( LOAD_SECONDS / 2 > 2 ? LOAD_SECONDS / 2 : 2 ))
mid_query="sum(rate(outrider_requests_total[${mid_window}s]))"
mid_answer=$(query "$mid_query" "$at" || true)
mid_rate=$(first_value <<<"$mid_answer" || true)
python3 -c '
import sys
rate, offered = float(sys.argv[1] or 0), float(sys.argv[2])
sys.exit(0 if 0.5 * offered <= rate <= 1.5 * offered else 1)
' "$mid_rate" "$offered" || die "$mid_query over the middle of the load is ${mid_rate:-none} req/s, offered $offered req/s (at $at: $mid_answer; samples: $(query 'outrider_requests_total[60s]'))"
series=$(query 'outrider_requests_total' | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    m = r["metric"]
    print("  outrider_requests_total{route=%s,method=%s,status=%s} %s" % (m.get("route"), m.get("method"), m.get("status"), r["value"][1]))
')
p99=$(query 'histogram_quantile(0.99, sum by (le) (rate(outrider_request_duration_seconds_bucket[30s])))' | first_value || true)

echo "target outrider (127.0.0.1:$admin_port): $target_health"
echo "client: $sent requests in ${LOAD_SECONDS}s ($(python3 -c "print(round($offered, 1))") req/s offered)"
echo "prometheus: $rate_query = $rate req/s (30 s window, load lasted ${LOAD_SECONDS} s of it)"
echo "prometheus: $mid_query over the middle of the load = $mid_rate req/s"
echo "prometheus: sum(outrider_requests_total) = ${total:-none}"
echo "$series"
echo "prometheus: p99 request duration over 30s = ${p99:-none} s"
echo "OK"
