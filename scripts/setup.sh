#!/usr/bin/env bash
# Installs what TorchBricks Serve needs: Debian packages, the project's Python environment .venv
# (torch and the Python packages, pinned in requirements/python.txt), and the npm packages of
# the Node tests.
#
#   bash scripts/setup.sh [all|serve|build]
#     all    (default) everything the tests need (scripts/test.sh)
#     serve  what scripts/run_example.sh needs: the build packages and the whole .venv
#     build  the image's build stage: the build packages and torch alone in .venv
#
# Idempotent: when everything is already installed it only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
case $MODE in
  all | serve | build) ;;
  *) echo "usage: scripts/setup.sh [all|serve|build]" >&2; exit 2 ;;
esac

# What compiling needs (and .venv, whose torch wheel holds the libtorch the C++ code links).
BUILD_PACKAGES=(
  build-essential cmake pkg-config ninja-build python3 python3-venv
  libopenblas0-openmp  # OpenCV's BLAS, on the same libgomp.so.1 as torch (docs/TORCH.md)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libopencv-dev libjpeg62-turbo-dev libpng-dev  # JPEG and PNG files: core/execution/jpeg_decoder.h, core/execution/png_codec.h
  ccache  # compiles of another clone of the same sources come from the cache (CMakeLists.txt)
)
PACKAGES=(
  "${BUILD_PACKAGES[@]}"
  prometheus clang-format
  clang-14 libclang-rt-14-dev libomp-14-dev  # sanitizer and fuzzing builds (scripts/sanitize.sh)
  openssl  # test certificates (tests/python/test_server_security.py)
  patchelf  # the GPU check's relocatable bundle (scripts/make_gpu_bundle.sh)
  docker.io debootstrap docker-compose  # deploy/docker/test.sh, tests/deploy
)
if [[ $MODE != all ]]; then
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

# The project's Python: a virtual environment made from Debian's /usr/bin/python3, with the
# packages of requirements/python.txt (torch, torchvision, torchbricks, grpcio, pytest, ...).
# Installed again only when that file changed since the last install (its hash is kept in
# the environment); pip's own cache makes a reinstall quick.
VENV=.venv
LOCK=requirements/python.txt

# make_environment VENV LOCK: makes the virtual environment VENV from /usr/bin/python3 if it is
# missing, and installs the pins of LOCK into it unless the hash of LOCK recorded there matches.
make_environment() {
  local venv=$1 lock=$2 wanted
  if [[ ! -x $venv/bin/python ]]; then
    echo "setup: making the Python environment $venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  wanted=$(sha256sum "$lock" | cut -d' ' -f1)
  if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]]; then
    echo "setup: installing $lock into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$lock"
    echo "$wanted" > "$venv/.requirements.sha256"
  else
    echo "setup: $venv matches $lock"
  fi
}

if [[ $MODE == build ]]; then
  # The image's build stage compiles against torch alone (its pin from the lock file).
  if [[ ! -x $VENV/bin/python ]]; then /usr/bin/python3 -m venv "$VENV"; fi
  echo "setup: installing torch into $VENV (build only)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "$(grep -E '^torch==' "$LOCK")"
else
  make_environment "$VENV" "$LOCK"
fi

# --- Issue 24, KServe and kustomize: what tests/python/test_kserve_client.py and
# tests/deploy/test_deploy_manifests.py need (setup mode `all` only) ---------------------------
if [[ $MODE == all ]]; then
  # KServe's Python SDK in its own environment .venv-kserve: kserve 0.21 needs protobuf >= 6.33.5,
  # the project pins 4.25. Installed again only when requirements/kserve.txt changed.
  make_environment .venv-kserve requirements/kserve.txt

  # kustomize, built from the Go module proxy into .tools/bin (git ignores it), skipped when it
  # is there at the pinned version. v5.8.2 is the newest release whose kustomize/api (v0.21.2)
  # builds with Go 1.26 (v5.8.3 needs Go 1.27). A cold `go install` (empty module and build
  # caches) took 49-83 s on the 2-core machine beside other builds; with Go's caches warm
  # (~/go/pkg/mod, ~/.cache/go-build) a new clone's build took 5 s.
  KUSTOMIZE_VERSION=v5.8.2
  if [[ "$(.tools/bin/kustomize version 2>/dev/null)" == "$KUSTOMIZE_VERSION" ]]; then
    echo "setup: kustomize $KUSTOMIZE_VERSION present"
  else
    GO=$(command -v go || echo /usr/local/go/bin/go)
    if [[ ! -x $GO ]]; then
      echo "setup: building kustomize needs Go >= 1.26, and there is no go" >&2
      exit 1
    fi
    echo "setup: building kustomize $KUSTOMIZE_VERSION with $("$GO" version | cut -d' ' -f3)"
    started=$SECONDS
    GOBIN=$PWD/.tools/bin GOTOOLCHAIN=local \
      "$GO" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    echo "setup: kustomize built in $((SECONDS - started)) s"
  fi
fi
# --- end of issue 24, KServe and kustomize ---------------------------------------------------

# --- perf_analyzer (Triton's load tool; tests/python/test_perf_analyzer.py, bench/) ---------
# Pinned in requirements/perf_analyzer.txt. Its wheel is one prebuilt binary tagged
# manylinux_2_38: it needs glibc >= 2.38 and libstdc++ >= GLIBCXX_3.4.32, newer than Debian 12's
# (2.36, GCC 12), so pip will not install it into .venv. It goes, unmodified, into
# .tools/perf_analyzer/site (pip --target for that platform); Debian 13's libc6, libstdc++6 and
# libgcc-s1 are unpacked (never installed) into .tools/perf_analyzer/debian13 through a private
# apt configuration that leaves the system's sources and package state alone; and
# scripts/perf_analyzer.sh runs the binary through that glibc's loader. Its other needs (libz,
# libssl3) are the system's. Its shared-memory code opens libcudart.so even for system shared
# memory, so .tools/perf_analyzer/lib/libcudart.so links to the CUDA runtime torch installed in
# .venv (no GPU is needed to load it). Redone when the pin file changes.
if [[ $MODE == all && -z "${TORCHBRICKS_SKIP_PERF_ANALYZER:-}" ]]; then
  PA_DIR=.tools/perf_analyzer
  PA_PINS=requirements/perf_analyzer.txt
  pa_wanted=$(sha256sum "$PA_PINS" | cut -d" " -f1)
  if [[ "$(cat "$PA_DIR/.installed" 2>/dev/null)" != "$pa_wanted" ]]; then
    echo "setup: installing perf_analyzer ($PA_PINS) into $PA_DIR"
    rm -rf "$PA_DIR"
    mkdir -p "$PA_DIR/apt/lists/partial" "$PA_DIR/apt/cache/archives/partial" "$PA_DIR/debs" \
      "$PA_DIR/debian13" "$PA_DIR/lib"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
      --only-binary=:all: --platform manylinux_2_38_x86_64 --target "$PA_DIR/site" -r "$PA_PINS"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
      "http://deb.debian.org/debian trixie main" > "$PA_DIR/apt/sources.list"
    pa_apt=(-o "Dir::Etc::SourceList=$PWD/$PA_DIR/apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
      -o "Dir::State::Lists=$PWD/$PA_DIR/apt/lists" -o "Dir::Cache=$PWD/$PA_DIR/apt/cache"
      -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
      -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
      -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
      -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
      -o "Acquire::Languages=none" -o "APT::Sandbox::User=root")
    apt-get "${pa_apt[@]}" -qq update
    (cd "$PA_DIR/debs" && apt-get "${pa_apt[@]}" -qq download libc6 libstdc++6 libgcc-s1)
    for deb in "$PA_DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$PA_DIR/debian13"; done
    cudart=$(ls "$VENV"/lib/python3*/site-packages/nvidia/cu*/lib/libcudart.so.* 2>/dev/null | head -1)
    if [[ -z $cudart ]]; then
      echo "setup: no libcudart.so.* under $VENV (torch's nvidia-cuda-runtime); perf_analyzer" \
        "cannot use shared memory" >&2
      exit 1
    fi
    ln -sfn "$(realpath "$cudart")" "$PA_DIR/lib/libcudart.so"
    rm -rf "$PA_DIR/apt" "$PA_DIR/debs"
    scripts/perf_analyzer.sh --version
    echo "$pa_wanted" > "$PA_DIR/.installed"
  else
    echo "setup: $PA_DIR matches $PA_PINS"
  fi
fi

# The Node client test (tests/node) uses @grpc/grpc-js and @grpc/proto-loader from npm,
# pinned by tests/node/package-lock.json. Install only when missing or out of date.
if [[ $MODE != all || -n "${TORCHBRICKS_SKIP_NODE:-}" || ! -f tests/node/package-lock.json ]]; then
  exit 0  # serving, image builds and setups without the test tree skip the Node clients
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
