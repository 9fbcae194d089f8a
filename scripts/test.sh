#!/usr/bin/env bash
# Set everything up, check the code style, then run the whole test suite (GUI tests under Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
# copick pins zarr 2 (installed above); the Zarr tests run again on zarr 3 and its ome-zarr.
rm -rf .venv/zarr3
.venv/bin/pip install -q --target .venv/zarr3 --no-deps "zarr>=3" "ome-zarr>=0.12" \
    "numcodecs>=0.16" donfig google-crc32c ome-zarr-models pydantic-zarr
PYTHONPATH=.venv/zarr3 xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest -m zarr "$@"
