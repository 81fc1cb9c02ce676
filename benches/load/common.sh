# Shared by the end-to-end benchmarks (benches/load.sh, benches/hold.sh): tools, the temp dir
# and process cleanup, free ports, config templates, readiness waits, nginx start-up, wrk output.
# Set SCRIPT_NAME and ROOT, then source it: it installs the EXIT trap and creates $TMP.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------

# NEED_VARNISH=1 (set by load.sh for CACHE=1) adds Varnish.
ensure_tools() {
    local missing=()
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v taskset >/dev/null || missing+=(util-linux)
    if [[ ${NEED_VARNISH:-0} == 1 ]]; then
        command -v varnishd >/dev/null || [[ -x /usr/sbin/varnishd ]] || missing+=(varnish)
    fi
    ((${#missing[@]} == 0)) && return
    log "installing ${missing[*]}"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    # nginx-light is the smallest Debian nginx; fall back to plain `nginx` where it is gone.
    if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"; then
        missing=("${missing[@]/nginx-light/nginx}")
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
    fi
    # The varnish package enables and, where an init system runs (not in containers whose
    # policy-rc.d forbids it), starts a system varnishd on :6081 of every address. We start our
    # own on 127.0.0.1; stop and disable that one.
    if [[ " ${missing[*]} " == *" varnish "* ]]; then
        if [[ -d /run/systemd/system ]]; then
            "${sudo[@]}" systemctl disable --now varnish.service varnishncsa.service >/dev/null 2>&1 || true
        else
            "${sudo[@]}" invoke-rc.d varnish stop >/dev/null 2>&1 || true
        fi
    fi
}

ensure_tools
# Debian keeps nginx in /usr/sbin, which a non-root PATH may lack.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VARNISHD=$(command -v varnishd || echo /usr/sbin/varnishd)

# Build (unless SKIP_BUILD=1 or OUTRIDER_BIN is set) and point OUTRIDER at the binary.
build_outrider() {
    if [[ ${SKIP_BUILD:-0} != 1 && -z ${OUTRIDER_BIN:-} ]]; then
        log "cargo build --profile $CARGO_PROFILE (may wait on another cargo's lock)"
        (cd "$ROOT" && cargo build --profile "$CARGO_PROFILE" --bin outrider)
    fi
    OUTRIDER=${OUTRIDER_BIN:-$ROOT/target/$CARGO_PROFILE/outrider}
    [[ -x $OUTRIDER ]] || die "no binary at $OUTRIDER"
}

# The floor contender of load.sh (examples/floor_proxy.rs), built with the same profile as
# Outrider unless SKIP_BUILD=1 or FLOOR_BIN is set; points FLOOR_PROXY at the binary.
build_floor() {
    if [[ ${SKIP_BUILD:-0} != 1 && -z ${FLOOR_BIN:-} ]]; then
        log "cargo build --profile $CARGO_PROFILE --example floor_proxy"
        (cd "$ROOT" && cargo build --profile "$CARGO_PROFILE" --example floor_proxy)
    fi
    FLOOR_PROXY=${FLOOR_BIN:-$ROOT/target/$CARGO_PROFILE/examples/floor_proxy}
    [[ -x $FLOOR_PROXY ]] || die "no floor proxy binary at $FLOOR_PROXY (FLOOR=0 leaves it out)"
}

# --- process bookkeeping and cleanup -------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/outrider-${SCRIPT_NAME%.sh}.XXXXXX")
PIDS=() # every server we started, killed on exit
CLEANUP_DIRS=() # directories outside $TMP (on /dev/shm) removed on exit

# Children of a pid (nginx's workers), from /proc so that procps isn't needed.
children_of() {
    local parent=$1 file stat ppid pid
    for file in /proc/[0-9]*/stat; do
        { stat=$(<"$file"); } 2>/dev/null || continue # gone meanwhile
        # Fields after "pid (comm) " (comm may hold spaces and parens): state ppid ...
        read -r _ ppid _ <<<"${stat##*) }"
        if [[ $ppid == "$parent" ]]; then
            pid=${file#/proc/}
            echo "${pid%/stat}"
        fi
    done
}

cleanup() {
    local rc=$? pid child i
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give them 5 s to exit (nginx's master takes its workers down), then force.
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            for child in $(children_of "$pid"); do kill -KILL "$child" 2>/dev/null || true; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    ((${#CLEANUP_DIRS[@]} == 0)) || rm -rf "${CLEANUP_DIRS[@]}"
    if [[ ${KEEP_TMP:-0} == 1 || $rc != 0 ]]; then
        log "temp dir kept: $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# below the usual ephemeral range (32768+) so it can't be some outgoing connection's local port.
# Racy in principle; a clash makes the server fail to bind, which the readiness wait reports.
TAKEN=" "
free_port() {
    local port hex
    while :; do
        port=$((20000 + RANDOM % 12000))
        [[ $TAKEN == *" $port "* ]] && continue
        printf -v hex ':%04X ' "$port"
        # Local address is field 2 ("0100007F:1F90"); state 0A = LISTEN.
        if awk -v p="$hex" '$4 == "0A" && index($2 " ", p) { used = 1 } END { exit used }' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            TAKEN+="$port "
            echo "$port"
            return
        fi
    done
}

# Fill @NAME@ placeholders in a template: render TEMPLATE OUT NAME=value...
render() {
    local template=$1 out=$2 kv script=()
    shift 2
    for kv in "$@"; do
        script+=(-e "s|@${kv%%=*}@|${kv#*=}|g")
    done
    sed "${script[@]}" "$template" >"$out"
}

# Poll URL until it answers 2xx, while PID stays alive; fail with LOGFILE's tail otherwise.
wait_ready() {
    local name=$1 url=$2 pid=$3 logfile=$4 deadline=$((SECONDS + READY_TIMEOUT))
    until curl -sf -o /dev/null --max-time 1 "$url"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logfile" >&2 || true
            die "$name exited during startup (log: $logfile)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$logfile" >&2 || true
            die "$name not ready at $url within ${READY_TIMEOUT}s"
        fi
        sleep 0.05
    done
}

# As root, nginx's workers would drop to `nobody`; keep them root instead, so that the temp
# dirs nginx creates for itself stay writable. As a normal user the directive would only warn.
NGINX_USER=""
((EUID == 0)) && NGINX_USER="user root;"

start_nginx() { # name conf -> sets LAST_PID
    local name=$1 conf=$2
    # -e: the error log before the config is read, else nginx opens /var/log/nginx/error.log.
    "$NGINX" -p "$TMP" -c "$conf" -e "$TMP/$name.error.log" >"$TMP/$name.out" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wrk prints latency as e.g. 812.00us, 1.23ms, 2.01s, 1.50m; print it in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else if (v ~ /s$/) f = 1000;
        else if (v ~ /m$/) f = 60000; else if (v ~ /h$/) f = 3600000; else { print "nan"; exit }
        sub(/[a-z]+$/, "", v); printf "%.3f", v * f }'
}

# The same in microseconds, the unit of wrk's latency histogram (so whole numbers below 1 ms).
to_us() {
    awk -v ms="$(to_ms "$1")" 'BEGIN { if (ms == "nan") print "nan"; else printf "%.0f", ms * 1000 }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
