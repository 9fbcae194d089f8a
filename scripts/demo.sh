#!/usr/bin/env bash
# Set everything up, then open napari with the Affinity-VAE dock widgets.
# Arguments go to `avae demo`, e.g. `scripts/demo.sh --screenshot window.png`; relative paths
# are taken from the folder it is run in.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root" && scripts/setup.sh)
avae="$root/.venv/bin/avae"
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$avae" demo "$@"
fi
exec "$avae" demo "$@"
