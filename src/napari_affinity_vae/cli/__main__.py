"""``python -m napari_affinity_vae.cli``: the ``avae`` command, as ``torchrun`` starts it."""

import sys

from napari_affinity_vae.cli import main

sys.exit(main())
