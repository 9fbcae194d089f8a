"""Projects: many tomograms and one particle table across them, opened from RELION 5, RELION 4,
Dynamo, copick, a CryoET Data Portal download or a folder (:func:`open_project`)."""

from napari_affinity_vae.io.projects.project import Project, TomogramEntry
from napari_affinity_vae.io.projects.sources import check_sources, open_project

__all__ = ["Project", "TomogramEntry", "check_sources", "open_project"]
