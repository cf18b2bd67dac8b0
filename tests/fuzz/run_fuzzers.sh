#!/usr/bin/env bash
# Long fuzzing runs, one target at a time: run_fuzzers.sh BUILD_DIR RUNS WORK_DIR [TARGET...]
# (default: every target). Each target starts from its committed corpus (tests/fuzz/corpus/),
# writes what it finds to WORK_DIR/<target>/ (never to the committed corpus), its log to
# WORK_DIR/<target>.log and crash inputs to WORK_DIR/crashes/. Prints one summary line per
# target: executions, seconds, coverage (cov) and features (ft) at the end, exit status.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$1" runs="$2" work="$3"
shift 3
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_decoding_fuzzer manifest_fuzzer model_config_fuzzer image_decoding_fuzzer
           jpeg_header_fuzzer bytes_codec_fuzzer model_name_fuzzer)
fi
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1"
mkdir -p "$work/crashes"
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  dict=()
  [ -f "$here/$target.dict" ] && dict=(-dict="$here/$target.dict")
  start=$(date +%s)
  "$build/fuzz/$target" -runs="$runs" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1 \
    "${dict[@]}" -artifact_prefix="$work/crashes/$target-" "$work/$target" "$here/corpus/$target" \
    > "$work/$target.log" 2>&1
  status=$?
  seconds=$(( $(date +%s) - start ))
  last=$(grep -E '#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$work/$target.log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<< "$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<< "$last")
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/$target.log")
  echo "$target executions=$execs seconds=$seconds cov=$cov ft=$ft status=$status"
done
