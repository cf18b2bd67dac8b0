#!/usr/bin/env bash
# Installs every Debian package TorchBricks Serve needs to build, test and run.
# Idempotent: when everything is already installed it only checks and returns.
set -euo pipefail

# What compiling needs; TORCHBRICKS_SETUP_BUILD_ONLY=1 (the image's build stage) installs
# only these.
BUILD_PACKAGES=(
  build-essential cmake pkg-config ninja-build python3
  libtorch-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libopencv-dev libjpeg62-turbo-dev libpng-dev  # JPEG and PNG files: core/jpeg_decoder.h, core/png_codec.h
)
PACKAGES=(
  "${BUILD_PACKAGES[@]}"
  python3-torch python3-torchvision python3-grpcio python3-protobuf python3-pytest python3-numpy
  python3-pil
  prometheus clang-format
  clang-14 libclang-rt-14-dev libomp-14-dev  # sanitizer and fuzzing builds (scripts/sanitize.sh)
  openssl  # test certificates (tests/python/test_server_security.py)
  docker.io debootstrap docker-compose python3-yaml  # deploy/docker/test.sh, tests/deploy
)
if [[ -n "${TORCHBRICKS_SETUP_BUILD_ONLY:-}" ]]; then
  PACKAGES=("${BUILD_PACKAGES[@]}")
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# The Node client test (tests/node) uses @grpc/grpc-js and @grpc/proto-loader from npm,
# pinned by tests/node/package-lock.json. Install only when missing or out of date.
cd "$(dirname "$0")/.."
if [[ -n "${TORCHBRICKS_SKIP_NODE:-}${TORCHBRICKS_SETUP_BUILD_ONLY:-}" || ! -f tests/node/package-lock.json ]]; then
  exit 0  # image builds and other setups without the test tree skip the Node client
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: npm not found; installing nodejs and npm"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# tests/deploy: kubernetes-models and yaml for the manifest validator, pinned the same way.
for dir in tests/node tests/deploy; do
  if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    echo "setup: installing the npm packages of $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done
