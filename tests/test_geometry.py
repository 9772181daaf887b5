"""Geometry: grids, thick-slice grids, (n, delta), input indices."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import oblique_affine
from unicoal.geometry import Grid, input_indices, slice_positions, target_grid, thick_slice_grid


def hr_grid(n=150, axis=2):
    shape = [40, 48, 40]
    shape[axis] = n
    return Grid(tuple(shape), oblique_affine(), axis)


@pytest.mark.parametrize(
    "n, thickness, expected",
    [(150, 1.2, 150), (150, 2.4, 75), (150, 4.8, 37), (150, 7.2, 25), (150, 6.4, 28), (150, 6.396, 28), (10, 12.0, 1)],
)
def test_thick_slice_count(n, thickness, expected):
    lr = thick_slice_grid(hr_grid(n), thickness)
    assert lr.num_slices == expected
    assert lr.thickness == pytest.approx(thickness, rel=1e-9)
    assert lr.inplane_shape == hr_grid(n).inplane_shape


@pytest.mark.parametrize("ratio", [1.0, 2.0, 4.0, 5.33, 6.0])
def test_lr_slab_edges_are_flush_with_hr_extent(ratio):
    hr = hr_grid(150)
    lr = thick_slice_grid(hr, ratio * hr.thickness)
    # first LR slab's lower edge sits on the HR volume's lower edge (HR index -0.5)
    first_centre_hr = hr.world_to_index(lr.index_to_world([0, 0, 0]))[0]
    assert first_centre_hr[2] - ratio / 2 == pytest.approx(-0.5, abs=1e-9)
    assert np.allclose(first_centre_hr[:2], 0, atol=1e-9)
    # consecutive LR centres are exactly one LR thickness apart in world space
    c = lr.slice_centres()
    assert np.allclose(np.linalg.norm(np.diff(c, axis=0), axis=1), lr.thickness)
    # the last slab ends inside the HR extent
    last = hr.world_to_index(lr.index_to_world([0, 0, lr.num_slices - 1]))[0][2]
    assert last + ratio / 2 <= 150 - 0.5 + 1e-9


@pytest.mark.parametrize("ratio", [1.0, 2.0, 4.0, 5.33, 6.0])
def test_slice_positions_match_paper_formula(ratio):
    """HR slice k sits at LR index u = (k - phase) / r; with the select profile (phase 0) this is
    the paper's n = floor(k h1 / h0), delta = k h1 / h0 - n."""
    hr = hr_grid(60)
    lr = thick_slice_grid(hr, ratio * hr.thickness, profile="select")
    n, delta = slice_positions(lr, hr)
    k = np.arange(60)
    u = k / ratio
    assert np.array_equal(n, np.floor(u + 1e-9).astype(int))
    assert np.allclose(delta, u - np.floor(u + 1e-9), atol=1e-7)
    assert np.all((delta >= 0) & (delta < 1))


def test_target_grid_recovers_hr_grid():
    hr = hr_grid(150)
    for ratio in (2.0, 4.0, 5.33, 6.0):
        lr = thick_slice_grid(hr, ratio * hr.thickness)
        tg = target_grid(lr, hr.thickness)
        assert tg.num_slices == int(np.floor(lr.num_slices * ratio + 1e-6))
        # target slices coincide with the first HR slices
        assert np.allclose(tg.slice_centres(), hr.slice_centres()[: tg.num_slices], atol=1e-6)


def test_target_grid_non_integer_thickness():
    lr = thick_slice_grid(hr_grid(150), 6.0)
    tg = target_grid(lr, 6.0 / 5.33)
    assert tg.num_slices == int(np.floor(lr.num_slices * 5.33))
    n, delta = slice_positions(lr, tg)
    assert n.min() >= -1 and n.max() <= lr.num_slices - 1
    assert np.all(np.diff(n + delta) > 0)
    assert np.allclose(np.diff(n + delta), 1 / 5.33, atol=1e-6)


def test_grid_json_roundtrip_and_axis_guess():
    g = Grid((10, 11, 12), np.diag([1.0, 1.0, 5.0, 1.0]))
    assert g.slice_axis == 2 and g.thickness == 5.0
    sag = Grid((10, 11, 12), np.diag([4.0, 1.0, 1.0, 1.0]))
    assert sag.slice_axis == 0
    iso = Grid((10, 11, 12), np.eye(4))
    assert iso.slice_axis == 2  # axial when isotropic
    assert Grid.from_json(g.to_json()) == g


def test_input_indices_replicate_and_mask():
    idx, inside = input_indices(np.array([-1, 0, 5, 9]), count=10, m=4)
    assert idx.tolist() == [[0, 0, 0, 1], [0, 0, 1, 2], [4, 5, 6, 7], [8, 9, 9, 9]]
    assert inside.tolist()[0] == [False, False, True, True]
    assert inside.tolist()[3] == [True, True, False, False]
    one, _ = input_indices(np.array([3]), count=10, m=1)
    assert one.tolist() == [[3]]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"thickness": 0.0}, "positive"), ({"thickness": -1.0}, "positive"), ({"thickness": 1.0}, "below")],
)
def test_thick_slice_grid_rejects_bad_thickness(kwargs, match):
    with pytest.raises(ValueError, match=match):
        thick_slice_grid(hr_grid(30), **kwargs)


def test_slice_positions_rejects_mismatched_inplane():
    hr = hr_grid(30)
    other = Grid((41, 48, 30), hr.affine, 2)
    with pytest.raises(ValueError, match="in-plane"):
        slice_positions(hr, other)
