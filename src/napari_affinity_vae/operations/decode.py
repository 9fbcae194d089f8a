"""What to decode (a particle's latent and pose, a selection's mean, a cluster's centre, or a
traversal along one latent dimension), and the decoding: volumes, and a splat model's
Gaussians."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from napari_affinity_vae.analysis.clustering import snap_centres
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.model.checkpoint import ModelCard
from napari_affinity_vae.model.inference import Splats, decode, splats
from napari_affinity_vae.model.network import AffinityVAE

PARTICLE, MEAN, CENTRE = "particle", "mean", "centre"
TRAVERSAL_STEPS = 9


def source_vector(
    latent: np.ndarray,
    pose: np.ndarray | None,
    *,
    source: str,
    selection: np.ndarray,
    clusters: np.ndarray | None = None,
    cluster: int = 0,
    rotation: bool = False,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The latent and pose to decode and the row of the particle that places the volume: the
    first selected particle, the selection's mean (placed at its member nearest the mean), or
    the centre of ``cluster`` (the particle nearest its mean). A pose that is a ``rotation``
    (a splat model's quaternion) is averaged as rotations (:func:`mean_rotation`)."""
    pose = pose if pose is not None else np.zeros((len(latent), 0))
    embedded = np.isfinite(latent).all(axis=1)  # a tomogram that was not embedded has none
    chosen = np.asarray(selection, dtype=np.int64)
    selection = chosen[embedded[chosen]]
    if source == CENTRE:
        if clusters is None:
            raise AffinityVAEError("Cluster the particles first (Embed widget)")
        centres = snap_centres(latent, clusters)
        if cluster not in centres:
            raise AffinityVAEError(f"There is no cluster {cluster}")
        row = centres[cluster]
        return latent[row], pose[row], row
    rows = selection
    if len(chosen) and not len(rows):
        raise AffinityVAEError(
            f"None of the {len(chosen)} selected particles is embedded (added or moved by hand "
            "since the embedding, or of a tomogram not embedded): embed again"
        )
    if not len(rows):
        raise AffinityVAEError("The selection is empty: select some particles first")
    if source == PARTICLE:
        return latent[rows[0]], pose[rows[0]], int(rows[0])
    mean = latent[rows].mean(axis=0)
    nearest = int(rows[np.argmin(np.linalg.norm(latent[rows] - mean, axis=1))])
    average = mean_rotation(pose[rows]) if rotation else pose[rows].mean(axis=0)
    return mean, average, nearest


def mean_rotation(quaternions: np.ndarray) -> np.ndarray:
    """The mean rotation of quaternions (n, 4; w first), as a unit quaternion: scipy's mean,
    which takes q and -q as the one rotation they are (averaged as numbers, they cancel)."""
    mean = Rotation.from_quat(np.roll(quaternions, -1, axis=1)).mean().as_quat()
    return np.roll(mean, 1)


def traversal(
    latent: np.ndarray,
    pose: np.ndarray,
    dimension: int,
    span: tuple[float, float],
    steps: int = TRAVERSAL_STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` latents along ``dimension`` across ``span``, the other dimensions and the pose
    held at ``latent`` and ``pose``: (steps, latent_dims) and (steps, pose_dims)."""
    latents = np.repeat(np.asarray(latent, dtype=np.float32)[None], steps, axis=0)
    latents[:, dimension] = np.linspace(span[0], span[1], steps)
    poses = np.repeat(np.asarray(pose, dtype=np.float32)[None], steps, axis=0)
    return latents, poses


@dataclass
class Decoded:
    """Decoded volumes (n, *box), voxels of ``voxel_size`` Angstrom, and a splat model's
    Gaussians (None for a convolutional decoder)."""

    volumes: np.ndarray
    voxel_size: float
    splats: Splats | None


def is_splat(card: ModelCard | None) -> bool:
    """Whether a model decodes with Gaussian splats."""
    return card is not None and card.architecture.decoder == "splat"


def decode_volumes(
    model: AffinityVAE, card: ModelCard, latents: np.ndarray, poses: np.ndarray, box: int
) -> Decoded:
    """Volumes of ``box`` voxels a side spanning the model's box (a splat model renders any
    box; a convolutional one only its own) and a splat model's Gaussians."""
    zoom = box / card.architecture.box
    volumes = decode(model, latents, poses, box, zoom)
    if not is_splat(card):
        return Decoded(volumes, card.voxel_size, None)
    return Decoded(volumes, card.voxel_size / zoom, splats(model, latents, poses, card.voxel_size))
