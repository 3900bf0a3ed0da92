#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time under ASan+UBSan and reports executions.
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [BUILD_DIR]     (defaults: 60, build-fuzz)
# Builds BUILD_DIR with clang first. A crash, leak, sanitizer report or timeout fails the run;
# the input is left in BUILD_DIR/fuzz-artifacts/ (add it to tests/fuzz/corpus/TARGET/ as
# crash-NAME once fixed, so every test run replays it). The repository's corpus is only read:
# new inputs go to a scratch copy.
set -euo pipefail
seconds="${1:-60}"
build="${2:-build-fuzz}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cmake -S "$repo" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DZGUARD_FUZZ=ON -DZGUARD_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j2
artifacts="$build/fuzz-artifacts"
scratch="$build/fuzz-scratch"
rm -rf "$artifacts" "$scratch"
mkdir -p "$artifacts"
report="$build/fuzz-report.txt"
: > "$report"
status=0
for target in mdp zap zpl config auth_files; do
  mkdir -p "$scratch/$target"
  log="$build/fuzz-$target.log"
  if ! "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 \
       -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
       "$scratch/$target" "$here/corpus/$target" > "$log" 2>&1; then
    echo "fuzz_$target FAILED; last lines of $log:" | tee -a "$report"
    tail -40 "$log"
    status=1
    continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  per_second=$(( runs / (seconds > 0 ? seconds : 1) ))
  corpus=$(find "$scratch/$target" "$here/corpus/$target" -type f | wc -l)
  echo "fuzz_$target: $runs executions in ${seconds} s (~$per_second/s), corpus $corpus inputs, no crash" \
    | tee -a "$report"
done
exit $status
