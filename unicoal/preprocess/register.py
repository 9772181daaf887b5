"""Rigid registration of every modality of a subject to a reference modality (antspyx).

The paper registers the IXI modalities rigidly with ANTs (Sec. IV-A, ref. [48]) so that all
modalities of a subject share one grid. This module does that in three steps:

1. The reference is reoriented to the closest canonical RAS orientation
   (:func:`nibabel.as_closest_canonical`: a pure permutation/flip of the voxel axes, no
   interpolation), so voxel axis 2 is the inferior-superior axis and axial slices are ``[:, :, k]``.
2. Each moving modality, on its own native grid, is registered rigidly to the reoriented reference
   with ``ants.registration`` (``type_of_transform`` ``Rigid`` or ``QuickRigid``; Mattes mutual
   information, centre-of-mass initialisation, fixed random seed >= 1), then resampled onto the
   reference grid with linear interpolation (0 outside the moving field of view).
3. An optional label map on the reference's native grid is reoriented identically (the
   permutation is exact, i.e. nearest neighbour).

Outputs, in ``out_dir``: ``<stem>.nii.gz`` for every input (reference included), the ANTs
transform ``<stem>_to_ref.mat`` for every moving input, and a JSON sidecar ``<stem>.json`` per
NIfTI with parameters, the transform (also as a 4x4 RAS matrix), and software versions. All
outputs are staged (:func:`unicoal.io.staged_outputs`) and moved into place only when
every step succeeded.

Transform convention (as ANTs): the saved transform maps a point of the reference (fixed) world
to the corresponding point of the moving world; ``matrix_ras`` in the sidecar is the same map in
RAS millimetres, ``x_moving = matrix_ras @ [x_reference, 1]``.

Example:
    >>> out = register("sub-01_T1w.nii.gz", ["sub-01_T2w.nii.gz"], "reg/", config=RegistrationConfig(threads=2))
    >>> out.moving[0]
    PosixPath('reg/sub-01_T2w.nii.gz')
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from unicoal.errors import InputError
from unicoal.geometry import Grid
from unicoal.io import check_output_names, load_volume, nifti_stem, save_volume, software_versions, write_json
from unicoal.io import staged_outputs

__all__ = [
    "TRANSFORMS",
    "RegistrationConfig",
    "RegistrationOutputs",
    "reorient_to_ras",
    "to_ants_image",
    "transform_matrix_ras",
    "rigid_parameters",
    "register",
]

TRANSFORMS = ("Rigid", "QuickRigid")
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (ITK) world coordinates; its own inverse


@dataclass(frozen=True)
class RegistrationConfig:
    """Parameters of :func:`register`.

    Attributes:
        transform: ``Rigid`` (ANTs defaults: 4 levels, shrink 6x4x2x1, smoothing 3x2x1x0 vox,
            2100x1200x1200x10 iterations) or ``QuickRigid`` (same, 20x20x0x0 iterations).
        threads: ITK threads (``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``). ITK reads it when antspyx
            is first imported in the process, so it only takes effect if ``register`` (or the CLI)
            is what imports antspyx. With ``threads=1`` results are bit-identical between runs;
            with more threads they vary slightly (order of floating-point sums).
        seed: ANTs random seed (the metric samples 20 % of voxels on a jittered regular grid).
            Must be >= 1: ANTs treats 0 as "no seed" and then draws one from the clock.
    """

    transform: str = "Rigid"
    threads: int = 1
    seed: int = 1

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise InputError(None, f"unknown registration type {self.transform!r}", f"use one of {', '.join(TRANSFORMS)}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise InputError(None, f"threads must be a positive integer, got {self.threads!r}", "use e.g. --threads 1")
        if not isinstance(self.seed, int) or not 1 <= self.seed < 2**31:
            raise InputError(None, f"seed must be an integer in [1, 2^31) (ANTs reads 0 as 'unseeded'), got {self.seed!r}", "use e.g. --seed 1")


@dataclass(frozen=True)
class RegistrationOutputs:
    """Paths written by :func:`register` (all inside ``out_dir``)."""

    reference: Path
    moving: tuple[Path, ...]
    transforms: tuple[Path, ...]
    label: Path | None = None

    @property
    def volumes(self) -> tuple[Path, ...]:
        """Every output NIfTI: reference, moving modalities, then the label map (if any)."""
        return (self.reference, *self.moving, *(() if self.label is None else (self.label,)))


def reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permute/flip voxel axes to the closest canonical RAS orientation (exact, no interpolation).

    Returns ``(data, affine)``; the world position of every voxel is unchanged.
    """
    import nibabel as nib

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64)))
    return np.asanyarray(img.dataobj), img.affine


def to_ants_image(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike | None = None):
    """An ANTs image with the voxel order of ``data`` and the world geometry of the RAS ``affine``.

    ``path`` only names the source in the error raised for a sheared affine.
    """
    import ants

    a = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    direction = _LPS[:3, :3] @ (a[:3, :3] / spacing)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(path, "the affine has shear (voxel axes not orthogonal); ITK images cannot represent it", "reslice the volume onto an orthogonal grid first")
    origin = _LPS[:3, :3] @ a[:3, 3]
    return ants.from_numpy(
        np.ascontiguousarray(data, dtype=np.float32), origin=origin.tolist(), spacing=spacing.tolist(), direction=direction
    )


def transform_matrix_ras(transform_path: str | os.PathLike) -> np.ndarray:
    """The (affine) ANTs transform file as a 4x4 matrix in RAS mm (reference -> moving points)."""
    import ants

    tx = ants.read_transform(str(transform_path))
    probe = np.vstack([np.zeros(3), np.eye(3)])  # LPS points 0, e_x, e_y, e_z
    mapped = np.array([ants.apply_ants_transform_to_point(tx, tuple(float(v) for v in p)) for p in probe])
    lps = np.eye(4)
    lps[:3, 3] = mapped[0]
    lps[:3, :3] = (mapped[1:] - mapped[0]).T
    return _LPS @ lps @ _LPS


def rigid_parameters(matrix: np.ndarray) -> dict[str, float | list[float]]:
    """Rotation angle (degrees, axis-angle magnitude) and translation (mm) of a 4x4 rigid matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    r = m[:3, :3]
    sin = 0.5 * float(np.linalg.norm([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]))
    cos = (float(np.trace(r)) - 1.0) / 2.0
    return {"rotation_deg": math.degrees(math.atan2(sin, cos)), "translation_mm": m[:3, 3].tolist()}


def _set_itk_threads(threads: int) -> None:
    """Set ITK's thread count; ITK reads it when antspyx is first imported in the process."""
    if "ants" not in sys.modules:
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    elif os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") != str(threads):
        logging.getLogger(__name__).warning(
            "antspyx was imported before ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=%d was set: ITK keeps its earlier thread count", threads
        )


@contextlib.contextmanager
def _ants_seed(seed: int) -> Iterator[None]:
    """Set the ANTs random seed (``--random-seed``) for the duration of the block."""
    import ants.config

    old_seed = ants.config._random_seed  # antspyx only exposes the seed through this module variable
    ants.config._random_seed = seed
    try:
        yield
    finally:
        ants.config._random_seed = old_seed



def _label_map(path: Path, ref_grid: Grid) -> np.ndarray:
    data, img = load_volume(path, allow_empty=True)
    grid = Grid.from_image(img)
    if not grid.same_as(ref_grid):
        raise InputError(
            path,
            f"label map grid {grid.shape} differs from the reference's native grid {ref_grid.shape} (shape or affine)",
            "give the label map on the reference's native grid",
        )
    if not np.array_equal(data, np.round(data)) or data.min() < 0:
        raise InputError(path, "label map has negative or non-integer values", "give an integer label map")
    return data.astype(np.int16 if data.max() > 255 else np.uint8)


def register(
    reference: str | os.PathLike,
    moving: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    label: str | os.PathLike | None = None,
    config: RegistrationConfig = RegistrationConfig(),
) -> RegistrationOutputs:
    """Reorient ``reference`` to RAS, register each ``moving`` volume rigidly to it, resample.

    Args:
        reference: the subject's reference modality (e.g. T1w); defines the output grid.
        moving: the other modalities, each on its own native grid (any orientation).
        out_dir: output folder (created if needed).
        label: optional label map on the reference's native grid (reoriented, not resampled).
        config: registration parameters.

    Returns:
        The output paths. Nothing is written if any input is invalid or any step fails.

    Raises:
        InputError: unreadable/invalid volumes, colliding names, label map on another grid.
    """
    _set_itk_threads(config.threads)
    import ants
    from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

    ref_path, mov_paths = Path(reference), [Path(m) for m in moving]
    label_path = None if label is None else Path(label)
    out = Path(out_dir)
    all_inputs = [ref_path, *mov_paths, *([] if label_path is None else [label_path])]
    for p in mov_paths:
        if p.resolve() == ref_path.resolve():
            raise InputError(p, "is also the reference", "list each modality once")
    check_output_names(all_inputs, out)

    ref_data, ref_img = load_volume(ref_path)
    mov_volumes = [load_volume(p) for p in mov_paths]
    for p, (data, img) in zip([ref_path, *mov_paths], [(ref_data, ref_img), *mov_volumes]):
        to_ants_image(data[:1, :1, :1], img.affine, p)  # geometry check before anything is written
    native_grid = Grid.from_image(ref_img)
    label_data = None if label_path is None else _label_map(label_path, native_grid)

    import nibabel as nib

    ref_codes = "".join(nib.aff2axcodes(ref_img.affine))
    ras_data, ras_affine = reorient_to_ras(ref_data, ref_img.affine)
    ras_grid = Grid(ras_data.shape, ras_affine)
    versions = software_versions("antspyx", "nibabel")
    common = {
        "step": "register",
        "reference": str(ref_path),
        "reference_orientation_in": ref_codes,
        "grid": ras_grid.to_json(),
        "parameters": {**asdict(config), "interpolation": "linear", "metric": "mattes", "initialisation": "centre of mass"},
        "software": versions,
    }

    with staged_outputs(out) as stage, tempfile.TemporaryDirectory(prefix="unicoal-ants-") as scratch:
        with _ants_seed(config.seed):
            fixed = to_ants_image(ras_data, ras_affine, ref_path)
            ref_name = save_volume(stage / f"{nifti_stem(ref_path)}.nii.gz", ras_data, ras_affine).name
            write_json(stage / f"{nifti_stem(ref_path)}.json", {**common, "input": str(ref_path), "role": "reference", "transform": None})
            mov_names, tx_names = [], []
            bar = tqdm(list(zip(mov_paths, mov_volumes)), desc="register", unit="volume", file=sys.stderr, disable=None)
            for path, (data, img) in bar:
                stem = nifti_stem(path)
                bar.set_postfix_str(stem)
                t0 = time.perf_counter()
                mov = to_ants_image(data, img.affine, path)
                reg = ants.registration(
                    fixed=fixed, moving=mov, type_of_transform=config.transform, outprefix=str(Path(scratch) / f"{stem}_")
                )
                (tx_file,) = reg["fwdtransforms"]
                warped = ants.apply_transforms(fixed, mov, transformlist=[tx_file], interpolator="linear", defaultvalue=0)
                tx_out = stage / f"{stem}_to_ref.mat"
                shutil.copyfile(tx_file, tx_out)
                matrix = transform_matrix_ras(tx_out)
                save_volume(stage / f"{stem}.nii.gz", warped.numpy(), ras_affine)
                write_json(
                    stage / f"{stem}.json",
                    {
                        **common,
                        "input": str(path),
                        "role": "moving",
                        "input_grid": Grid.from_image(img).to_json(),
                        "input_orientation": "".join(nib.aff2axcodes(img.affine)),
                        "transform": str(out / tx_out.name),
                        "transform_direction": "reference world -> moving world (ANTs forward transform)",
                        "matrix_ras": matrix,
                        **rigid_parameters(matrix),
                        "seconds": round(time.perf_counter() - t0, 3),
                    },
                )
                mov_names.append(f"{stem}.nii.gz")
                tx_names.append(tx_out.name)
            label_name = None
            if label_data is not None and label_path is not None:
                lab, lab_affine = reorient_to_ras(label_data, ref_img.affine)
                label_name = save_volume(stage / f"{nifti_stem(label_path)}.nii.gz", lab, lab_affine, dtype=lab.dtype).name
                write_json(
                    stage / f"{nifti_stem(label_path)}.json",
                    {**common, "input": str(label_path), "role": "label", "interpolation": "nearest (axis permutation only)", "transform": None},
                )
    return RegistrationOutputs(
        reference=out / ref_name,
        moving=tuple(out / n for n in mov_names),
        transforms=tuple(out / n for n in tx_names),
        label=None if label_name is None else out / label_name,
    )
