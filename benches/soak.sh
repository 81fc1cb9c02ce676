#!/usr/bin/env bash
# Soak under faults: the release binary under sustained load with every feature on for
# SOAK_SECS (default 600 s = 10 minutes), while the policy is reloaded every second (two valid
# files alternating, every fifth an invalid one that must be rejected), the backend is killed
# and brought back on the same ports every FAULT_PERIOD seconds (default 20, down for DOWN,
# default 4), the upstream's second endpoint flaps on its own shorter period (FLAP_PERIOD,
# default FAULT_PERIOD/3, down FLAP_DOWN, default 40% of it) with active health checks and a
# retry policy on, a tenth of the requests go to a route rate-limited per X-Client header (four
# keys, 5/s, burst 10; 429 + Retry-After expected there only), and the cache is purged every
# 3 s. It is tests/soak/ (whose 30 s variant runs in the test suite, debug build) run longer, in
# release; see tests/soak/main.rs for the details.
#
# It prints a report: requests and rps, responses by status and cause (hit, stale on open,
# breaker 503, unreachable 502, 429 rate limited, ...), client-side p50/p90/p99/p99.9/max, RSS
# and open fds of the proxy after warm-up and at the end (with a timeline), reloads
# applied/rejected, purges, outages, the rate-limited route's 200s/429s per key against the
# configured rate, retries and health-check results from /metrics, the flapping endpoint's
# unhealthy/healthy transitions, cache evictions, known defects observed, and panics in the
# proxy's log. The run fails (exit 1) on a panic other than the known one, a connection-level
# client failure other than the known ones, an unexpected status, a wrong body, an fd leak or
# RSS growth beyond the cache budget plus a margin, more 200s per key on the limited route than
# rate × seconds + burst (+ a small margin), no retry, or the flapping endpoint never seen
# marked unhealthy and healthy again.
#
# Usage:   bash benches/soak.sh                 # 10 minutes, release build
#          SOAK_SECS=120 bash benches/soak.sh   # shorter
# Env:     SOAK_SECS=600      run length, after a warm-up of SOAK_SECS/10 (at most 10 s)
#          FAULT_PERIOD=      seconds between backend kills (default min(20, SOAK_SECS/3))
#          DOWN=              seconds the backend stays down each time (default FAULT_PERIOD/5)
#          FLAP_PERIOD=       seconds between kills of the second endpoint (default FAULT_PERIOD/3)
#          FLAP_DOWN=         seconds it stays down each time (default FLAP_PERIOD*0.4)
#          STRICT=1           0: the defects the soak found (KNOWN_* in tests/soak/main.rs, fixed) are
#                             only reported, not failed on
#          KEEP=0             1: keep the proxy's conf, process log and access log (path printed)
#          CARGO_PROFILE=release
#
# Everything listens on 127.0.0.1 only. Output also goes to target/soak-report.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SOAK_SECS=${SOAK_SECS:-600}
CARGO_PROFILE=${CARGO_PROFILE:-release}
export OUTRIDER_SOAK_SECS=$SOAK_SECS
[[ -n ${FAULT_PERIOD:-} ]] && export OUTRIDER_SOAK_FAULT_PERIOD_SECS=$FAULT_PERIOD
[[ -n ${DOWN:-} ]] && export OUTRIDER_SOAK_DOWN_SECS=$DOWN
[[ -n ${FLAP_PERIOD:-} ]] && export OUTRIDER_SOAK_FLAP_PERIOD_SECS=$FLAP_PERIOD
[[ -n ${FLAP_DOWN:-} ]] && export OUTRIDER_SOAK_FLAP_DOWN_SECS=$FLAP_DOWN
[[ ${STRICT:-1} == 0 ]] && export OUTRIDER_SOAK_STRICT=0
[[ ${KEEP:-0} == 1 ]] && export OUTRIDER_SOAK_KEEP=1

echo "building ($CARGO_PROFILE)..." >&2
cargo build --profile "$CARGO_PROFILE" --bin outrider --test soak >&2

REPORT=${CARGO_TARGET_DIR:-$ROOT/target}/soak-report.txt
echo "soaking for ${SOAK_SECS}s (plus warm-up and teardown); report also in $REPORT" >&2
# The test's own output (the report) goes to stdout; cargo's progress to stderr.
cargo test --profile "$CARGO_PROFILE" --test soak -- --nocapture --test-threads 1 2>&1 | tee "$REPORT"
