#!/usr/bin/env bash
# Builds the project with sanitizers (clang-14) and runs its tests under them:
#
#   scripts/sanitize.sh asan [--cpp-only]   # ASan + UBSan + libFuzzer targets, in build-asan/
#   scripts/sanitize.sh tsan [--cpp-only]   # TSan, in build-tsan/
#
# Configures and builds the folder, runs the C++ tests through ctest (with asan: also each
# fuzz target's short run over its seed corpus), then, unless --cpp-only, the Python tests
# that start the sanitized torchbricks-server or run the sanitized CLI. Any sanitizer report
# fails the run: the program stops with an error status, which fails its test. Suppression
# files (tests/sanitizers/) cover only reports inside uninstrumented libraries (libtorch,
# OpenMP, gRPC, protobuf), never the project's code. Figures: docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

mode="${1:-}"
cpp_only=0
[ "${2:-}" = "--cpp-only" ] && cpp_only=1
case "$mode" in
  asan)
    dir=build-asan
    flags=(-DTORCHBRICKS_SANITIZE=address,undefined -DTORCHBRICKS_FUZZ=ON)
    ;;
  tsan)
    dir=build-tsan
    flags=(-DTORCHBRICKS_SANITIZE=thread)
    ;;
  *)
    echo "usage: $0 asan|tsan [--cpp-only]" >&2
    exit 2
    ;;
esac

supp="$repo/tests/sanitizers"
# halt_on_error: the first report ends the process with an error status (tests fail on it).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:detect_stack_use_after_return=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp"

start=$(date +%s)
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
  "${flags[@]}" > "$dir.cmake.log" 2>&1 || { cat "$dir.cmake.log"; exit 1; }
rm -f "$dir.cmake.log"
cmake --build "$dir" --parallel "$(nproc)"
built=$(date +%s)
echo "sanitize.sh $mode: built in $((built - start)) s"

status=0
(cd "$dir" && ctest --output-on-failure --timeout 900) || status=1
tested=$(date +%s)
echo "sanitize.sh $mode: C++ tests in $((tested - built)) s"

if [ "$cpp_only" = 0 ]; then
  export TORCHBRICKS_SERVER="$repo/$dir/server/torchbricks-server"
  export TORCHBRICKS_CLI="$repo/$dir/tools/torchbricks"
  export TORCHBRICKS_PYTHON_PROTOS="$repo/$dir/python/torchbricks_serve/generated"
  export PYTHONPATH="$repo/clients/python/client:$repo/clients/python/exporter:$repo/tests/python${PYTHONPATH:+:$PYTHONPATH}"
  # The Python tests that run the sanitized binaries (the others run no C++ of ours).
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python/test_server_*.py \
    tests/python/test_metrics.py tests/python/test_cli_verify.py tests/python/test_shared_memory.py \
    tests/python/test_shared_memory_hardening.py tests/python/test_image_decoding_hardening.py \
    tests/python/test_model_config.py tests/python/test_soak_short.py || status=1
  echo "sanitize.sh $mode: Python tests in $(($(date +%s) - tested)) s"
fi
exit $status
