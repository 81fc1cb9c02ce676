#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target listed in fuzz/Cargo.toml and runs each one
# for SECONDS_PER_TARGET seconds (default 30: 8 targets, about 4.5 minutes) on its corpus
# fuzz/corpus/<target> (created if missing; libFuzzer adds the new inputs it finds there).
# Exits non-zero on the first crash, panic, timeout or out-of-memory, after printing the
# artifact path (fuzz/artifacts/<target>/).
#
# Works on the stable toolchain: cargo-fuzz needs nightly-only rustc flags, which
# RUSTC_BOOTSTRAP=1 unlocks. Installs cargo-fuzz from crates.io first if it is missing.
#
#   scripts/fuzz-smoke.sh                              # every target, 30 s each
#   scripts/fuzz-smoke.sh cache_store breaker          # only these targets
#   SECONDS_PER_TARGET=600 scripts/fuzz-smoke.sh       # a longer campaign: 10 min per target
#   SECONDS_PER_TARGET=3600 FUZZ_ARGS=-fork=2 scripts/fuzz-smoke.sh config
#                                                      # 1 h on config, 2 libFuzzer processes
#
# To reproduce a crash:     RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> <artifact>
# To shrink it:             RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none <target> <artifact>
# To minimise a corpus:     RUSTC_BOOTSTRAP=1 cargo fuzz cmin -s none <target> fuzz/corpus/<target> \
#                               -- -set_cover_merge=1
# (add --target-dir "$FUZZ_TARGET_DIR" to reuse this script's build; -set_cover_merge=1 keeps
# every feature with a third to a half of the files plain -merge=1 keeps.)
# The range target exempts known Pingora bugs (see its doc); OUTRIDER_FUZZ_STRICT=1 lifts that.
#
# Environment:
#   SECONDS_PER_TARGET  seconds of fuzzing per target (default 30)
#   FUZZ_TARGET_DIR     cargo target directory (default fuzz/target, away from ./target)
#   FUZZ_SANITIZER      cargo fuzz -s value (default none: outrider has no `unsafe`, and
#                       AddressSanitizer would halve the executions per second; use `address`
#                       to check the dependencies' unsafe code too)
#   FUZZ_ARGS           extra libFuzzer flags, e.g. "-max_len=65536 -dict=x.dict"
#   FUZZ_GROW_CORPUS    1: write the new inputs found into fuzz/corpus/<target> (a campaign, to
#                       be minimised with cmin before committing); by default they go to a
#                       temporary directory, so the suite's smoke run leaves the tree clean
#
# The corpora are committed, minimised (`cargo fuzz cmin`) after each long campaign, so a fresh
# clone starts from what earlier campaigns reached. A campaign that should extend them:
#   FUZZ_GROW_CORPUS=1 SECONDS_PER_TARGET=600 scripts/fuzz-smoke.sh range, then cmin as above.
# Crash artifacts are git-ignored: turn one into a test in tests/it/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-30}
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
FUZZ_ARGS=${FUZZ_ARGS:-}
FUZZ_GROW_CORPUS=${FUZZ_GROW_CORPUS:-0}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Largest input worth trying, per target (libFuzzer's default is 4096 for all).
max_len() {
    case "$1" in
        config) echo 4096 ;;          # a TOML file
        accept_encoding) echo 256 ;;  # one header value
        purge_body) echo 512 ;;       # a small JSON body
        preconditions) echo 512 ;;    # seven header values
        cache_control) echo 1024 ;;   # a dozen header lines
        cache_store) echo 1400 ;;     # 200 operations of 7 bytes
        breaker) echo 512 ;;          # 256 operations of 2 bytes
        range) echo 1024 ;;           # a Range header (up to 200 parts), If-Range, length
        *) echo 4096 ;;
    esac
}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz-smoke: no targets in fuzz/Cargo.toml" >&2; exit 1; }

fuzz_flags=(-s "$FUZZ_SANITIZER" --target-dir "$FUZZ_TARGET_DIR")

echo "fuzz-smoke: building ${targets[*]}" >&2
if [ $# -gt 0 ]; then
    for t in "${targets[@]}"; do cargo fuzz build "${fuzz_flags[@]}" "$t"; done
else
    cargo fuzz build "${fuzz_flags[@]}"
fi

bin_dir=$FUZZ_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
summary=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    log=$log_dir/$t.log
    # libFuzzer reads every corpus directory given and writes new inputs to the first.
    if [ "$FUZZ_GROW_CORPUS" = 1 ]; then
        corpora=("$corpus")
    else
        corpora=("$log_dir/new-$t" "$corpus")
        mkdir -p "${corpora[0]}"
    fi
    echo "fuzz-smoke: $t for ${SECONDS_PER_TARGET}s (corpus $corpus: $(find "$corpus" -type f | wc -l) inputs)" >&2
    status=0
    # The binary built above, run directly (what `cargo fuzz run` does after rebuilding): the
    # whole run fuzzes one build, even if the sources change meanwhile.
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        $FUZZ_ARGS "${corpora[@]}" >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
    if [ "$status" -ne 0 ] || grep -q 'Test unit written to' "$log"; then
        tail -n 60 "$log" >&2
        echo >&2
        echo "fuzz-smoke: FAILED: $t (exit $status)" >&2
        grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to /fuzz-smoke: artifact: /' >&2 || true
        exit 1
    fi
    summary+=("$(printf '%-16s %10s runs in %ss, corpus %s inputs, %s new' "$t" "$runs" \
        "$SECONDS_PER_TARGET" "$(find "$corpus" -type f | wc -l)" \
        "$(find "${corpora[0]}" -type f -newer "$log_dir" | wc -l)")")
done

echo "fuzz-smoke: no crash" >&2
printf 'fuzz-smoke:   %s\n' "${summary[@]}" >&2
