"""OME-Zarr tomograms: reading NGFF 0.4 and 0.5 multiscales, choosing a level by voxel size,
boxes cut chunk by chunk, and embedding that gives the latents the same data gives from MRC."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from napari_affinity_vae.cli import main
from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.omezarr import write_ome_zarr
from napari_affinity_vae.io.particles import read_particles
from napari_affinity_vae.io.projects import open_project
from napari_affinity_vae.io.tomogram import open_tomogram, write_tomogram
from napari_affinity_vae.model.bundled import load_bundled
from napari_affinity_vae.model.embedding import embed
from napari_affinity_vae.particles.chunked import planned_reads
from napari_affinity_vae.particles.extract import extract_boxes
from napari_affinity_vae.schema import AXES, TOMO_NAME, latent_columns
from zarr_files import V2, portal_style_zarr, simulated_project_listing

pytestmark = pytest.mark.zarr


def test_a_written_ome_zarr_opens_with_its_levels_voxel_size_and_name(tmp_path):
    data = np.random.default_rng(0).normal(size=(40, 64, 80)).astype(np.float32)
    write_ome_zarr(tmp_path / "TS_01.zarr", data, 7.5, levels=3, chunks=32)
    tomogram = open_tomogram(tmp_path / "TS_01.zarr")
    assert (
        tomogram.name == "TS_01" and tomogram.voxel_size == 7.5 and tomogram.shape == (40, 64, 80)
    )
    assert [lv.data.shape for lv in tomogram.levels] == [(40, 64, 80), (20, 32, 40), (10, 16, 20)]
    assert [lv.factor for lv in tomogram.levels] == [1, 2, 4]
    np.testing.assert_array_equal(tomogram.data[5:9, 10:20, 30:31], data[5:9, 10:20, 30:31])
    assert not list(tmp_path.glob("*.partial"))
    coarse, level = tomogram.level_for(16.0)
    assert coarse.voxel_size == 15.0 and coarse.shape == (20, 32, 40)
    # a level's voxel 0 holds the mean of finest voxels 0 and 1: its centre is at 0.5
    np.testing.assert_allclose(level.to_level([[0.5, 2.5, 4.5]]), [[0, 1, 2]])
    np.testing.assert_allclose(level.from_level([[0, 1, 2]]), [[0.5, 2.5, 4.5]])
    assert tomogram.level_for(7.0)[0] is tomogram  # nothing finer than the finest


def test_ome_zarr_tomograms_in_a_folder_take_their_coordinate_files_by_name(tmp_path):
    """``TS_01.ome.zarr`` (as most OME-Zarr writers name it) and a Zarr folder named ``TS_02``
    without a suffix: each is the tomogram of the CSV of its name."""
    data = np.zeros((16, 32, 32), np.float32)
    write_ome_zarr(tmp_path / "TS_01.ome.zarr", data, 10.0, levels=1, chunks=16)
    write_ome_zarr(tmp_path / "TS_02.zarr", data, 10.0, levels=1, chunks=16)
    (tmp_path / "TS_02.zarr").rename(tmp_path / "TS_02")
    (tmp_path / "TS_01.csv").write_text("x,y,z\n5,6,7\n8,9,10\n")
    (tmp_path / "TS_02.csv").write_text("x,y,z\n11,12,13\n")
    assert open_tomogram(tmp_path / "TS_01.ome.zarr").name == "TS_01"
    project = open_project([tmp_path])
    assert project.counts().to_dict() == {"TS_01": 2, "TS_02": 1}
    one = open_project([tmp_path / "TS_01.ome.zarr", tmp_path / "TS_01.csv"])
    assert list(one.tomograms) == ["TS_01"] and set(one.particles[TOMO_NAME]) == {"TS_01"}


def test_a_portal_style_zarr_v2_in_nanometres_reads_in_angstrom(tmp_path):
    data = np.arange(32 * 32 * 32, dtype=np.float32).reshape(32, 32, 32)
    portal_style_zarr(tmp_path / "TS_02.zarr", data, 1.0)
    tomogram = open_tomogram(tmp_path / "TS_02.zarr")
    assert tomogram.voxel_size == 10.0 and tomogram.voxel_size_from_header
    assert [lv.factor for lv in tomogram.levels] == [1, 2, 4]
    assert [lv.offset for lv in tomogram.levels] == [(0.0, 0.0, 0.0)] * 3
    assert open_tomogram(tmp_path / "TS_02.zarr", voxel_size=13.0).voxel_size == 13.0


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda attrs: attrs.pop("multiscales"), "no 'multiscales'"),
        (lambda attrs: attrs["multiscales"][0]["axes"].pop(0), "a tomogram has exactly z, y and x"),
        (  # the array read in z, y, x order would be the image turned
            lambda attrs: attrs["multiscales"][0]["axes"].reverse(),
            r"axes are \['x', 'y', 'z'\]; a tomogram has exactly z, y and x, in order",
        ),
        (
            lambda attrs: attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][
                0
            ].update(scale=[2.0, 1.0, 1.0]),
            "not cubic",
        ),
        (lambda attrs: attrs["multiscales"][0]["axes"][2].update(unit="second"), "not a length"),
    ],
)
def test_broken_ome_zarr_metadata_names_the_folder_and_the_problem(tmp_path, edit, problem):
    path = tmp_path / "bad.zarr"
    portal_style_zarr(path, np.zeros((16, 16, 16), np.float32), 1.0)
    attrs = json.loads((path / ".zattrs").read_text())
    edit(attrs)
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(TomogramFileError, match=problem) as error:
        open_tomogram(path)
    assert "bad.zarr" in str(error.value)


def test_boxes_from_chunks_equal_boxes_from_the_array_and_each_chunk_is_read_once(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(48, 96, 80)).astype(np.float32)
    write_ome_zarr(tmp_path / "t.zarr", data, 10.0, levels=1, chunks=16)
    array = open_tomogram(tmp_path / "t.zarr").data
    centres = rng.uniform(-4, [52, 100, 84], size=(300, 3))  # some cross the faces
    cache, order = planned_reads(array, centres, 12)
    boxes, crossed = extract_boxes(cache, centres[order], 12)
    expected, expected_crossed = extract_boxes(data, centres, 12)
    np.testing.assert_array_equal(boxes[np.argsort(order)], expected)
    np.testing.assert_array_equal(crossed[np.argsort(order)], expected_crossed)
    assert cache.decompressed == 3 * 6 * 5  # every chunk is touched here, and read once
    assert cache.held == 0  # nothing is kept once the last box is cut


def test_embedding_from_zarr_gives_the_latents_of_the_same_data_in_mrc(sample_simulation, tmp_path):
    model, card = load_bundled()
    particles = sample_simulation.particles.iloc[::3].reset_index(drop=True)
    write_tomogram(tmp_path / "sample.mrc", sample_simulation.tomogram, 10.0)
    write_ome_zarr(tmp_path / "sample.zarr", sample_simulation.tomogram, 10.0, levels=2, chunks=48)
    from_mrc = embed(open_tomogram(tmp_path / "sample.mrc"), particles, model, card, batch=32)
    from_zarr = embed(open_tomogram(tmp_path / "sample.zarr"), particles, model, card, batch=32)
    columns = [*latent_columns(from_mrc), "reconstruction_error"]
    np.testing.assert_allclose(from_zarr[columns], from_mrc[columns], atol=1e-4)
    np.testing.assert_array_equal(from_zarr[list(AXES)], particles[list(AXES)])
    assert list(from_zarr["class_name"]) == list(particles["class_name"])


def test_a_multiscale_tomogram_finer_than_the_model_is_embedded_from_the_matching_level(
    sample_simulation, tmp_path
):
    """A 5 A tomogram whose second level is 10 A, as the model: boxes come from that level, the
    particles' centres mapped onto it, so the latents are those of that level's data."""
    model, card = load_bundled()
    crop = sample_simulation.tomogram[40:120, :160, :160]
    fine = crop.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    write_ome_zarr(tmp_path / "fine.zarr", fine, 5.0, levels=3, chunks=64)
    tomogram = open_tomogram(tmp_path / "fine.zarr")
    source, level = tomogram.level_for(card.voxel_size)
    assert source.voxel_size == 10.0 and level.factor == 2
    particles = sample_simulation.particles
    local = particles[list(AXES)].to_numpy() - [40, 0, 0]
    inside = ((local >= 16) & (local <= [64, 144, 144])).all(axis=1)
    particles = particles[inside].reset_index(drop=True)
    fine_particles = particles.copy()
    fine_particles[list(AXES)] = (particles[list(AXES)].to_numpy() - [40, 0, 0]) * 2 + 0.5
    latents = embed(tomogram, fine_particles, model, card, error=False)

    ten = write_tomogram(tmp_path / "ten.mrc", source.data[:], 10.0)
    at_ten = fine_particles.copy()
    at_ten[list(AXES)] = level.to_level(fine_particles[list(AXES)].to_numpy())
    reference = embed(open_tomogram(ten), at_ten, model, card, error=False)
    columns = latent_columns(latents)
    assert len(latents) >= 5
    np.testing.assert_allclose(latents[columns], reference[columns], atol=1e-4)


def test_simulate_writes_zarr_that_avae_picks_and_embeds_as_it_does_the_mrc(tmp_path, capsys):
    common = ["--shape", "48", "128", "128", "--particles", "12", "--seed", "3"]
    assert main(["simulate", str(tmp_path / "z"), *common, "--format", "zarr"]) == 0
    assert main(["simulate", str(tmp_path / "m"), *common]) == 0
    tomogram = open_tomogram(tmp_path / "z" / "tomogram.zarr")
    assert tomogram.voxel_size == 10.0 and len(tomogram.levels) == 3
    np.testing.assert_array_equal(
        tomogram.data[:], open_tomogram(tmp_path / "m" / "tomogram.mrc").data
    )
    tables = {}
    for kind, name in (("z", "tomogram.zarr"), ("m", "tomogram.mrc")):
        out = tmp_path / f"{kind}.csv"
        args = [str(tmp_path / kind / name), str(tmp_path / kind / "particles.star")]
        assert main(["embed", *args, "--out", str(out)]) == 0
        picks = tmp_path / f"{kind}_picks.star"
        assert main(["pick", args[0], "--diameter", "100", "300", "--out", str(picks)]) == 0
        tables[kind], tables[f"{kind} picks"] = read_particles(out), read_particles(picks)
    columns = latent_columns(tables["m"])
    np.testing.assert_allclose(tables["z"][columns], tables["m"][columns], atol=1e-4)
    assert len(tables["z picks"]) == len(tables["m picks"]) > 5
    np.testing.assert_allclose(
        tables["z picks"][list(AXES)], tables["m picks"][list(AXES)], atol=0.01
    )
    assert "tomogram.zarr" not in capsys.readouterr().err


def test_a_simulated_project_of_zarr_tomograms_is_listed(tmp_path, capsys):
    printed = simulated_project_listing(
        tmp_path / "project", "zarr", "optimisation_set.star", capsys
    )
    assert "TS_01: 4 particles, 48 x 96 x 96 voxels at 10 Å" in printed
    assert "TS_02.zarr" in printed


def _zarr_binned_in_y_and_x(path, data: np.ndarray, voxel_size: float) -> None:
    """Levels binned by 2 and 4 in y and x only, z kept: ome-zarr-py's default ``Scaler``."""
    import zarr
    from ome_zarr.writer import write_multiscale

    write_multiscale(
        [data[:, :: 2**k, :: 2**k] for k in range(3)],
        zarr.open_group(str(path), mode="w"),
        axes=[{"name": axis, "type": "space", "unit": "angstrom"} for axis in "zyx"],
        coordinate_transformations=[
            [{"type": "scale", "scale": [voxel_size, voxel_size * 2**k, voxel_size * 2**k]}]
            for k in range(3)
        ],
    )


def test_levels_binned_in_y_and_x_only_are_not_used_and_pick_as_the_mrc(tmp_path):
    """Such a level's z is the finest level's: taken as binned by its x factor, picks came back
    at twice their z."""
    shape = ["--shape", "48", "64", "80", "--particles", "5"]
    assert main(["simulate", str(tmp_path), *shape, "--seed", "1", "--no-noise"]) == 0
    mrc = tmp_path / "tomogram.mrc"
    data = open_tomogram(mrc).data
    _zarr_binned_in_y_and_x(tmp_path / "TS.zarr", np.asarray(data), 10.0)
    tomogram = open_tomogram(tmp_path / "TS.zarr")
    assert tomogram.levels == () and tomogram.shape == (48, 64, 80)
    source, level = tomogram.level_for(40.0)
    assert source.shape == (48, 64, 80) and level.factor == 1
    picks = {}
    for path in (mrc, tmp_path / "TS.zarr"):
        out = tmp_path / f"{path.stem}.csv"
        assert main(["pick", str(path), "--diameter", "100", "300", "--out", str(out)]) == 0
        picks[path.suffix] = read_particles(out)[list(AXES)]
    assert len(picks[".mrc"]) > 0
    np.testing.assert_allclose(picks[".zarr"], picks[".mrc"], atol=1e-6)


def test_only_levels_binned_alike_along_every_axis_are_levels(tmp_path):
    import zarr

    data = np.arange(16 * 32 * 32, dtype=np.float32).reshape(16, 32, 32)
    group = zarr.open_group(str(tmp_path / "mixed.zarr"), mode="w", **V2)
    datasets = []
    for name, step in (("0", (1, 1, 1)), ("1", (1, 2, 2)), ("2", (2, 2, 2))):
        level = np.ascontiguousarray(data[:: step[0], :: step[1], :: step[2]])
        group.create_dataset(name, data=level, shape=level.shape, chunks=(8, 8, 8))
        scale = {"type": "scale", "scale": [5.0 * n for n in step]}
        datasets.append({"path": name, "coordinateTransformations": [scale]})
    axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": datasets}]
    tomogram = open_tomogram(tmp_path / "mixed.zarr")
    assert [(lv.factor, lv.data.shape) for lv in tomogram.levels] == [
        (1.0, (16, 32, 32)),
        (2.0, (8, 16, 16)),
    ]
    source, level = tomogram.level_for(10.0)
    assert source.voxel_size == 10.0
    z, y, x = np.round(level.to_level([6.0, 10.0, 22.0])).astype(int)
    assert source.data[z, y, x] == data[6, 10, 22]


def _cut_chunks_short(folder) -> None:
    """Every chunk file of ``folder`` cut short, as an interrupted download leaves it: within
    blosc's 16-byte header, which blosc always notices (cut at half its bytes, a chunk was now
    and then decoded, into garbage, with no error)."""
    for chunk in folder.iterdir():
        if not chunk.name.startswith("."):
            chunk.write_bytes(chunk.read_bytes()[:8])


def test_a_chunk_cut_short_is_named_a_truncated_download_where_it_is_read(tmp_path):
    """The image opens (only its metadata are read); reading the chunk, for napari, a box or a
    whole level, names the image and the problem, not blosc's error code alone."""
    import pandas as pd

    from napari_affinity_vae._reader import read_tomograms
    from napari_affinity_vae.io.tomogram import contrast_limits

    path = tmp_path / "TS.zarr"
    data = np.random.default_rng(0).normal(size=(32, 32, 32)).astype(np.float32)
    portal_style_zarr(path, data, 1.0)  # not zeros: zarr 3 writes no chunk of the fill value
    _cut_chunks_short(path / "0")
    tomogram = open_tomogram(path)
    problem = (
        rf"{re.escape(str(path))}: a chunk of array '0' cannot be decompressed: its file is "
        r"truncated or corrupt \(an interrupted download\?\); download the image again \(.+\)$"
    )
    with pytest.raises(TomogramFileError, match=problem):
        read_tomograms(str(path))
    with pytest.raises(TomogramFileError, match=problem):
        contrast_limits(tomogram.data)
    with pytest.raises(TomogramFileError, match=problem):
        np.asarray(tomogram.data)
    model, card = load_bundled()
    particles = pd.DataFrame({"z": [16.0], "y": [16.0], "x": [16.0]})
    with pytest.raises(TomogramFileError, match=problem):
        embed(tomogram, particles, model, card)


def test_a_level_whose_array_is_missing_is_named(tmp_path):
    import shutil

    path = tmp_path / "TS.zarr"
    portal_style_zarr(path, np.zeros((32, 32, 32), np.float32), 1.0)
    shutil.rmtree(path / "1")
    with pytest.raises(TomogramFileError) as error:
        open_tomogram(path)
    assert str(error.value) == (
        f"{path}: the array '1' of a level listed in the metadata is missing (an incomplete copy "
        "or download?)"
    )
