#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: GoogleTest and the fixture export
# through ctest, then the Python tests through pytest (.venv/bin/python, the project's
# Python that setup.sh makes, with the deployment manifests' tests in tests/deploy), then
# the Docker image test
# (deploy/docker/test.sh), then the sanitizer build's tests (scripts/sanitize.sh asan).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

status=0
(cd build && ctest --output-on-failure --timeout 900) || status=1

export TORCHBRICKS_CLI="$PWD/build/tools/torchbricks"
export PYTHONPATH="$PWD/clients/python/client:$PWD/clients/python/exporter:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python tests/deploy || status=1

# The image: built and run with our clients (skipped, saying why, where dockerd cannot run).
bash deploy/docker/test.sh || status=1

# The same C++ tests, fuzz smoke runs and server tests under ASan + UBSan (clang-14, in
# build-asan/): about 30 minutes on 2 cores from scratch (docs/RELIABILITY.md).
bash scripts/sanitize.sh asan || status=1
exit $status
