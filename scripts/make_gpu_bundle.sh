#!/usr/bin/env bash
# Builds the relocatable bundle the GPU check runs (issue 21): torchbricks-server,
# torchbricks-perf, the torchbricks CLI and the floor benchmark (scripts/cpu_floor_check.sh)
# from build/, every shared library they need except
# torch's own (the GPU machine has the same torch 2.11 wheel), the C and C++ runtimes and
# OpenMP (torch brings libgomp), found through an $ORIGIN rpath (patchelf), plus the
# generated Python messages the check's client uses. Writes build/gpu-bundle.tar.xz.
#
#   bash scripts/make_gpu_bundle.sh && ls -l build/gpu-bundle.tar.xz
#   bash scripts/make_gpu_bundle.sh --no-pack DIR   # the folder only (tests/python/test_gpu_bundle.py)
set -euo pipefail
pack=1
if [[ ${1:-} == --no-pack ]]; then
  pack=0
  out=$(realpath -m "${2:?--no-pack DIR}")
  # It is emptied first: refuse a folder that holds anything (a mistyped path, the clone).
  if [[ -e $out ]] && [[ -n "$(ls -A "$out")" ]]; then
    echo "make_gpu_bundle: $out exists and is not empty" >&2
    exit 2
  fi
fi
cd "$(dirname "$0")/.."
out=${out:-build/gpu-bundle}
rm -rf "$out" "$out.tar.xz"
mkdir -p "$out/bin" "$out/lib" "$out/python"
binaries=(build/server/torchbricks-server build/clients/cpp/perf/torchbricks-perf build/tools/torchbricks
  build/bench/floor_benchmark build/bench/floor_server)
cp "${binaries[@]}" "$out/bin/"
for binary in "${binaries[@]}"; do ldd "$binary"; done | awk '/=> \// {print $3}' | sort -u |
  while read -r library; do
    case "$library" in
      */torch/lib/* | */nvidia/* | */libc.so* | */libm.so* | */libdl.so* | */librt.so* | \
        */libpthread.so* | */ld-linux* | */libstdc++.so* | */libgcc_s.so* | */libgomp.so*) ;;
      *) cp -L "$library" "$out/lib/" ;;
    esac
  done
patchelf --set-rpath '$ORIGIN/../lib' "$out"/bin/*
strip --strip-debug "$out"/bin/* "$out"/lib/*.so* 2>/dev/null || true
cp -r build/python/torchbricks_serve/generated "$out/python/"
if ((pack)); then
  tar -C "$(dirname "$out")" -cJf "$out.tar.xz" "$(basename "$out")"
  echo "make_gpu_bundle: $(du -sh "$out" | cut -f1) in $out, $(du -h "$out.tar.xz" | cut -f1) packed"
else
  echo "make_gpu_bundle: $(du -sh "$out" | cut -f1) in $out"
fi
