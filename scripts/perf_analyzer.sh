#!/usr/bin/env bash
# Runs Triton's perf_analyzer, the unmodified binary of the PyPI wheel pinned in
# requirements/perf_analyzer.txt, with all its arguments:
#
#   scripts/perf_analyzer.sh -i grpc -u 127.0.0.1:8001 -m classifier --concurrency-range 1:4
#
# scripts/setup.sh installs it into .tools/perf_analyzer (or $TORCHBRICKS_PERF_ANALYZER_DIR):
# the wheel's binary needs glibc >= 2.38, so it runs through the loader of the Debian 13 glibc
# unpacked beside it, which finds that glibc and libstdc++ first, then the system's libz and
# libssl, then lib/libcudart.so (its shared-memory code opens the CUDA runtime even for system
# shared memory). Exit code: perf_analyzer's, or 127 when it is not installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${TORCHBRICKS_PERF_ANALYZER_DIR:-$root/.tools/perf_analyzer}
binary=$dir/site/perf_analyzer/bin/perf_analyzer
libs=$dir/debian13/usr/lib/x86_64-linux-gnu
if [[ ! -x $binary || ! -x $libs/ld-linux-x86-64.so.2 ]]; then
  echo "perf_analyzer.sh: perf_analyzer is not installed in $dir; run scripts/setup.sh" >&2
  exit 127
fi
exec "$libs/ld-linux-x86-64.so.2" --library-path "$libs:$dir/lib" "$binary" "$@"
