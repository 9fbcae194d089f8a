"""copick projects, the shared format of napari-copick, copick-torch and the CryoET Data Portal's
tools, through the ``copick`` library (an optional dependency): each run is a tomogram at a chosen
voxel spacing and tomogram type, and the picks of a chosen object, user and session are the
particles. Particles go back as new picks under a user and session the user names; picks that
exist are never overwritten."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_affinity_vae.errors import AffinityVAEError, ParticleFileError
from napari_affinity_vae.io.atomic import atomic_path
from napari_affinity_vae.io.orientation import (
    angles_to_matrices,
    matrices_to_angles,
    particle_angles,
)
from napari_affinity_vae.io.projects.project import (
    Project,
    TomogramEntry,
    pick_set_label,
    read_shape,
)
from napari_affinity_vae.schema import (
    ANGLES,
    AXES,
    COPICK_OBJECT,
    COPICK_SESSION,
    COPICK_USER,
    TOMO_NAME,
)
from napari_affinity_vae.text import count

DEFAULT_USER = "avae"
LOCAL = "local://"  # a copick root on this computer's file system
PREFERRED_TYPES = ("wbp", "denoised")  # the tomogram type shown when none is chosen


@dataclass(frozen=True)
class PickSetChoice:
    """Which tomograms and picks of a copick project (or a CryoET Data Portal download): None takes
    every object, user and session, each run's finest voxel spacing, and "wbp" (else the first
    type by name)."""

    object_name: str | None = None
    user: str | None = None
    session: str | None = None
    voxel_spacing: float | None = None
    tomo_type: str | None = None

    @property
    def pick_set(self) -> tuple[str | None, str | None, str | None]:
        return self.object_name, self.user, self.session


def is_copick_config(path: Path) -> bool:
    """Whether ``path`` is a copick configuration file (JSON naming pickable objects)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        return "pickable_objects" in json.loads(path.read_text())
    except (OSError, ValueError):
        return False


def open_root(config: Path) -> Any:
    """The copick project of a configuration file."""
    try:
        import copick
    except ImportError:
        raise AffinityVAEError(
            "Reading copick projects needs the copick library: pip install copick"
        ) from None
    try:
        root = copick.from_file(str(config))
    except Exception as err:  # copick raises pydantic, JSON and file-system errors alike
        raise ParticleFileError(config, f"not a readable copick configuration ({err})") from None
    # copick finds no runs in a missing folder: the static root if there is one (the overlay
    # root may wait for the first picks written), else the overlay root
    static = str(getattr(root.config, "static_root", None) or "")
    kind = "static_root" if static else "overlay_root"
    folder = _local_folder(str(getattr(root.config, kind, None) or ""))
    if folder is not None and not folder.is_dir():
        raise ParticleFileError(
            config,
            f"its {kind} {folder} is no folder here (a relative root counts from the folder "
            f"napari or avae was started in, {Path.cwd()})",
        )
    return root


def _local_folder(root: str) -> Path | None:
    """The folder of a copick root on this computer (``local://...`` or a plain path), None for
    none or another file system's."""
    if root.startswith(LOCAL):
        return Path(root[len(LOCAL) :]).expanduser()
    return None if not root or "://" in root else Path(root).expanduser()


def read_copick(config: Path, choice: PickSetChoice | None = None) -> Project:
    """The runs as tomograms and the chosen picks as particles (z, y, x voxels of each run's
    tomogram; ``rot``, ``tilt``, ``psi`` from the picks' rotations), and the count of every
    pick set, chosen or not."""
    config, choice = Path(config), choice or PickSetChoice()
    root = open_root(config)
    entries, tables, sets = {}, [], Counter()
    for run in root.runs:
        entries[run.name] = run_entry(run, choice)
        for picks in _distinct(run.picks):
            key = (picks.pickable_object_name, picks.user_id, picks.session_id)
            if not all(c in (None, k) for c, k in zip(choice.pick_set, key, strict=True)):
                sets[key] += len(read_picks(picks)[0])
                continue
            table = picks_table(run.name, picks, entries[run.name].voxel_size)
            sets[key] += len(table)
            tables.append(table)
    columns = [TOMO_NAME, *AXES, *ANGLES, COPICK_OBJECT, COPICK_USER, COPICK_SESSION]
    particles = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    origins = dict.fromkeys(entries, (0.0, 0.0, 0.0))  # picks are Angstrom from the corner
    return Project(
        entries,
        particles,
        sources=(config.resolve(),),
        pick_sets=dict(sets),
        angstrom_origins=origins,
    )


def _distinct(pick_sets: list[Any]) -> list[Any]:
    """One pick set per (object, user, session): copick lists a project's picks once from its
    static and once from its overlay root, even when the two are the same folder."""
    found = {}
    for picks in pick_sets:
        found.setdefault((picks.pickable_object_name, picks.user_id, picks.session_id), picks)
    return list(found.values())


def run_entry(run: Any, choice: PickSetChoice) -> TomogramEntry:
    """A run as a tomogram: its files are the tomogram types at the chosen voxel spacing, the
    chosen type first."""
    spacings = sorted(run.voxel_spacings, key=lambda vs: vs.voxel_size)
    if choice.voxel_spacing is not None:
        spacings = [vs for vs in spacings if np.isclose(vs.voxel_size, choice.voxel_spacing)]
    spacings = [vs for vs in spacings if vs.tomograms]
    if not spacings:
        at = f" at {choice.voxel_spacing:g} Å" if choice.voxel_spacing is not None else ""
        return TomogramEntry(run.name, {}, choice.voxel_spacing, None, problem=f"no tomogram{at}")
    spacing = spacings[0]
    files = {tomo.tomo_type: _local_path(tomo) for tomo in spacing.tomograms}
    wanted = choice.tomo_type or next((t for t in PREFERRED_TYPES if t in files), min(files))
    if wanted not in files:
        problem = f"no {wanted} tomogram at {spacing.voxel_size:g} Å (has {', '.join(files)})"
        return TomogramEntry(run.name, {}, spacing.voxel_size, None, problem=problem)
    files = {wanted: files.pop(wanted), **files}
    shape, voxel_size, problem = read_shape(files[wanted])
    return TomogramEntry(run.name, files, voxel_size or spacing.voxel_size, shape, problem=problem)


def _local_path(tomogram: Any) -> Path:
    """Where a tomogram of a project on this computer's file system lies."""
    for path, fs in (
        (tomogram.overlay_path, tomogram.fs_overlay),
        (tomogram.static_path, tomogram.fs_static),
    ):
        if fs is not None and "file" in np.atleast_1d(fs.protocol) and Path(path).exists():
            return Path(path)
    raise ParticleFileError(
        Path(str(tomogram.overlay_path)),
        "is not on this computer's file system; copy the copick project locally first",
    )


def picks_table(run_name: str, picks: Any, voxel_size: float | None) -> pd.DataFrame:
    """A pick set's points as particles in voxels of the run's tomogram (NaN if its voxel size
    is unknown)."""
    points, rotations = read_picks(picks)
    zyx = points[:, ::-1] / (voxel_size or np.nan)
    angles = matrices_to_angles(rotations)
    table = pd.DataFrame(zyx, columns=list(AXES))
    table[list(ANGLES)] = angles
    table.insert(0, TOMO_NAME, run_name)
    table[COPICK_OBJECT] = picks.pickable_object_name
    table[COPICK_USER] = picks.user_id
    table[COPICK_SESSION] = picks.session_id
    return table


def read_picks(picks: Any) -> tuple[np.ndarray, np.ndarray]:
    """A pick set's positions (n, 3: x, y, z Angstrom, each point's location plus its transform's
    translation, where subtomogram averaging puts refined shifts) and rotations (n, 3, 3); a
    file listing no points (``null``) has none, one copick cannot read is named."""
    try:
        points, transforms = picks.numpy() if picks.points else ((), ())
    except Exception as err:  # copick raises pydantic and JSON errors for a malformed file
        path = Path(str(getattr(picks, "path", picks.pickable_object_name)))
        raise ParticleFileError(path, f"not a readable copick picks file ({err})") from None
    transforms = np.asarray(transforms, dtype=float).reshape(-1, 4, 4)
    positions = np.asarray(points, dtype=float).reshape(-1, 3) + transforms[:, :3, 3]
    return positions, transforms[:, :3, :3]


def copick_config(project: Project | None) -> Path | None:
    """The configuration file of a project opened from copick, else None."""
    sources = project.sources if project is not None else ()
    return sources[0] if len(sources) == 1 and is_copick_config(sources[0]) else None


def object_names(config: Path) -> list[str]:
    """The pickable objects of a copick project, as its configuration lists them."""
    return [o.name for o in open_root(config).pickable_objects]


def next_session(config: Path, object_name: str, user: str) -> str:
    """The lowest number not yet a session of ``user``'s picks of ``object_name`` in any run."""
    root = open_root(config)
    taken = {
        picks.session_id
        for run in root.runs
        for picks in run.get_picks(object_name=object_name, user_id=user)
    }
    return str(next(n for n in range(len(taken) + 1) if str(n) not in taken))


def write_copick_picks(
    config: Path,
    project: Project,
    parts: dict[str, pd.DataFrame],
    object_name: str,
    user: str = DEFAULT_USER,
) -> list[str]:
    """Write each part (session id: particles) as picks of ``object_name`` by ``user`` in the
    runs its particles belong to, and return what was written. An object the configuration
    lacks is added to it (a particle). Refused before anything is written if any of these pick
    sets exists: picks are never overwritten."""
    root = open_root(config)
    from copick.util.escape import sanitize_name

    user, object_name = user.strip(), object_name.strip()
    if not user or not object_name:
        raise AffinityVAEError("Name the copick user and object to write picks under")
    for what, name in (("object", object_name), ("user", user), *(("session", s) for s in parts)):
        try:
            valid = sanitize_name(name, suppress_warnings=True)
        except ValueError:  # nothing but characters copick refuses
            valid = "letters, digits and '-'"
        if valid != name:
            raise AffinityVAEError(
                f"A copick {what} is named without spaces, '_' or '/': {name!r} could be {valid!r}"
            )
    runs = {run.name: run for run in root.runs}
    for session, table in parts.items():
        for name in table[TOMO_NAME].astype(str).unique():
            if name not in runs:
                raise ParticleFileError(config, f"has no run {name!r} for the picks")
            if runs[name].get_picks(object_name=object_name, user_id=user, session_id=session):
                raise AffinityVAEError(
                    f"{config}: run {name} already has picks of {object_name} by {user}, "
                    f"session {session}; choose another session (picks are never overwritten)"
                )
    if root.get_object(object_name) is None:
        root.new_object(object_name, is_particle=True)
        with atomic_path(config) as tmp:
            tmp.write_text(json.dumps(root.config.model_dump(), indent=4))
    written = []
    for session, table in parts.items():
        for name, rows in table.groupby(table[TOMO_NAME].astype(str), sort=False):
            _store(runs[name], rows, project.tomograms[name].voxel_size, object_name, user, session)
        runs_named = table[TOMO_NAME].nunique()
        label = pick_set_label((object_name, user, session))
        written.append(f"{label}: {count(len(table), 'pick')} in {count(runs_named, 'run')}")
    return written


def _store(run: Any, rows: pd.DataFrame, voxel_size: float | None, *names: str) -> None:
    """One run's particles as a new pick set (Angstrom positions, rotations from the angles)."""
    if not voxel_size:
        raise ParticleFileError(Path(run.name), "the voxel size of its tomogram is unknown")
    object_name, user, session = names
    positions = rows[list(AXES)].to_numpy(dtype=float)[:, ::-1] * voxel_size
    transforms = np.tile(np.eye(4), (len(rows), 1, 1))
    if set(ANGLES) <= set(rows):
        transforms[:, :3, :3] = angles_to_matrices(particle_angles(rows))
    picks = run.new_picks(object_name, session_id=session, user_id=user)
    picks.from_numpy(positions, transforms)
    picks.store()
