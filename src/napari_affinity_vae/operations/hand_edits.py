"""A project's particle table after points are added, moved or removed by hand in the viewer:
an added or moved particle is not embedded until the project is embedded again (no latent, no
place in the scatter, cluster -1), and every other particle keeps its place and selection."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from napari_affinity_vae.schema import (
    AXES,
    CLUSTER,
    CLUSTER_CENTRE,
    OPTICS_GROUP,
    OWN_COLUMNS,
    SETTING_COLUMNS,
    TOMO_NAME,
    TOMOGRAM_MISSING,
    derived_columns,
)


class HandEdit(NamedTuple):
    """A table after a hand edit, the rows it edited, and the selection on the rows kept."""

    table: pd.DataFrame
    rows: np.ndarray
    selection: np.ndarray


def applied(
    table: pd.DataFrame,
    shown: np.ndarray,
    action: str,
    points: np.ndarray,
    positions: np.ndarray,
    name: str | None,
    selection: np.ndarray,
) -> HandEdit:
    """``table`` after a layer showing its rows ``shown`` (of tomogram ``name``) had its
    ``points`` "added", "changed" (moved) or "removed" by hand, now at ``positions``; the
    ``selection`` kept on the particles that stay. The table's ``attrs`` stay."""
    attrs = dict(table.attrs)
    edited = shown[points] if action != "added" else np.zeros(0, dtype=np.int64)
    if action == "removed":
        table = removed(table, edited)
        selection = kept_rows(selection, edited)
    elif action == "changed":
        table = moved(table, edited, positions)
    else:
        table = added(table, shown, positions, name)
    table.attrs = attrs
    return HandEdit(table, edited, selection)


def hand_picked(features: pd.DataFrame, added: np.ndarray) -> pd.DataFrame:
    """``features`` with the rows of points just added by hand (``added``: their indices) made
    anew, rather than napari's copy of the last or selected point's: a value every other
    particle shares (their tomogram and optics group; with two or more, any but what each is or
    was found as), and nothing else, so no label, class, score, angles or identifier of another
    particle."""
    new = np.zeros(len(features), dtype=bool)
    new[np.asarray(added, dtype=int)] = True
    others = features[~new]
    made = features.copy()
    for column in features:
        values = others[column]
        alike = len(values) > 0 and values.nunique(dropna=False) == 1
        shared = alike and (
            column in SETTING_COLUMNS or (len(values) > 1 and column not in OWN_COLUMNS)
        )
        made[column] = features[column].mask(new, values.iloc[0] if shared else np.nan)
    return made


def added(
    table: pd.DataFrame, own: np.ndarray, positions: np.ndarray, name: str | None
) -> pd.DataFrame:
    """``table`` with particles at ``positions`` (z, y, x voxels) of tomogram ``name``, whose
    rows are ``own``, appended: each with what its tomogram's other particles share (as a point
    added by hand beside them has; of a tomogram without any, the one optics group every
    particle of the project shares, but no other tomogram's file name) and nothing of another
    particle's."""
    features = table.iloc[own].drop(columns=list(AXES)).reset_index(drop=True)
    blank = features.iloc[:0].reindex(range(len(positions)))
    made = hand_picked(pd.concat([features, blank], ignore_index=True), len(own) + blank.index)
    new = made.iloc[len(own) :].reset_index(drop=True)
    for column in (OPTICS_GROUP,) if not len(own) else ():
        values = table[column].dropna().unique() if column in table else []
        if len(values) == 1:
            new[column] = values[0]
    new[TOMO_NAME] = name
    if TOMOGRAM_MISSING in table:
        new[TOMOGRAM_MISSING] = False
    new[list(AXES)] = np.asarray(positions, dtype=float).reshape(-1, 3)
    grown = pd.concat([table, new[table.columns]], ignore_index=True)
    return _as_before(not_embedded(grown, np.arange(len(table), len(grown))), table)


def moved(table: pd.DataFrame, rows: np.ndarray, positions: np.ndarray) -> pd.DataFrame:
    """``table`` with particles ``rows`` at ``positions`` (z, y, x voxels), not embedded."""
    table = table.copy()
    table.loc[table.index[rows], list(AXES)] = np.asarray(positions, dtype=float).reshape(-1, 3)
    return not_embedded(table, rows)


def removed(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``table`` without particles ``rows``."""
    return table.drop(index=table.index[rows]).reset_index(drop=True)


def kept_rows(rows: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """Where table ``rows`` are once the rows ``gone`` are removed (those gone are dropped)."""
    rows, gone = np.asarray(rows, dtype=np.int64), np.unique(np.asarray(gone, dtype=np.int64))
    rows = rows[~np.isin(rows, gone)]
    return rows - np.searchsorted(gone, rows)


def rows_after(n: int, action: str, rows: np.ndarray) -> np.ndarray:
    """Where each of a table's ``n`` rows is after ``rows`` were "added" (appended), "changed"
    (moved) or "removed" by hand: -1 for a row removed, and for one moved (what was computed
    on it no longer holds)."""
    edited = np.zeros(n, dtype=bool)
    edited[np.asarray(rows, dtype=np.int64)] = True
    after = np.cumsum(~edited) - 1 if action == "removed" else np.arange(n)
    after[edited] = -1
    return after


def carried(columns: pd.DataFrame, where: np.ndarray, n: int) -> pd.DataFrame:
    """Result ``columns`` computed on a table whose rows are now at ``where`` (see
    :func:`rows_after`) of a table of ``n`` rows, put on them; the rows added or moved since
    are not embedded."""
    if len(columns) != len(where):
        raise ValueError(f"{len(columns)} result rows for {len(where)} particles")
    kept = np.flatnonzero(where >= 0)
    placed = columns.iloc[kept].set_axis(where[kept]).reindex(range(n))
    return _as_before(not_embedded(placed, np.setdiff1d(np.arange(n), where[kept])), columns)


def not_embedded(table: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``table`` with the derived values of ``rows`` those of a particle not embedded."""
    mask = np.zeros(len(table), dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = True
    table = table.copy()
    for column in derived_columns(table):
        if column == CLUSTER:
            table[column] = table[column].where(~mask, -1).fillna(-1).astype(np.int64)
        elif column == CLUSTER_CENTRE:
            table[column] = table[column].where(~mask, False).fillna(False).astype(bool)
        else:
            table[column] = table[column].mask(mask)
    return table


def _as_before(table: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """``table``'s integer and boolean columns in ``before``'s dtypes where no row lacks a
    value (the new rows made them floats or objects: RELION would read 1.000000 as a group)."""
    for column, dtype in before.dtypes.items():
        whole = pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
        if whole and table[column].dtype != dtype and table[column].notna().all():
            table[column] = table[column].astype(dtype)
    return table
