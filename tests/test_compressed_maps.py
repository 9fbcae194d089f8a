"""Gzip- and bzip2-compressed maps (``emd_3197.map.gz``): opened decompressed, refused when too
large to hold in memory, and accepted by napari's reader."""

from __future__ import annotations

import bz2
import gzip

import mrcfile
import numpy as np
import pytest

from conftest import blob_map, write_mrc
from napari_affinity_vae._reader import get_tomogram_reader, read_tomograms
from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.tomogram import open_tomogram


@pytest.mark.parametrize(("name", "compress"), [("emd_3197.map.gz", gzip), ("ref.mrc.bz2", bz2)])
def test_compressed_maps_open_decompressed(tmp_path, name, compress):
    volume = blob_map(0)
    plain = write_mrc(tmp_path / "plain.mrc", volume, voxel_size=11.4)
    path = tmp_path / name
    path.write_bytes(compress.compress(plain.read_bytes()))
    with pytest.warns(UserWarning, match="decompressed into memory .* rather than memory-mapped"):
        tomogram = open_tomogram(path)
    np.testing.assert_array_equal(tomogram.data, volume)
    assert tomogram.voxel_size == pytest.approx(11.4)
    assert tomogram.name == name.split(".")[0]


def test_a_compressed_map_too_large_for_memory_is_refused_from_its_header(tmp_path):
    with mrcfile.new(tmp_path / "small.mrc", np.zeros((2, 2, 2), np.float32)) as mrc:
        header = mrc.header.copy()
    header.nx = header.ny = header.nz = 1024  # 4.3 GB of float32 (mode 2)
    noise = np.random.default_rng(0).bytes(1_000_000)  # does not compress
    whole = gzip.compress(header.tobytes() + noise)
    path = tmp_path / "huge.map.gz"
    path.write_bytes(whole[:200_000])  # cut short: reading past its first kilobytes would fail
    with pytest.raises(TomogramFileError, match=r"4\.3 GB decompressed") as refusal:
        open_tomogram(path)
    message = str(refusal.value)
    assert "decompress it (gunzip huge.map.gz) and open huge.map" in message
    assert "memory-mapped" in message


def test_a_truncated_compressed_map_says_so(tmp_path):
    plain = write_mrc(tmp_path / "plain.mrc", blob_map(0))
    whole = gzip.compress(plain.read_bytes())
    path = tmp_path / "cut.map.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.warns(UserWarning), pytest.raises(TomogramFileError, match="truncated"):
        open_tomogram(path)
    (tmp_path / "notes.map.gz").write_bytes(gzip.compress(b"not a map" * 200))
    with pytest.raises(TomogramFileError, match="not a readable gzip-compressed MRC file"):
        open_tomogram(tmp_path / "notes.map.gz")


def test_napari_reads_compressed_maps_and_only_maps(tmp_path):
    plain = write_mrc(tmp_path / "plain.mrc", blob_map(0), voxel_size=11.4)
    path = tmp_path / "emd_3197.MAP.GZ"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    assert get_tomogram_reader(str(path)) is read_tomograms
    assert get_tomogram_reader([str(plain), str(path)]) is read_tomograms
    for other in ("picks.star.gz", "emd_3197.gz", "notes.txt.bz2"):
        assert get_tomogram_reader(str(tmp_path / other)) is None
    with pytest.warns(UserWarning, match="not memory-mapped|rather than memory-mapped"):
        [(data, kwargs, kind)] = read_tomograms(str(path))
    assert kind == "image" and data.shape == (20, 20, 20)
    assert kwargs["name"] == "emd_3197" and kwargs["scale"] == pytest.approx((11.4,) * 3)


def test_a_compressed_tomogram_and_its_coordinates_are_a_project_as_embed_takes_them(
    tmp_path, capsys
):
    from napari_affinity_vae.cli import main

    plain = write_mrc(tmp_path / "TS_01.mrc", blob_map(0), voxel_size=10.0)
    packed = tmp_path / "TS_01.mrc.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n10,10,10\n")
    assert main(["project", str(packed), str(picks)]) == 0
    listed = capsys.readouterr().out
    assert "1 tomogram, 1 particle" in listed and "truncated" not in listed
    assert "TS_01: 1 particle, 20 x 20 x 20 voxels at 10 Å" in listed


def test_affinity_of_compressed_maps_warns_once_per_map(tmp_path, capsys):
    """The maps' sizes are read before they are loaded: each map's warning was printed twice."""
    from napari_affinity_vae.cli import main

    maps = []
    for seed in (0, 1):
        plain = write_mrc(tmp_path / f"ref{seed}.mrc", blob_map(seed), voxel_size=10.0)
        maps.append(tmp_path / f"ref{seed}.map.gz")
        maps[-1].write_bytes(gzip.compress(plain.read_bytes()))
    out = tmp_path / "affinity.csv"
    assert main(["affinity", *map(str, maps), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for path in maps:
        assert err.count(f"warning: {path}: gzip-compressed, so decompressed") == 1
    assert out.is_file()
