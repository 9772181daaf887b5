"""The embedded default cohort: multi-contrast head phantoms simulated from MNI152 tissue maps.

Generated offline from the MNI152 2009 (ICBM 2009a symmetric) grey- and white-matter probability
maps and the brain mask that the nilearn wheel ships (``nilearn/datasets/data``); CSF is the brain
mask minus GM minus WM. Nothing is downloaded.

Per subject (parameters are *sampled* first by :func:`sample_subject`, then *applied* by the
deterministic :func:`render_subject`, so every subject can be replayed from its parameters):

1. **Anatomy.** A random affine (scales, rotations, shears, shift) plus a smooth random
   displacement field (cubic B-spline-like upsampling of Gaussian control points) warps the tissue
   maps from MNI space into the subject's anatomical space ``S`` (mm).
2. **Lesion.** One blob with a randomly perturbed ellipsoidal boundary, centred in template white
   matter and warped with the anatomy: a *tumour* (T1-hypo, T2/PD/FLAIR-hyper, with a necrotic
   core) or a late-subacute *haematoma* (bright on all four contrasts). Label map: 1 inside.
3. **Head.** Intracranial space = brain mask closed by smoothing; around it a dark cortical-bone
   ring and a bright fat-like scalp (signed-distance shells), so skull stripping has work to do.
4. **Contrast.** BrainWeb-like tissue T1/T2/PD (Collins et al. 1998; Kwan et al. 1999) with
   per-subject jitter, through the signal equations
   spin echo  ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)`` (T1w, T2w, PD-w) and
   inversion recovery  ``S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)`` (FLAIR, TI set to
   null the nominal CSF T1).
5. **Acquisition.** Each modality has its own native grid, as real scans do (standard preset: T1
   sagittal 1 x 1 mm in plane with 1.2 mm slices; T2, PD, FLAIR axial 0.94 x 0.94 x 1.2 mm), a
   small random *planning* offset that is stored in the NIfTI affine (oblique slab), and a small
   random rigid *head motion* between acquisitions that is applied by resampling (T1 is the
   reference: no motion). A Gaussian pre-filter mimics partial volume of the native voxels, then a
   smooth multiplicative bias field (exponential of a quadratic polynomial in scanner
   coordinates) and Rician noise are applied. Images are stored as int16.

Ground truth for tests: the brain mask (template brain mask incl. its CSF, warped) and the lesion
label on the T1 native grid, and ``truth.json`` with every grid and the rigid transforms between
acquisitions (see :func:`write_subject`).

The paper (Sec. IV) uses IXI, BraTS, ADNI and an in-house CSDH cohort; this phantom stands in for
them so that the whole pipeline (registration, skull stripping, synthesis, DSC) runs offline.
"""
from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from unicoal.cohort.samplesheet import SampleRow, assign_splits, write_samplesheet
from unicoal.errors import InputError
from unicoal.io import save_volume, write_json

__all__ = [
    "TISSUES",
    "SEQUENCES",
    "AcquisitionSpec",
    "PhantomPreset",
    "PRESETS",
    "SubjectParams",
    "SubjectVolumes",
    "load_templates",
    "sample_subject",
    "render_subject",
    "write_subject",
    "simulate_subject",
    "generate_cohort",
    "subject_id",
    "subject_seed",
    "signal",
    "PHANTOM_MODALITIES",
]

PHANTOM_MODALITIES: tuple[str, ...] = ("T1", "T2", "PD", "FLAIR")

# BrainWeb-like relaxation times (ms) and proton density at 1.5 T. Lesion values after
# literature on glioma (long T1/T2) and late-subacute haematoma (methaemoglobin: short T1).
TISSUES: dict[str, tuple[float, float, float]] = {
    #            T1      T2     PD
    "csf":    (2569.0, 329.0, 1.00),
    "gm":     (833.0, 83.0, 0.86),
    "wm":     (500.0, 70.0, 0.77),
    "fat":    (350.0, 70.0, 1.00),   # scalp
    "bone":   (2000.0, 10.0, 0.05),  # cortical bone: almost no signal
    "tumour": (1300.0, 200.0, 0.95),
    "necrosis": (2400.0, 400.0, 1.00),
    "haematoma": (450.0, 250.0, 0.90),
}


@dataclass(frozen=True)
class Sequence:
    """Pulse sequence parameters (ms). ``ti`` > 0 means inversion recovery."""

    tr: float
    te: float
    ti: float = 0.0


_CSF_NULL_TI = float(TISSUES["csf"][0] * math.log(2.0 / (1.0 + math.exp(-9000.0 / TISSUES["csf"][0]))))
SEQUENCES: dict[str, Sequence] = {
    "T1": Sequence(tr=500.0, te=10.0),
    "T2": Sequence(tr=4000.0, te=100.0),
    "PD": Sequence(tr=3000.0, te=15.0),
    "FLAIR": Sequence(tr=9000.0, te=120.0, ti=round(_CSF_NULL_TI, 1)),
}


def signal(t1, t2, pd, seq: Sequence):
    """Magnitude signal of a tissue (scalars or arrays) for a spin-echo or inversion-recovery sequence."""
    t1, t2, pd = np.asarray(t1, float), np.asarray(t2, float), np.asarray(pd, float)
    if seq.ti > 0:
        long = np.abs(1.0 - 2.0 * np.exp(-seq.ti / t1) + np.exp(-seq.tr / t1))
    else:
        long = 1.0 - np.exp(-seq.tr / t1)
    return pd * long * np.exp(-seq.te / t2)


@dataclass(frozen=True)
class AcquisitionSpec:
    """A native acquisition grid. ``orientation`` 'axial' stores (R, A, S) axes with slices along S;
    'sagittal' stores (A, S, R) axes with slices along R (as DICOM-converted sagittal scans)."""

    modality: str
    orientation: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    def __post_init__(self):
        if self.modality not in PHANTOM_MODALITIES:
            raise ValueError(f"phantom modality must be one of {PHANTOM_MODALITIES}, got {self.modality!r}")
        if self.orientation not in ("axial", "sagittal"):
            raise ValueError(f"orientation must be 'axial' or 'sagittal', got {self.orientation!r}")
        if len(self.spacing) != 3 or min(self.spacing) <= 0 or len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"bad grid spacing {self.spacing} / shape {self.shape}")

    @property
    def axes(self) -> np.ndarray:
        """3x3 matrix whose columns are the world directions of the data axes."""
        eye = np.eye(3)
        return eye if self.orientation == "axial" else eye[:, [1, 2, 0]]


@dataclass(frozen=True)
class PhantomPreset:
    """Resolution, field of view and randomness of a phantom cohort."""

    name: str
    work_spacing: float                    # mm, isotropic grid of the anatomical model
    acquisitions: tuple[AcquisitionSpec, ...]
    displacement_mm: float = 2.5           # std of the smooth displacement field
    control_spacing_mm: float = 32.0       # spacing of its random control points
    noise: float = 0.03                    # Rician sigma / brightest brain tissue signal
    bias: float = 0.12                     # std of the bias polynomial coefficients (log scale)
    motion_deg: tuple[float, float] = (1.5, 4.0)   # head rotation between acquisitions
    motion_mm: tuple[float, float] = (2.0, 5.0)    # head translation between acquisitions
    plan_deg: float = 3.0                  # max slab tilt stored in the affine
    plan_mm: float = 3.0                   # max slab shift stored in the affine

    def __post_init__(self):
        if self.work_spacing <= 0:
            raise ValueError(f"work_spacing must be > 0, got {self.work_spacing}")
        mods = [a.modality for a in self.acquisitions]
        if sorted(mods) != sorted(set(mods)) or "T1" not in mods:
            raise ValueError(f"acquisitions need unique modalities including T1, got {mods}")
        if not 0 <= self.noise < 1 or self.bias < 0 or self.displacement_mm < 0:
            raise ValueError("noise must be in [0, 1), bias and displacement_mm >= 0")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(a.modality for a in self.acquisitions)

    def acquisition(self, modality: str) -> AcquisitionSpec:
        return next(a for a in self.acquisitions if a.modality == modality)


def _preset(name: str, scale: float, work: float, t1_shape, ax_shape) -> PhantomPreset:
    t1 = AcquisitionSpec("T1", "sagittal", (1.0 * scale, 1.0 * scale, 1.2 * scale), t1_shape)
    axial = tuple(AcquisitionSpec(m, "axial", (0.9375 * scale, 0.9375 * scale, 1.2 * scale), ax_shape) for m in ("T2", "PD", "FLAIR"))
    return PhantomPreset(name=name, work_spacing=work, acquisitions=(t1, *axial))


PRESETS: dict[str, PhantomPreset] = {
    # 1 mm-ish, full field of view: T1 sagittal 240 x 240 x 150 slices of 1.2 mm (FOV 240 x 240 x 180
    # mm), T2/PD/FLAIR axial 256 x 256 x 150 of 0.9375 x 0.9375 x 1.2 mm (FOV 240 x 240 x 180 mm).
    "standard": _preset("standard", 1.0, 1.0, (240, 240, 150), (256, 256, 150)),
    # The same design scaled by 3.5 (T1 3.5 x 3.5 x 4.2 mm, others 3.28 x 3.28 x 4.2 mm), field of
    # view tight around the head (T1 224 x 196 x 185 mm, others 190 x 210 x 193 mm).
    "tiny": _preset("tiny", 3.5, 2.0, (64, 56, 44), (58, 64, 46)),
}

# Anatomical model box in S (mm): the MNI brain bounding box (-72..72, -107..73, -72..82) plus
# room for the skull, the scalp and the random deformation.
_WORK_BOX = ((-100.0, 100.0), (-138.0, 104.0), (-90.0, 112.0))
_HEAD_CENTRE = np.array([0.0, -17.0, 12.0])  # centre of the MNI head box (brain top + scalp); rotations pivot here


@functools.lru_cache(maxsize=1)
def load_templates() -> dict[str, np.ndarray]:
    """MNI152 2009 GM, WM (probabilities) and brain mask (holes filled) as float32, plus the affine.

    Read from the files inside the installed nilearn wheel; never downloads.
    """
    from nilearn import datasets
    from nilearn.image import get_data
    from scipy import ndimage as ndi

    mask_img = datasets.load_mni152_brain_mask(resolution=1)
    gm = np.asarray(get_data(datasets.load_mni152_gm_template(resolution=1)), dtype=np.float32)
    wm = np.asarray(get_data(datasets.load_mni152_wm_template(resolution=1)), dtype=np.float32)
    brain = ndi.binary_fill_holes(np.asarray(get_data(mask_img)) > 0).astype(np.float32)
    brain = np.maximum(brain, np.clip(gm + wm, 0.0, 1.0))
    return {"gm": gm, "wm": wm, "brain": brain, "affine": np.asarray(mask_img.affine, dtype=np.float64)}


# --------------------------------------------------------------------------------------------
# geometry helpers

def _rotation(axis, angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    t = math.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * (k @ k)


def _rigid(rot: np.ndarray, shift, centre=_HEAD_CENTRE) -> np.ndarray:
    """4x4 rigid transform ``x -> rot (x - centre) + centre + shift``."""
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = np.asarray(centre) - rot @ np.asarray(centre) + np.asarray(shift)
    return m


def _rotation_angle_deg(m: np.ndarray) -> float:
    c = (np.trace(m[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _work_grid(spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    shape = tuple(int(math.ceil((hi - lo) / spacing)) + 1 for lo, hi in _WORK_BOX)
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = [lo for lo, _ in _WORK_BOX]
    return shape, aff


def _native_affine(spec: AcquisitionSpec, plan: np.ndarray) -> np.ndarray:
    """Voxel -> scanner-world affine: the slab centred on the head centre, then tilted/shifted by ``plan``."""
    aff = np.eye(4)
    aff[:3, :3] = spec.axes @ np.diag(spec.spacing)
    centre_vox = (np.asarray(spec.shape, float) - 1.0) / 2.0
    aff[:3, 3] = _HEAD_CENTRE - aff[:3, :3] @ centre_vox
    return plan @ aff


# --------------------------------------------------------------------------------------------
# sampled parameters

@dataclass(frozen=True, eq=False)
class SubjectParams:
    """Everything random about one subject; :func:`render_subject` is deterministic given it.

    Transforms are 4x4 nested tuples in world mm (RAS). ``anatomy`` maps MNI to the subject's
    anatomical space ``S``. ``motion[m]`` maps ``S`` to the scanner world of acquisition ``m``
    (identity for T1). ``plan[m]`` tilts/shifts the slab of acquisition ``m`` (in its affine).
    """

    subject: str
    seed: int
    preset: str
    anatomy: tuple
    control_points: np.ndarray = field(repr=False)  # (3, cx, cy, cz) displacement in mm
    tissues: dict = field(default_factory=dict)      # name -> (T1, T2, PD) after jitter
    lesion: dict = field(default_factory=dict)       # type, centre_mni, radius_mm, shape coefficients
    skull: dict = field(default_factory=dict)        # bone_mm, scalp_mm
    motion: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    bias: dict = field(default_factory=dict)         # modality -> 9 polynomial coefficients
    noise_seed: int = 0


def subject_id(index: int) -> str:
    """``phantom001`` for index 1."""
    return f"phantom{index:03d}"


def _random_rigid(rng: np.random.Generator, deg: tuple[float, float], mm: tuple[float, float]) -> np.ndarray:
    axis = rng.normal(size=3)
    angle = rng.uniform(*deg) * rng.choice([-1.0, 1.0])
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return _rigid(_rotation(axis, angle), direction * rng.uniform(*mm))


def _as_tuple(m: np.ndarray) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(m))


def sample_subject(subject: str, seed: int, preset: PhantomPreset | str = "tiny") -> SubjectParams:
    """Draw the random parameters of one subject from ``seed`` (an int, e.g. :func:`subject_seed`)."""
    preset = _get_preset(preset)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    # 1. anatomy: affine MNI -> S about the head centre, plus smooth displacement control points
    scales = rng.uniform(0.95, 1.05, size=3)
    rot = _rotation(rng.normal(size=3), rng.uniform(-5.0, 5.0))
    shear = np.eye(3)
    shear[np.triu_indices(3, 1)] = rng.uniform(-0.03, 0.03, size=3)
    lin = rot @ shear @ np.diag(scales)
    anatomy = np.eye(4)
    anatomy[:3, :3] = lin
    anatomy[:3, 3] = _HEAD_CENTRE - lin @ _HEAD_CENTRE + rng.uniform(-3.0, 3.0, size=3)
    box = np.array([hi - lo for lo, hi in _WORK_BOX])
    n_ctrl = tuple(int(v) for v in np.ceil(box / preset.control_spacing_mm).astype(int) + 3)
    ctrl = (rng.normal(size=(3, *n_ctrl)) * preset.displacement_mm).astype(np.float32)
    # 2. tissue properties with per-subject jitter (5 % on relaxation times, 3 % on PD)
    tissues = {}
    for name, (t1, t2, pd) in TISSUES.items():
        j = rng.normal(size=3)
        tissues[name] = (t1 * math.exp(0.05 * j[0]), t2 * math.exp(0.05 * j[1]), min(1.0, pd * (1 + 0.03 * j[2])))
    # 3. lesion in template white matter
    tpl = load_templates()
    cand = np.argwhere((tpl["wm"] > 0.95))
    vox = cand[rng.integers(len(cand))]
    centre = tpl["affine"][:3, :3] @ vox + tpl["affine"][:3, 3]
    lesion = {
        "type": str(rng.choice(["tumour", "haematoma"])),
        "centre_mni": [float(v) for v in centre],
        "radius_mm": float(rng.uniform(9.0, 16.0)),
        "linear": [float(v) for v in rng.uniform(-0.15, 0.15, size=3)],
        "quadratic": [float(v) for v in rng.uniform(-0.2, 0.2, size=6)],
        "core_fraction": float(rng.uniform(0.35, 0.55)),
    }
    skull = {"bone_mm": float(rng.uniform(5.0, 8.0)), "scalp_mm": float(rng.uniform(4.0, 7.0))}
    # 4. acquisitions: slab planning (in the affine) and head motion (T1 = reference, no motion)
    motion, plan, bias = {}, {}, {}
    for acq in preset.acquisitions:
        m = acq.modality
        plan[m] = _as_tuple(_random_rigid(rng, (0.0, preset.plan_deg), (0.0, preset.plan_mm)))
        motion[m] = _as_tuple(np.eye(4) if m == "T1" else _random_rigid(rng, preset.motion_deg, preset.motion_mm))
        bias[m] = [float(v) for v in rng.normal(scale=preset.bias, size=9)]
    return SubjectParams(
        subject=subject, seed=int(seed), preset=preset.name, anatomy=_as_tuple(anatomy), control_points=ctrl,
        tissues=tissues, lesion=lesion, skull=skull, motion=motion, plan=plan, bias=bias,
        noise_seed=int(rng.integers(2**31)),
    )


# --------------------------------------------------------------------------------------------
# rendering

@dataclass
class SubjectVolumes:
    """Rendered subject: per-modality int16 images and affines, T1-grid truth, optional tissue maps."""

    params: SubjectParams
    images: dict[str, np.ndarray]
    affines: dict[str, np.ndarray]
    brainmask: np.ndarray               # uint8 on the T1 grid
    lesion: np.ndarray                  # uint8 on the T1 grid
    tissue_fractions: dict[str, dict[str, np.ndarray]] | None = None  # modality -> tissue -> fraction

    def world_to_reference(self, modality: str) -> np.ndarray:
        """4x4 map from ``modality``'s scanner world (mm, RAS) to the T1 (reference) scanner world."""
        ref = np.asarray(self.params.motion["T1"])
        return ref @ np.linalg.inv(np.asarray(self.params.motion[modality]))


def _get_preset(preset: PhantomPreset | str) -> PhantomPreset:
    if isinstance(preset, PhantomPreset):
        return preset
    if preset not in PRESETS:
        raise InputError(None, f"unknown phantom preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def _mni_coordinates(params: SubjectParams, shape, work_aff: np.ndarray, spacing: float) -> np.ndarray:
    """MNI voxel coordinates (3, X, Y, Z) float32 of every work-grid voxel: phi(x) = A^-1 x + u(x)."""
    from scipy import ndimage as ndi

    tpl_inv = np.linalg.inv(load_templates()["affine"])
    inv_anat = np.linalg.inv(np.asarray(params.anatomy))
    lin = tpl_inv @ inv_anat @ work_aff  # work voxel -> MNI voxel (without displacement)
    # displacement: control points span the work box with one extra point beyond each side
    ctrl = params.control_points
    n_ctrl = np.array(ctrl.shape[1:])
    coarse_step = 4
    coarse_shape = tuple(int(math.ceil((s - 1) / coarse_step)) + 1 for s in shape)
    box = np.array([hi - lo for lo, hi in _WORK_BOX])
    ctrl_spacing = box / (n_ctrl - 3)
    g = np.meshgrid(*[np.arange(n, dtype=np.float64) * coarse_step * spacing for n in coarse_shape], indexing="ij")
    cidx = [gi / cs + 1.0 for gi, cs in zip(g, ctrl_spacing)]
    coarse = np.stack([ndi.map_coordinates(ctrl[c], cidx, order=3, mode="nearest") for c in range(3)]).astype(np.float32)
    # MNI voxel = lin @ work voxel + displacement (mm == MNI voxels at 1 mm, rotated by tpl_inv)
    disp_lin = tpl_inv[:3, :3].astype(np.float32)
    lin = lin.astype(np.float32)
    out = np.empty((3, *shape), dtype=np.float32)
    fine_j = np.arange(shape[1], dtype=np.float32)
    fine_k = np.arange(shape[2], dtype=np.float32)
    jj, kk = np.meshgrid(fine_j, fine_k, indexing="ij")
    ci = np.empty_like(jj)
    for i in range(shape[0]):  # one slab at a time keeps memory low on the 1 mm grid
        ci.fill(i / coarse_step)
        pts = [ci, jj / coarse_step, kk / coarse_step]
        d = np.stack([ndi.map_coordinates(coarse[c], pts, order=1, mode="nearest") for c in range(3)])
        dd = (disp_lin @ d.reshape(3, -1)).reshape(d.shape)
        for c in range(3):
            out[c, i] = lin[c, 0] * np.float32(i) + lin[c, 1] * jj + lin[c, 2] * kk + lin[c, 3] + dd[c]
    return out


def _lesion_fraction(params: SubjectParams, mni_vox: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Partial-volume lesion and core fractions from the normalised radius of a perturbed ellipsoid."""
    aff = load_templates()["affine"].astype(np.float32)
    les = params.lesion
    pts = [aff[c, 0] * mni_vox[0] + aff[c, 1] * mni_vox[1] + aff[c, 2] * mni_vox[2] + aff[c, 3] - les["centre_mni"][c] for c in range(3)]
    r = np.sqrt(pts[0] ** 2 + pts[1] ** 2 + pts[2] ** 2) + 1e-6
    u = [p / r for p in pts]
    a, q = les["linear"], les["quadratic"]
    shape_fac = 1.0 + a[0] * u[0] + a[1] * u[1] + a[2] * u[2] + q[0] * u[0] * u[0] + q[1] * u[1] * u[1] + q[2] * u[2] * u[2] \
        + q[3] * u[0] * u[1] + q[4] * u[0] * u[2] + q[5] * u[1] * u[2]
    radius = les["radius_mm"] * np.clip(shape_fac, 0.5, 1.6)
    frac = np.clip((radius - r) / spacing + 0.5, 0.0, 1.0).astype(np.float32)
    core = np.clip((radius * les["core_fraction"] - r) / spacing + 0.5, 0.0, 1.0).astype(np.float32)
    return frac, core


def _anatomy(params: SubjectParams, preset: PhantomPreset) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Tissue fractions on the work grid (S space) and the work grid affine."""
    from scipy import ndimage as ndi

    h = preset.work_spacing
    shape, work_aff = _work_grid(h)
    tpl = load_templates()
    vox = _mni_coordinates(params, shape, work_aff, h)
    frac = {}
    for name in ("gm", "wm", "brain"):
        frac[name] = ndi.map_coordinates(tpl[name], vox, order=1, mode="constant", cval=0.0).astype(np.float32)
    lesion, core = _lesion_fraction(params, vox, h)
    del vox
    brain = frac.pop("brain")
    lesion *= brain
    core *= brain
    gm, wm = frac["gm"], frac["wm"]
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    keep = 1.0 - lesion
    tissues = {"gm": gm * keep, "wm": wm * keep, "csf": csf * keep}
    if params.lesion["type"] == "tumour":
        tissues["tumour"] = lesion - core
        tissues["necrosis"] = core
    else:
        tissues["haematoma"] = lesion
    # intracranial space = brain closed by smoothing; skull and scalp as signed-distance shells
    icv = (ndi.gaussian_filter(brain, 3.0 / h) > 0.25) | (brain > 0.5)
    dist = ndi.distance_transform_edt(~icv, sampling=h) - ndi.distance_transform_edt(icv, sampling=h)
    dist = dist.astype(np.float32)

    def ramp(a):  # 0 inside distance a, 1 outside, linear over one voxel
        return np.clip((dist - a) / h + 0.5, 0.0, 1.0)

    inside = 1.0 - ramp(0.0)
    bone_end = params.skull["bone_mm"]
    scalp_end = bone_end + params.skull["scalp_mm"]
    tissues["csf"] += np.clip(inside - brain, 0.0, 1.0)
    tissues["bone"] = ramp(0.0) - ramp(bone_end)
    tissues["fat"] = ramp(bone_end) - ramp(scalp_end)
    tissues["brain_truth"] = brain
    tissues["lesion_truth"] = lesion
    return tissues, work_aff


def _bias_field(coeffs, affine: np.ndarray, shape) -> np.ndarray:
    """exp of a quadratic polynomial of scanner coordinates (per 100 mm about the head centre)."""
    idx = [np.arange(n, dtype=np.float32) for n in shape]
    comp = []
    for c in range(3):
        comp.append(((affine[c, 0] * idx[0])[:, None, None] + (affine[c, 1] * idx[1])[None, :, None]
                     + (affine[c, 2] * idx[2])[None, None, :] + (affine[c, 3] - _HEAD_CENTRE[c])) / 100.0)
    x, y, z = comp
    k = coeffs
    log_b = k[0] * x + k[1] * y + k[2] * z + k[3] * x * x + k[4] * y * y + k[5] * z * z + k[6] * x * y + k[7] * x * z + k[8] * y * z
    return np.exp(log_b).astype(np.float32)


def _to_native(work: np.ndarray, work_aff: np.ndarray, native_aff: np.ndarray, motion: np.ndarray, shape, spacing, blur: bool) -> np.ndarray:
    """Resample a work-grid map (S space) onto a native grid whose scanner world sees the head moved by ``motion``."""
    from scipy import ndimage as ndi

    h = float(work_aff[0, 0])
    if blur:  # partial volume of the (larger) native voxels: Gaussian with FWHM ~ voxel size
        sig = [math.sqrt(max(0.0, (s / 2.355) ** 2 - (h / 2.355) ** 2)) / h for s in sorted(spacing)[:1] * 3]
        work = ndi.gaussian_filter(work, sig) if max(sig) > 0.2 else work
    m = np.linalg.inv(work_aff) @ np.linalg.inv(motion) @ native_aff
    return ndi.affine_transform(work, m[:3, :3], offset=m[:3, 3], output_shape=tuple(shape), order=1, mode="constant", cval=0.0).astype(np.float32)


def render_subject(params: SubjectParams, preset: PhantomPreset | str | None = None, *, with_tissue: bool = False, progress=None) -> SubjectVolumes:
    """Deterministically render a subject's images from its parameters.

    ``with_tissue=True`` also returns the tissue fractions (gm, wm, csf, lesion) on every native grid,
    for tests of contrast; ``progress`` is an optional callable taking a short stage name.
    """
    preset = _get_preset(preset or params.preset)
    say = progress or (lambda _s: None)
    say("anatomy")
    tissues, work_aff = _anatomy(params, preset)
    brain_truth = tissues.pop("brain_truth")
    lesion_truth = tissues.pop("lesion_truth")
    rng = np.random.default_rng(params.noise_seed)
    images, affines, fractions = {}, {}, {} if with_tissue else None
    for acq in preset.acquisitions:
        m = acq.modality
        say(m)
        seq = SEQUENCES[m]
        per_tissue = {t: float(signal(*params.tissues[t], seq)) for t in tissues}
        clean = np.zeros(tissues["gm"].shape, dtype=np.float32)
        for t, frac in tissues.items():
            clean += np.float32(per_tissue[t]) * frac
        aff = _native_affine(acq, np.asarray(params.plan[m]))
        motion = np.asarray(params.motion[m])
        img = _to_native(clean, work_aff, aff, motion, acq.shape, acq.spacing, blur=True)
        img *= _bias_field(params.bias[m], aff, acq.shape)
        sigma = preset.noise * max(per_tissue["gm"], per_tissue["wm"])
        if sigma > 0:
            n1 = rng.standard_normal(img.shape, dtype=np.float32)
            n2 = rng.standard_normal(img.shape, dtype=np.float32)
            img = np.sqrt((img + sigma * n1) ** 2 + (sigma * n2) ** 2)
        images[m] = np.clip(np.rint(img * 1000.0), 0, 32767).astype(np.int16)
        affines[m] = aff
        if with_tissue:
            lesion = sum(tissues[t] for t in ("tumour", "necrosis", "haematoma") if t in tissues)
            fractions[m] = {t: _to_native(tissues[t] if t != "lesion" else lesion, work_aff, aff, motion, acq.shape, acq.spacing, blur=False)
                            for t in ("gm", "wm", "csf", "lesion")}
    t1 = preset.acquisition("T1")
    mask = _to_native(brain_truth, work_aff, affines["T1"], np.asarray(params.motion["T1"]), t1.shape, t1.spacing, blur=False) >= 0.5
    lesion = _to_native(lesion_truth, work_aff, affines["T1"], np.asarray(params.motion["T1"]), t1.shape, t1.spacing, blur=False) >= 0.5
    return SubjectVolumes(params, images, affines, mask.astype(np.uint8), lesion.astype(np.uint8), fractions)


# --------------------------------------------------------------------------------------------
# writing

def _truth(vol: SubjectVolumes, preset: PhantomPreset, files: dict[str, str]) -> dict:
    p = vol.params
    mods = {}
    for acq in preset.acquisitions:
        m = acq.modality
        w2r = vol.world_to_reference(m)
        mods[m] = {
            "file": files[m],
            "orientation": acq.orientation,
            "shape": list(acq.shape),
            "spacing_mm": list(acq.spacing),
            "affine": vol.affines[m],
            "sequence": asdict(SEQUENCES[m]),
            "world_to_reference": w2r,
            "reference_to_world": np.linalg.inv(w2r),
            "rotation_deg": _rotation_angle_deg(w2r),
            "translation_at_head_centre_mm": float(np.linalg.norm((w2r @ np.r_[_HEAD_CENTRE, 1.0])[:3] - _HEAD_CENTRE)),
            "head_motion": p.motion[m],
            "slab_plan": p.plan[m],
            "bias_coefficients": p.bias[m],
        }
    return {
        "subject": p.subject,
        "seed": p.seed,
        "preset": preset.name,
        "reference": "T1",
        "conventions": (
            "4x4 matrices act on world coordinates in mm (RAS, as NIfTI affines). world_to_reference "
            "maps a point given in this acquisition's scanner world (its NIfTI affine) to the same "
            "anatomical point in the T1 scanner world; reference_to_world is its inverse (what an "
            "ITK/ANTs fixed=T1, moving=this transform maps, once converted from LPS). head_motion maps "
            "the anatomical space to this acquisition's scanner world; slab_plan is already inside the affine."
        ),
        "modalities": mods,
        "brainmask": files["brainmask"],
        "brainmask_definition": "MNI152 2009 brain mask (T1 template > 0.2, holes filled, includes ventricles and the CSF it covers) warped to the subject, >= 0.5 on the T1 grid",
        "lesion_label": files["lesion"],
        "lesion": p.lesion,
        "skull": p.skull,
        "anatomy_mni_to_subject": p.anatomy,
        "displacement_std_mm": preset.displacement_mm,
        "tissues_T1_T2_PD": p.tissues,
        "noise_sigma_fraction": preset.noise,
    }


def write_subject(vol: SubjectVolumes, out_dir: str | os.PathLike, preset: PhantomPreset | str | None = None) -> dict[str, Path]:
    """Write ``<out>/<subject>/<subject>_<MOD>.nii.gz``, ``_brainmask``, ``_lesion`` and ``truth.json``."""
    preset = _get_preset(preset or vol.params.preset)
    sid = vol.params.subject
    folder = Path(out_dir) / sid
    paths: dict[str, Path] = {}
    for m, img in vol.images.items():
        paths[m] = save_volume(folder / f"{sid}_{m}.nii.gz", img, vol.affines[m], dtype=np.int16)
    paths["brainmask"] = save_volume(folder / f"{sid}_brainmask.nii.gz", vol.brainmask, vol.affines["T1"], dtype=np.uint8)
    paths["lesion"] = save_volume(folder / f"{sid}_lesion.nii.gz", vol.lesion, vol.affines["T1"], dtype=np.uint8)
    files = {k: p.name for k, p in paths.items()}
    paths["truth"] = write_json(folder / "truth.json", _truth(vol, preset, files))
    return paths


def subject_seed(seed: int, index: int) -> int:
    """The integer seed of subject ``index`` in a cohort generated with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def simulate_subject(out_dir: str | os.PathLike, index: int = 1, *, preset: PhantomPreset | str = "tiny", seed: int = 0) -> dict[str, Path]:
    """Sample, render and write subject ``phantom<index>`` of the cohort with ``seed``; returns its paths.

    The subject depends only on ``(seed, index, preset)``, not on the cohort size.
    """
    preset = _get_preset(preset)
    params = sample_subject(subject_id(index), subject_seed(seed, index), preset)
    return write_subject(render_subject(params, preset), out_dir, preset)


def generate_cohort(out_dir: str | os.PathLike, subjects: int = 4, preset: PhantomPreset | str = "tiny", seed: int = 0,
                    fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)) -> Path:
    """Generate ``subjects`` phantoms under ``out_dir`` and write ``out_dir/samplesheet.csv``; returns its path.

    Splits are deterministic by subject (``assign_splits`` with ``seed``); with 3 or more subjects at
    least one is ``test``. Every row's ``label`` is the subject's lesion map (on the T1 grid, which
    all modalities share after registration to T1).
    """
    preset = _get_preset(preset)
    if not isinstance(subjects, int) or subjects < 1:
        raise InputError(None, f"--subjects must be a positive integer, got {subjects!r}", "use e.g. --subjects 4")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output exists and is not a folder", "choose another --out")
    try:
        from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs
    except ImportError:  # pragma: no cover
        tqdm = None
    ids = [subject_id(i) for i in range(1, subjects + 1)]
    splits = assign_splits(ids, fractions, seed)
    rows: list[SampleRow] = []
    bar = tqdm(total=subjects, desc=f"phantom ({preset.name})", unit="subject", file=sys.stderr, disable=None) if tqdm else None
    for i, sid in enumerate(ids, start=1):
        paths = simulate_subject(out, i, preset=preset, seed=seed)
        for m in preset.modalities:
            rows.append(SampleRow(sid, m, paths[m], paths["lesion"], splits[sid]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return write_samplesheet(out / "samplesheet.csv", rows)
