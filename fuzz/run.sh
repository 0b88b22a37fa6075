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
# The corpus grows in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET),
# crashing inputs land in fuzz/artifacts/TARGET, full logs in fuzz/logs.
# Exit status: 0 when no target crashed.
set -u

secs="${1:-60}"
shift || true
fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bearer jwt scope introspection)

cd "$root" || exit 2
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
    line=$(printf '%-14s %12s %8s %8s' "$t" "$runs" "$took" "$crashes")
    echo "$line"
    if [ "$crashes" -gt 0 ]; then
        grep -E "panicked at|^==[0-9]+==ERROR|Test unit written to" "$log" | head -n 5
    fi
    summary+=("$line")
done

echo
printf '%-14s %12s %8s %8s\n' target executions seconds crashes
printf '%s\n' "${summary[@]}"
[ "$total_crashes" -eq 0 ]
