#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints, per target, the
# executions, seconds and crashes (from libFuzzer's final
# `Done N runs in S second(s)` line, or its last status line when it stopped
# on a crash).
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   # default 60 s, all targets
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# The targets are built once (`cargo +nightly fuzz build`, ASan), then each
# binary runs in turn, so edits made meanwhile do not change what is measured.
# Each run starts from the tracked corpus fuzz/corpus/TARGET and the seeds
# fuzz/seeds/TARGET, adds what it finds to fuzz/corpus/TARGET, and then, unless
# it crashed or NO_CMIN=1 is set, minimizes that corpus in place (libFuzzer
# -merge=1, what `cargo fuzz cmin` does) so that what is committed stays small
# and the next run carries the coverage on. Crashing inputs land in
# fuzz/artifacts/TARGET, full logs in fuzz/logs (both git-ignored).
# Exit status: 0 when no target crashed.
set -u

secs="${1:-60}"
shift || true
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bearer jwt scope introspection mcp dpop)

cd "$root" || exit 2
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
# Uncommitted edits (the corpus aside) make the figures those of another tree.
git diff --quiet HEAD -- . ':(exclude)fuzz/corpus' 2>/dev/null || commit="$commit+changes"
if ! cargo +nightly fuzz build; then
    echo "run.sh: cargo fuzz build failed" >&2
    exit 2
fi
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
bin_dir="$fuzz_dir/target/$triple/release"
mkdir -p "$fuzz_dir/logs"

summary=()
total_crashes=0
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    artifacts="$fuzz_dir/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    extra=()
    case "$t" in
        bearer) extra=(-max_len=20000 -dict="$fuzz_dir/dicts/bearer.dict") ;;
        jwt) extra=(-max_len=20000 -dict="$fuzz_dir/dicts/json.dict") ;;
        introspection) extra=(-dict="$fuzz_dir/dicts/json.dict") ;;
        # The scope grammar has no rule that depends on length, and inputs
        # of kilobytes cut the rate fivefold without adding coverage.
        scope) extra=(-max_len=256) ;;
        # Bodies up to twice the target's 4096-byte bound, so 413 is reached.
        mcp) extra=(-max_len=8192 -dict="$fuzz_dir/dicts/json.dict") ;;
        dpop) extra=(-max_len=9000 -dict="$fuzz_dir/dicts/json.dict") ;;
    esac
    before=$(find "$artifacts" -type f | wc -l)
    log="$fuzz_dir/logs/$t.log"
    echo "== $t: ${secs}s (log: $log)"
    start=$(date +%s)
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" \
        "$bin_dir/$t" -artifact_prefix="$artifacts/" -max_total_time="$secs" \
        -print_final_stats=1 "${extra[@]}" "$corpus" "$fuzz_dir/seeds/$t" >"$log" 2>&1
    status=$?
    end=$(date +%s)
    after=$(find "$artifacts" -type f | wc -l)
    crashes=$((after - before))
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1)
    if [ -n "$done_line" ] && [ "$status" -eq 0 ]; then
        runs=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/' <<<"$done_line")
        took=$(sed -E 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/' <<<"$done_line")
    else
        # Stopped early (a crash): the last `#N ...` status line.
        runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
        runs=${runs:-0}
        took=$((end - start))
        [ "$crashes" -gt 0 ] || crashes=1 # failed without writing an artifact
    fi
    total_crashes=$((total_crashes + crashes))
    if [ "$crashes" -eq 0 ] && [ "${NO_CMIN:-0}" != 1 ]; then
        # Minimize into a fresh directory, then swap it in; a failed merge
        # leaves the corpus as the run left it.
        minimized="$fuzz_dir/corpus/.$t.cmin"
        rm -rf "$minimized" && mkdir -p "$minimized"
        if ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}" \
            "$bin_dir/$t" -merge=1 -artifact_prefix="$artifacts/" "${extra[@]}" \
            "$minimized" "$corpus" >"$fuzz_dir/logs/$t.cmin.log" 2>&1; then
            rm -rf "$corpus" && mv "$minimized" "$corpus"
        else
            echo "run.sh: minimizing $t failed (log: $fuzz_dir/logs/$t.cmin.log)" >&2
            rm -rf "$minimized"
        fi
    fi
    files=$(find "$corpus" -type f | wc -l)
    size=$(du -sk --apparent-size "$corpus" | cut -f1)
    line=$(printf '%-14s %12s %8s %8s %8s %8s' "$t" "$runs" "$took" "$crashes" "$files" "${size}K")
    echo "$line"
    if [ "$crashes" -gt 0 ]; then
        grep -E "panicked at|^==[0-9]+==ERROR|Test unit written to" "$log" | head -n 5
    fi
    summary+=("$line")
done

echo
echo "commit $commit, $(date -u +%F)"
printf '%-14s %12s %8s %8s %8s %8s\n' target executions seconds crashes corpus size
printf '%s\n' "${summary[@]}"
[ "$total_crashes" -eq 0 ]
