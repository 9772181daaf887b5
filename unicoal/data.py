"""Training data for slice-wise synthesis: (x_in, delta, c_in, c_out, y) from preprocessed volumes.

Paper Sec. III-A/III-C and IV-A: a target slice ``y^k`` of modality ``c_out`` on the
high-resolution (HR) grid is predicted from the ``m`` low-resolution (LR) slices
``x^{n-(m/2-1)} .. x^{n+m/2}`` of modality ``c_in`` around its position ``u = n + delta`` in LR
index units. LR volumes are simulated from the HR volume by :mod:`unicoal.preprocess.degrade`
(slice profile ``rect`` by default, ``select`` for the authors' loader), and every position comes
from :mod:`unicoal.geometry` -- nothing here re-derives slice positions.

Randomness is *sampled, then applied*: :meth:`SliceDataset.sample_params` draws an explicit
:class:`ItemParams` (subject, target slice ``k``, modalities, thickness ratio ``t``, grid phase)
from a generator seeded by ``(seed, epoch, index)``; :meth:`SliceDataset.make_item` is a
deterministic function of those parameters. Items are therefore reproducible, independent of the
number of data-loader workers and of DDP ranks, and can be logged.

Only the ``m`` LR slices an item needs are computed (rows of the slice-profile matrix applied
to the HR volume), so no LR stacks are cached; HR volumes are held in memory (slice axis first)
or, with ``cache_dir``, as memory-mapped ``.npy`` files shared by all workers.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from unicoal.cohort.samplesheet import MODALITIES, read_samplesheet, subjects_of
from unicoal.errors import InputError
from unicoal.geometry import Grid, default_phase, input_indices, slice_count, slice_positions, thick_slice_grid
from unicoal.preprocess.degrade import PROFILES, slice_profile_matrix

__all__ = [
    "DataConfig",
    "ItemParams",
    "SliceDataset",
    "fit_inplane",
    "restore_inplane",
    "to_network",
    "from_network",
    "phase_candidates",
    "lr_slices",
]

PADDINGS = ("replicate", "constant")
#: in-plane augmentations (``data.augment``; AutoGAN-Synthesizer's ``datasets.py``)
AUGMENTATIONS = ("rot90", "mirror", "saturation")


# --------------------------------------------------------------------------------------------
# intensity and in-plane helpers (shared with unicoal.infer)
# --------------------------------------------------------------------------------------------
def to_network(x):
    """Map intensities from [0, 1] (stored volumes) to [-1, 1] (network range)."""
    return x * 2.0 - 1.0


def from_network(x):
    """Map network outputs from [-1, 1] back to [0, 1]."""
    return (x + 1.0) * 0.5


def _crop_pad_1d(n: int, size: int) -> tuple[int, int, int]:
    """(source start, destination start, length) of a centre crop / zero pad of ``n`` to ``size``."""
    if n >= size:
        return (n - size) // 2, 0, size
    return 0, (size - n) // 2, n


def fit_inplane(arr: np.ndarray, size: int, fill: float = 0.0) -> np.ndarray:
    """Centre-crop / pad the last two axes of ``arr`` to ``size x size`` (paper: 256 x 256).

    The inverse is :func:`restore_inplane`; both use the same offsets, so a slice that is
    fitted and restored keeps its in-plane position.
    """
    arr = np.asarray(arr)
    a, b = arr.shape[-2:]
    sa, da, la = _crop_pad_1d(a, size)
    sb, db, lb = _crop_pad_1d(b, size)
    out = np.full(arr.shape[:-2] + (size, size), fill, dtype=arr.dtype)
    out[..., da:da + la, db:db + lb] = arr[..., sa:sa + la, sb:sb + lb]
    return out


def restore_inplane(arr: np.ndarray, shape: tuple[int, int], fill: float = 0.0) -> np.ndarray:
    """Undo :func:`fit_inplane`: place the ``S x S`` last axes back into an ``shape`` plane."""
    arr = np.asarray(arr)
    size = arr.shape[-1]
    if arr.shape[-2] != size:
        raise ValueError(f"restore_inplane expects square slices, got {arr.shape[-2:]}")
    a, b = (int(s) for s in shape)
    sa, da, la = _crop_pad_1d(a, size)
    sb, db, lb = _crop_pad_1d(b, size)
    out = np.full(arr.shape[:-2] + (a, b), fill, dtype=arr.dtype)
    out[..., sa:sa + la, sb:sb + lb] = arr[..., da:da + la, db:db + lb]
    return out


# --------------------------------------------------------------------------------------------
# geometry helpers (cached; all positions come from unicoal.geometry)
# --------------------------------------------------------------------------------------------
def phase_candidates(ratio: float, profile: str, buckets: int | None = None) -> np.ndarray:
    """Grid phases (HR index of the first LR centre) the sampler draws from for ``ratio``.

    ``default_phase + ratio * j / B`` for ``j = 0 .. B-1``: every position of the HR target
    inside an LR slab, in ``B`` buckets. ``B`` defaults to ``max(1, round(ratio))``, i.e. whole
    HR-slice offsets for integer ratios (so ``t = 1`` is exact CMS with ``delta = 0``).
    """
    b = max(1, int(round(ratio))) if buckets is None else int(buckets)
    base = default_phase(ratio, profile)
    return base + ratio * np.arange(b, dtype=np.float64) / b


@functools.lru_cache(maxsize=512)
def _profile_rows(num_slices: int, ratio: float, phase: float, count: int, profile: str) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Sparse rows (support indices, weights) of the slice-profile matrix of ``degrade``."""
    w = slice_profile_matrix(num_slices, ratio, phase, count, profile).astype(np.float32)
    rows = []
    for j in range(count):
        nz = np.flatnonzero(w[j])
        rows.append((nz, w[j, nz]))
    return tuple(rows)


@functools.lru_cache(maxsize=512)
def _lr_layout(hr: Grid, ratio: float, phase: float, profile: str) -> tuple[Grid, np.ndarray, np.ndarray]:
    """LR grid of a simulation, and ``(n, delta)`` of every HR slice in it (geometry module)."""
    lr = thick_slice_grid(hr, ratio * hr.thickness, phase=phase, profile=profile)
    n, delta = slice_positions(lr, hr)
    return lr, n, delta


def lr_slices(volume: np.ndarray, ratio: float, phase: float, profile: str, indices: Sequence[int], count: int) -> np.ndarray:
    """LR slices ``indices`` of the thick-slice simulation of ``volume`` ([N, A, B], slice axis
    first), identical to the matching slices of :func:`unicoal.preprocess.degrade.degrade_array`
    but computed from the few HR slices each one needs."""
    rows = _profile_rows(int(volume.shape[0]), float(ratio), float(phase), int(count), profile)
    out = np.empty((len(indices),) + tuple(volume.shape[1:]), dtype=np.float32)
    for i, j in enumerate(indices):
        nz, w = rows[int(j)]
        out[i] = np.tensordot(w, np.asarray(volume[nz], dtype=np.float32), axes=([0], [0]))
    return out


# --------------------------------------------------------------------------------------------
# configuration and parameters
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """What the dataset samples (paper Sec. IV-C4; reference facts "Unified IXI training").

    Attributes:
        modalities: class order of ``c_in`` / ``c_out`` (the model's modality list).
        input_modalities / output_modalities: drawn uniformly per item (default: all).
        ratios: thickness ratios ``t = h0 / h`` drawn uniformly per item (IXI: 1, 2, 4, 6).
        profile: slice profile of the thick-slice simulation (``rect`` paper, ``select`` official).
        phase_buckets: number of grid phases per LR slab (default ``round(t)``; see
            :func:`phase_candidates`).
        padding: LR slices outside the volume: ``replicate`` (default) or ``constant`` (-1, as in
            the authors' loader).
        resolution: in-plane size ``S`` (centre crop / pad), the model's resolution.
        num_inputs: ``m`` LR slices per item (4 in the paper; 1 for Uni-COAL_one).
        split: samplesheet split used (``train``, ``val``, ``test``, or ``all``).
        foreground_only: only target slices with signal (needs all volumes loaded at start).
        cache_dir: optional folder for memory-mapped ``.npy`` copies of the volumes.
        slice_axis: voxel slice axis (default: from the affine, see :class:`Grid`).
        pairs: the (source, target) directions drawn, uniformly with the ratio (``None``: every
            input modality with every output modality). A unified model trains the directions
            its table cell evaluates (``unicoal plan`` sets them); all of them only when asked.
        identity_items: whether an item may have source == target at ratio 1 (the input itself
            as the target). ``None``: only when the data train SR (a ratio > 1) -- the Uni-COAL
            authors' sampler draws such items among its SR thicknesses -- or when nothing else is
            asked for; the trainer sets ``false`` for methods without SR
            (:func:`unicoal.train.config.resolve_model`).
        augment: in-plane augmentations drawn per item and applied to source and target alike
            (AutoGAN-Synthesizer): ``rot90`` (by 90, 180 or 270 degrees, as the authors: never 0),
            ``mirror`` (left-right, probability 1/2), ``saturation`` (a factor in [0.8, 1.2],
            recorded; torchvision's saturation leaves grey slices unchanged, see
            :meth:`SliceDataset.make_item`).
    """

    modalities: tuple[str, ...] = ("T1", "T2", "PD")
    input_modalities: tuple[str, ...] | None = None
    output_modalities: tuple[str, ...] | None = None
    ratios: tuple[float, ...] = (1.0, 2.0, 4.0, 6.0)
    profile: str = "rect"
    phase_buckets: int | None = None
    padding: str = "replicate"
    resolution: int = 256
    num_inputs: int = 4
    split: str = "train"
    foreground_only: bool = False
    cache_dir: str | None = None
    slice_axis: int | None = None
    pairs: tuple[tuple[str, str], ...] | None = None
    identity_items: bool | None = None
    augment: tuple[str, ...] = ()

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("modalities", tuple(self.modalities))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"data.modalities must be distinct names, got {self.modalities}")
        for name in self.modalities:
            if name not in MODALITIES:
                raise ValueError(f"unknown modality {name!r} (allowed: {', '.join(MODALITIES)})")
        for key in ("input_modalities", "output_modalities"):
            val = tuple(getattr(self, key) or self.modalities)
            bad = [v for v in val if v not in self.modalities]
            if bad:
                raise ValueError(f"data.{key} {bad} not in data.modalities {list(self.modalities)}")
            set_(key, val)
        ratios = tuple(float(r) for r in self.ratios)
        if not ratios or any(not math.isfinite(r) or r < 1.0 for r in ratios):
            raise ValueError(f"data.ratios must be numbers >= 1, got {self.ratios}")
        set_("ratios", ratios)
        if self.profile not in PROFILES:
            raise ValueError(f"data.profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"data.padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}")
        if self.phase_buckets is not None and int(self.phase_buckets) < 1:
            raise ValueError(f"data.phase_buckets must be >= 1, got {self.phase_buckets}")
        if int(self.resolution) < 8:
            raise ValueError(f"data.resolution must be >= 8, got {self.resolution}")
        if self.num_inputs < 1:
            raise ValueError(f"data.num_inputs must be >= 1, got {self.num_inputs}")
        if self.split not in ("train", "val", "test", "all"):
            raise ValueError(f"data.split must be train, val, test or all, got {self.split!r}")
        if self.slice_axis not in (None, 0, 1, 2):
            raise ValueError(f"data.slice_axis must be 0, 1, 2 or null, got {self.slice_axis}")
        if self.pairs is not None:
            pairs = tuple((str(a), str(b)) for a, b in (tuple(p) for p in self.pairs))
            bad = [f"{a}>{b}" for a, b in pairs if a not in self.input_modalities or b not in self.output_modalities]
            if not pairs or bad:
                raise ValueError(f"data.pairs must be [source, target] pairs of data.input_modalities x output_modalities, got {bad or 'none'}")
            set_("pairs", tuple(dict.fromkeys(pairs)))
        if self.identity_items is None:  # SR trained, or nothing but identity items asked for
            set_("identity_items", True)
            set_("identity_items", any(r > 1.0 for r in ratios) or all(a == b and r == 1.0 for a, b, r in self.draws()))
        set_("identity_items", bool(self.identity_items))
        set_("augment", tuple(str(a) for a in self.augment))
        if set(self.augment) - set(AUGMENTATIONS) or len(set(self.augment)) != len(self.augment):
            raise ValueError(f"data.augment must be distinct names from {', '.join(AUGMENTATIONS)}, got {list(self.augment)}")
        if not self.draws():
            raise ValueError("every (source, target, ratio) the data allow is an identity item (same modality at ratio 1) and data.identity_items is false: "
                             "give another output modality or a ratio > 1")

    def draws(self) -> tuple[tuple[str, str, float], ...]:
        """The (source, target, ratio) combinations items are drawn from, uniformly."""
        pairs = self.pairs or tuple((a, b) for a in self.input_modalities for b in self.output_modalities)
        return tuple((a, b, r) for a, b in pairs for r in self.ratios if self.identity_items or not (a == b and r == 1.0))

    @classmethod
    def fixed_task(cls, source: str, target: str, ratio: float, **kw) -> "DataConfig":
        """Task-specific data (one input modality, one output modality, one ratio)."""
        mods = kw.pop("modalities", None) or tuple(dict.fromkeys((source, target)))
        return cls(modalities=tuple(mods), input_modalities=(source,), output_modalities=(target,), ratios=(float(ratio),), **kw)

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        d = dict(d)
        task = d.pop("task", None)
        if task:
            unknown = set(task) - {"input", "output", "ratio"}
            if unknown:
                raise ValueError(f"data.task has unknown keys {sorted(unknown)} (allowed: input, output, ratio)")
            d["input_modalities"] = (task["input"],)
            d["output_modalities"] = (task["output"],)
            d["ratios"] = (float(task["ratio"]),)
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown data config key(s) {sorted(unknown)} (allowed: {', '.join(sorted(names | {'task'}))})")
        for key in ("modalities", "input_modalities", "output_modalities", "ratios", "augment"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if d.get("pairs") is not None:
            d["pairs"] = tuple(tuple(p) for p in d["pairs"])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["pairs"] is not None:
            d["pairs"] = [list(p) for p in d["pairs"]]
        return d


@dataclass(frozen=True)
class ItemParams:
    """The explicit random choices of one item (loggable; :meth:`SliceDataset.make_item` applies them)."""

    subject: int  # index into SliceDataset.subjects
    k: int  # target HR slice
    c_in: int
    c_out: int
    ratio: float
    phase: float
    rot: int = 0  # quarter turns of the in-plane axes (data.augment rot90)
    mirror: bool = False  # left-right flip (data.augment mirror)
    saturation: float = 1.0  # data.augment saturation (changes no grey pixel: see make_item)


@dataclass
class _Subject:
    name: str
    paths: dict[str, Path]
    grid: Grid
    slices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# the dataset
# --------------------------------------------------------------------------------------------
class SliceDataset:
    """A torch map-style dataset of training slices over a preprocessed samplesheet.

    Every subject must have all ``config.modalities`` on one HR grid with intensities in [0, 1]
    (the output of ``unicoal normalize``). Index ``i`` fixes the subject and the target slice
    ``k``; the task (modalities, ratio, phase) is drawn per item and per epoch.

    Items (dict): ``x_in`` float32 [m, S, S] in [-1, 1], ``y`` [1, S, S] in [-1, 1], ``delta``
    float32 scalar, ``c_in`` / ``c_out`` int64 scalars, ``n`` int64 (LR index), ``ratio`` and
    ``phase`` float32, ``subject`` / ``k`` int64.

    Example:
        >>> ds = SliceDataset("sheet.csv", DataConfig(resolution=64), seed=0)
        >>> item = ds[0]; item["x_in"].shape
        torch.Size([4, 64, 64])
    """

    def __init__(self, samplesheet: str | os.PathLike, config: DataConfig, *, seed: int = 0, rows=None):
        self.config = config
        self.seed = int(seed)
        self.epoch = 0
        self.samplesheet = Path(samplesheet)
        rows = read_samplesheet(samplesheet) if rows is None else rows
        if config.split != "all":
            rows = [r for r in rows if (r.split or "train") == config.split]
        if not rows:
            raise InputError(samplesheet, f"no rows with split {config.split!r}", "add a split column or choose another data.split")
        self.subjects: list[_Subject] = []
        for name, by_mod in subjects_of(rows).items():
            missing = [m for m in config.modalities if m not in by_mod]
            if missing:
                raise InputError(samplesheet, f"subject {name} lacks modality {', '.join(missing)}", f"give every {config.split} subject all of {', '.join(config.modalities)} or change data.modalities")
            grid = None
            for mod in config.modalities:
                g = self._header_grid(by_mod[mod].path)
                if grid is None:
                    grid = g
                elif not grid.same_as(g):
                    raise InputError(by_mod[mod].path, f"grid differs from {config.modalities[0]} of subject {name} (shape {g.shape} vs {grid.shape})", "register all modalities of a subject to one grid (unicoal register)")
            self.subjects.append(_Subject(name, {m: by_mod[m].path for m in config.modalities}, grid))
        self._volumes: dict[tuple[int, str], np.ndarray] = {}
        self._cin = [config.modalities.index(m) for m in config.input_modalities]
        self._cout = [config.modalities.index(m) for m in config.output_modalities]
        # the legacy draw (c_in, c_out, ratio independently) where it is the same distribution
        self._independent = config.pairs is None and config.identity_items
        self._draws = [(config.modalities.index(a), config.modalities.index(b), r) for a, b, r in config.draws()]
        for i, s in enumerate(self.subjects):
            s.slices = self._eligible_slices(i)
        self._offsets = np.cumsum([0] + [len(s.slices) for s in self.subjects])
        if self._offsets[-1] == 0:
            raise InputError(samplesheet, "no target slices to train on", "check the volumes (all empty?) or set data.foreground_only: false")

    # --- volumes -----------------------------------------------------------------------------
    def _header_grid(self, path: Path) -> Grid:
        import nibabel as nib

        try:
            img = nib.load(str(path))
        except Exception as err:
            raise InputError(path, f"not a readable NIfTI file ({type(err).__name__})", "re-run preprocessing") from None
        if len(img.shape) < 3 or (len(img.shape) == 4 and img.shape[3] != 1) or len(img.shape) > 4:
            raise InputError(path, f"expected a 3D volume, got shape {img.shape}", "pass one 3D volume per row")
        return Grid.from_image(img, self.config.slice_axis)

    def _load(self, path: Path, axis: int) -> np.ndarray:
        from unicoal.io import load_volume

        data, _ = load_volume(path, allow_empty=True)
        lo, hi = float(data.min()), float(data.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise InputError(path, f"intensities span [{lo:.4g}, {hi:.4g}], expected [0, 1]", "normalise the volume first (unicoal normalize)")
        return np.ascontiguousarray(np.moveaxis(np.clip(data, 0.0, 1.0), axis, 0))

    def volume(self, subject: int, modality: str) -> np.ndarray:
        """HR volume ``[N, A, B]`` (slice axis first, in [0, 1])."""
        key = (subject, modality)
        vol = self._volumes.get(key)
        if vol is None:
            s = self.subjects[subject]
            path = s.paths[modality]
            if self.config.cache_dir:
                stat = path.stat()
                tag = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{s.grid.slice_axis}".encode()).hexdigest()[:16]
                npy = Path(self.config.cache_dir) / f"{s.name}_{modality}_{tag}.npy"
                if not npy.exists():
                    from unicoal.io import atomic_path

                    arr = self._load(path, s.grid.slice_axis)
                    npy.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(npy) as tmp:
                        with open(tmp, "wb") as fh:
                            np.save(fh, arr)
                vol = np.load(npy, mmap_mode="r")
            else:
                vol = self._load(path, s.grid.slice_axis)
            self._volumes[key] = vol
        return vol

    def _eligible_slices(self, subject: int) -> np.ndarray:
        n = self.subjects[subject].grid.num_slices
        if not self.config.foreground_only:
            return np.arange(n, dtype=np.int64)
        fg = np.zeros(n, dtype=bool)
        for m in self.config.output_modalities:
            vol = self.volume(subject, m)
            fg |= vol.reshape(n, -1).max(axis=1) > 0
        return np.flatnonzero(fg).astype(np.int64)

    # --- sampling ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Per-epoch task draws (call before iterating, as for DistributedSampler)."""
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (subject, target HR slice k)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} slices")
        s = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return s, int(self.subjects[s].slices[index - self._offsets[s]])

    def sample_params(self, index: int, epoch: int | None = None) -> ItemParams:
        """Draw the task of item ``index`` from a generator seeded by (seed, epoch, index)."""
        ep = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, ep, int(index)]))
        subject, k = self.locate(index)
        cfg = self.config
        if self._independent:
            c_in = self._cin[int(rng.integers(len(self._cin)))]
            c_out = self._cout[int(rng.integers(len(self._cout)))]
            ratio = cfg.ratios[int(rng.integers(len(cfg.ratios)))]
        else:  # uniform over the allowed directions and ratios (no identity items, given pairs)
            c_in, c_out, ratio = self._draws[int(rng.integers(len(self._draws)))]
        phases = self.covering_phases(self.subjects[subject].grid.num_slices, ratio, k)
        phase = float(phases[int(rng.integers(len(phases)))])
        aug = {}
        if cfg.augment:  # drawn after the task, so configs without augmentation draw as before
            if "rot90" in cfg.augment:
                aug["rot"] = int(rng.integers(1, 4))
            if "mirror" in cfg.augment:
                aug["mirror"] = bool(rng.integers(2))
            if "saturation" in cfg.augment:
                aug["saturation"] = float(1.0 + (0.2 - 0.4 * rng.random()))
        return ItemParams(subject, k, c_in, c_out, ratio, phase, **aug)

    def covering_phases(self, num_slices: int, ratio: float, k: int) -> np.ndarray:
        """Phases whose LR slabs fully contain HR slice ``k`` (so ``u`` stays in the range that
        inference meets, ``u >= (1/t - 1)/2``)."""
        cfg = self.config
        cands = phase_candidates(ratio, cfg.profile, cfg.phase_buckets)
        extent = "point" if cfg.profile == "select" else "slab"
        ok = []
        half = (ratio - 1.0) / 2.0
        for ph in cands:
            count = slice_count(num_slices, ratio, float(ph), extent)
            if count >= 1 and ph - half - 1e-6 <= k <= ph + (count - 1) * ratio + half + 1e-6:
                ok.append(ph)
        if not ok:  # k lies in an edge no slab covers: use the default grid (inputs replicate)
            ok = [cands[0]]
        return np.asarray(ok)

    # --- applying ---------------------------------------------------------------------------
    def make_item(self, p: ItemParams) -> dict[str, Any]:
        """Deterministic item for explicit parameters ``p``."""
        import torch

        cfg = self.config
        s = self.subjects[p.subject]
        lr_grid, n_all, d_all = _lr_layout(s.grid, float(p.ratio), float(p.phase), cfg.profile)
        n, delta = int(n_all[p.k]), float(d_all[p.k])
        count = lr_grid.num_slices
        idx, inside = input_indices(n, count, cfg.num_inputs)
        src = self.volume(p.subject, cfg.modalities[p.c_in])
        x = to_network(lr_slices(src, p.ratio, p.phase, cfg.profile, idx, count))
        if cfg.padding == "constant":
            x[~inside] = -1.0
        y = to_network(np.asarray(self.volume(p.subject, cfg.modalities[p.c_out])[p.k], dtype=np.float32))[None]
        x = fit_inplane(x, cfg.resolution, -1.0)
        y = fit_inplane(y, cfg.resolution, -1.0)
        # augmentation: source and target alike. The saturation factor blends each slice with its
        # own grey version (torchvision's adjust_saturation), which is the slice itself: grey
        # MR slices have no saturation to change, as in the authors' grey-as-RGB images.
        if p.rot:
            x, y = np.rot90(x, p.rot, axes=(-2, -1)), np.rot90(y, p.rot, axes=(-2, -1))
        if p.mirror:
            x, y = x[..., ::-1], y[..., ::-1]
        return {
            "x_in": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "y": torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)),
            "delta": torch.tensor(delta, dtype=torch.float32),
            "c_in": torch.tensor(p.c_in, dtype=torch.int64),
            "c_out": torch.tensor(p.c_out, dtype=torch.int64),
            "n": torch.tensor(n, dtype=torch.int64),
            "ratio": torch.tensor(p.ratio, dtype=torch.float32),
            "phase": torch.tensor(p.phase, dtype=torch.float32),
            "subject": torch.tensor(p.subject, dtype=torch.int64),
            "k": torch.tensor(p.k, dtype=torch.int64),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.make_item(self.sample_params(int(index)))
