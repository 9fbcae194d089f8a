#!/usr/bin/env bash
# Set everything up, then open napari with the Affinity-VAE dock widgets.
# Arguments go to `avae demo`, e.g. `scripts/demo.sh --screenshot window.png`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/avae demo "$@"
fi
exec .venv/bin/avae demo "$@"
