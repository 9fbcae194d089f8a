"""Opening tomograms: memory mapping, voxel sizes, MRC modes, and clear errors for bad files."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from conftest import write_mrc
from napari_affinity_vae.errors import TomogramFileError
from napari_affinity_vae.io.tomogram import contrast_limits, open_tomogram


def test_open_is_memory_mapped_with_header_voxel_size(tomogram_file):
    tomogram = open_tomogram(tomogram_file)
    assert isinstance(tomogram.data, np.memmap)
    assert tomogram.shape == (20, 30, 40)
    assert tomogram.voxel_size == pytest.approx(7.5)
    assert tomogram.voxel_size_from_header
    assert tomogram.data[10, 15, 20] < -2  # the dark blob, at z, y, x


def test_voxel_size_override(tomogram_file):
    assert open_tomogram(tomogram_file, voxel_size=3.2).voxel_size == pytest.approx(3.2)


@pytest.mark.parametrize("suffix", [".rec", ".map", ".st", ".mrcs"])
def test_other_suffixes_open(tmp_path, suffix):
    path = write_mrc(tmp_path / f"t{suffix}", np.ones((4, 5, 6), np.float32))
    assert open_tomogram(path).shape == (4, 5, 6)


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)],
)
def test_modes(tmp_path, dtype, mode):
    data = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 100).astype(dtype)
    path = write_mrc(tmp_path / "m.mrc", data)
    with mrcfile.open(path, header_only=True) as mrc:
        assert int(mrc.header.mode) == mode
    opened = open_tomogram(path).data
    assert opened.dtype == dtype
    np.testing.assert_array_equal(opened, data)


def test_mode0_unsigned_imod_file(tmp_path):
    """Old IMOD files store mode-0 bytes unsigned: values above 127 must not turn negative."""
    data = np.array([0, 100, 200, 255] * 30, dtype=np.uint8).reshape(2, 6, 10)
    path = write_mrc(tmp_path / "u8.mrc", data.view(np.int8))
    raw = bytearray(path.read_bytes())
    raw[152:156] = np.int32(1146047817).tobytes()  # IMOD stamp
    raw[156:160] = np.int32(0).tobytes()  # flags: bytes are not signed
    path.write_bytes(bytes(raw))
    opened = open_tomogram(path).data
    assert opened.dtype == np.uint8
    assert opened.max() == 255
    raw[156:160] = np.int32(1).tobytes()  # signed flag set
    path.write_bytes(bytes(raw))
    assert open_tomogram(path).data.min() < 0


def test_truncated_file(tomogram_file):
    content = tomogram_file.read_bytes()
    tomogram_file.write_bytes(content[: len(content) - 400])
    with pytest.raises(TomogramFileError, match="truncated") as err:
        open_tomogram(tomogram_file)
    assert str(tomogram_file) in str(err.value)


def test_invalid_header(tmp_path):
    path = tmp_path / "junk.mrc"
    path.write_bytes(b"this is not an MRC file" * 100)
    with pytest.raises(TomogramFileError, match="invalid MRC header") as err:
        open_tomogram(path)
    assert "junk.mrc" in str(err.value)


def test_not_3d(tmp_path):
    path = write_mrc(tmp_path / "image.mrc", np.zeros((30, 40), np.float32))
    with pytest.raises(TomogramFileError, match=r"2D.*must be 3D"):
        open_tomogram(path)


@pytest.mark.parametrize("header", [0.0, float("inf")])  # inf: a broken cell, napari crashed
def test_voxel_size_zero_says_how_to_give_one(tmp_path, header):
    path = write_mrc(tmp_path / "nosize.mrc", np.zeros((4, 5, 6), np.float32), voxel_size=header)
    with pytest.raises(
        TomogramFileError, match=r"gives no voxel size \(0, infinite or not a number\)"
    ) as err:
        open_tomogram(path)
    assert "voxel_size=" in str(err.value) and "--voxel-size" in str(err.value)
    assert open_tomogram(path, voxel_size=5).voxel_size == 5
    unknown = open_tomogram(path, require_voxel_size=False)
    assert unknown.voxel_size is None and not unknown.voxel_size_from_header


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_voxel_size_override(tomogram_file, bad):
    with pytest.raises(TomogramFileError, match="positive"):
        open_tomogram(tomogram_file, voxel_size=bad)


def test_missing_file(tmp_path):
    with pytest.raises(TomogramFileError, match="no such file"):
        open_tomogram(tmp_path / "absent.mrc")


def test_contrast_limits_ignore_outliers_and_nans():
    rng = np.random.default_rng(0)
    data = rng.normal(0, 1, (32, 64, 64)).astype(np.float32)
    data[0, 0, :10] = 1e6
    data[1, 1, :10] = np.nan
    low, high = contrast_limits(data)
    assert -4 < low < -2 and 2 < high < 4


class OnlyIndexed:
    """An array that can only be read by indexing, counting the voxels each read returns; any
    conversion of the whole array (``np.asarray``, ufuncs, ``.min()``) fails."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.read = 0

    def __getitem__(self, item):
        out = np.array(self._array[item])
        self.read += out.size
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def test_contrast_limits_read_a_bounded_sample(tmp_path):
    """A 64 MB memory-mapped volume: the limits come from a sample of at most about 120,000
    voxels (0.5 MB), and are those of the whole volume."""
    shape = (64, 512, 512)
    volume = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float32, shape)
    rng = np.random.default_rng(0)
    for z in range(shape[0]):
        volume[z] = rng.normal(0, 1, shape[1:])
    volume.flush()
    data = OnlyIndexed(np.load(tmp_path / "big.npy", mmap_mode="r"))
    low, high = contrast_limits(data, max_samples=100_000)
    assert data.read * data.dtype.itemsize <= 120_000 * 4 < volume.nbytes / 100
    assert low == pytest.approx(-2.576, abs=0.1) and high == pytest.approx(2.576, abs=0.1)


def test_anisotropic_voxels_are_refused_unless_a_voxel_size_is_given(tmp_path, capsys):
    """--voxel-size "overrides the header" said the help, yet a header of 10 x 10 x 20 Å was
    refused with it too; a header with only x unset (0) was called not cubic."""
    from napari_affinity_vae.cli import main

    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path, np.zeros((8, 16, 16), np.float32)) as mrc:
        mrc.voxel_size = (10.0, 10.0, 20.0)  # x, y, z
    problem = "the header's voxels of 20 x 10 x 10 Å (z, y, x) are not cubic; give the voxel"
    with pytest.raises(TomogramFileError, match=r"aniso.mrc: the header's voxels .* not cubic"):
        open_tomogram(path)
    assert main(["project", str(path)]) == 0
    assert f"aniso: 0 particles, ? voxels at ?; {path}: {problem}" in capsys.readouterr().out
    assert open_tomogram(path, 10.0).voxel_size == 10.0
    assert main(["project", str(path), "--voxel-size", "10"]) == 0
    assert "aniso: 0 particles, 8 x 16 x 16 voxels at 10 Å" in capsys.readouterr().out
    with mrcfile.open(path, "r+") as mrc:
        mrc.voxel_size = (0.0, 12.0, 12.0)  # x unset
    assert open_tomogram(path).voxel_size == 12.0


def test_a_file_stored_in_another_axis_order_is_read_as_z_y_x(tmp_path):
    """MAPC/MAPR/MAPS say which axis runs along the columns, rows and sections: a map stored x
    slowest (as some CCP4 maps are) is the same map, not its mirror image."""
    from napari_affinity_vae.io.projects.project import read_shape
    from napari_affinity_vae.model.datasets import _read_particle_file

    volume = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)  # z, y, x
    path = tmp_path / "x_slowest.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(volume.transpose(2, 1, 0).copy())  # sections x, rows y, columns z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
        mrc.voxel_size = 10.0
    tomogram = open_tomogram(path)
    assert tomogram.shape == (4, 5, 6)
    np.testing.assert_array_equal(tomogram.data, volume)
    assert read_shape(path)[0] == (4, 5, 6)
    cube = np.arange(4**3, dtype=np.float32).reshape(4, 4, 4)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(cube.transpose(1, 2, 0).copy())  # sections y, rows x, columns z
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 1, 2
    np.testing.assert_array_equal(_read_particle_file(path)[0][0], cube)
