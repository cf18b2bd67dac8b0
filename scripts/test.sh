#!/usr/bin/env bash
# Sets everything up, builds, and runs every test: GoogleTest and the fixture export
# through ctest, then the Python tests through pytest (Debian's /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh

status=0
(cd build && ctest --output-on-failure --timeout 900) || status=1

export TORCHBRICKS_CLI="$PWD/build/tools/torchbricks"
export PYTHONPATH="$PWD/clients/python:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python || status=1
exit $status
