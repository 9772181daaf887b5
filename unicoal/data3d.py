"""Training data for 3D (volume / patch) methods: random 3D patch pairs from preprocessed volumes.

The 3D baselines (DCSRN, DeepResolve, SynthSR, and the LR-grid methods built on this module)
learn from patches of a *degraded* source volume and the matching patch of the high-resolution
(HR) target volume. Everything about slices comes from the same code as the slice-wise data
(:mod:`unicoal.data`): the thick-slice simulation is :func:`unicoal.preprocess.degrade.slice_profile_matrix`
on the grid :func:`unicoal.geometry.thick_slice_grid`, and the position ``u = n + delta`` of every
HR slice in low-resolution (LR) index units comes from :func:`unicoal.geometry.slice_positions`.

One item, as in :class:`unicoal.data.SliceDataset`, is *sampled, then applied*:
:meth:`PatchDataset3D.sample_params` draws explicit :class:`PatchParams` (subject, input and output
modality, thickness ratio ``t``, grid phase, patch corner) from a generator seeded by
``(seed, epoch, index)``; :meth:`PatchDataset3D.make_item` is a deterministic function of them, so
``--resume`` reads the same patches and the number of loader workers does not matter. The patch
corner is drawn as MONAI's ``monai.data.utils.get_random_patch`` draws it (uniform over the
corners for which the patch lies inside the volume, from a ``RandomState`` seeded by that
generator; :func:`random_patch_corner` is the same two lines, because ``import monai`` costs
about 10 CPU seconds per process; ``tests/test_data3d.py`` checks that both give the same corner).

Applying the parameters:

1. the LR grid is ``thick_slice_grid(hr, t * h, phase)``; only the LR slices that the patch's
   interpolation needs are simulated, for the patch's in-plane window only (rows of the
   slice-profile matrix, identical to the matching voxels of ``degrade_array``);
2. the LR slices are resampled back onto the HR slices of the patch along the slice axis at
   ``u = n + delta`` with ``interpolation`` (``unicoal.models.interpolation``: ``linear``, ``cubic``
   = Keys a = -0.5, ``lanczos``; edges replicate). In-plane sampling is unchanged (thick-slice
   data keep their in-plane resolution), so this 1D resampling is the "pre-resampling" that the
   paper blames for the blur of the 3D methods; at ``t = 1`` it is exact (CMS);
3. the pre-interpolated source patch ``x_in`` and the HR target patch ``y`` are mapped to
   [-1, 1]; parts of a patch outside the volume (volumes smaller than the patch) are filled by
   :func:`pad_to`, the one padding rule of the 3D methods: background (intensity 0, -1 in
   network units) after the volume's far end, or centred for methods whose authors centre
   (SynthSR's predict script). Synthesis (:mod:`unicoal.predictors.volume`) pads with the same
   function, so a window that holds a whole volume sees what training showed it.

Item keys (all tensors; ``P = (D, H, W)`` the patch size, slice axis first):
``x_in`` [1, D, H, W], ``y`` [1, D, H, W], ``delta`` [D] and ``u`` [D] (the offset and the
LR-index position of every HR slice of the patch), ``c_in`` / ``c_out`` int64, ``ratio``,
``phase`` float32, ``subject`` int64, ``corner`` int64 [3] (voxel of the patch origin, slice
axis first) and ``mask`` [1, D, H, W] float32, the brain area of the target (1 where the target
is not background, ``y != -1``, as SC-GAN's authors define it; 0 in the padding). Subclasses add keys through :meth:`PatchDataset3D.extra_items` (e.g. the raw LR
patch for methods that work on the LR grid, see :meth:`PatchDataset3D.lr_patch`).

An epoch has, per subject, as many items as non-overlapping patches tile its volume
(``prod(ceil(shape / patch))``), so a larger volume is visited proportionally more often.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from unicoal.data import DataConfig, SliceDataset, lr_slices, to_network
from unicoal.geometry import Grid, slice_positions, thick_slice_grid

__all__ = ["PatchParams", "PatchDataset3D", "INTERPOLATIONS", "BACKGROUND", "lr_layout", "pad_offsets", "pad_to", "preinterpolate", "random_patch_corner"]

INTERPOLATIONS = ("linear", "cubic", "lanczos")
#: network-unit value of everything outside a volume (intensity 0: the skull-stripped background)
BACKGROUND = -1.0


def pad_offsets(size: Sequence[int], shape: Sequence[int], centred: bool = False) -> tuple[int, ...]:
    """Voxels of padding before the data in each dimension when ``size`` is padded to ``shape``:
    0 (far-end padding), or ``floor((shape - size) / 2)`` when ``centred`` (SynthSR's predict script)."""
    if any(int(t) < int(s) for s, t in zip(size, shape)):
        raise ValueError(f"cannot pad {tuple(size)} to the smaller {tuple(shape)}")
    return tuple(((int(t) - int(s)) // 2 if centred else 0) for s, t in zip(size, shape))


def pad_to(x, shape: Sequence[int], centred: bool = False, fill: float = BACKGROUND):
    """The padding rule of the 3D methods, for training patches and synthesis alike: the last
    ``len(shape)`` dimensions of ``x`` (numpy array or torch tensor, network units) padded to
    ``shape`` with ``fill`` (background, -1), after the data or centred (:func:`pad_offsets`)."""
    size = tuple(int(s) for s in x.shape[-len(shape):])
    before = pad_offsets(size, shape, centred)
    widths = [(b, int(t) - s - b) for s, t, b in zip(size, shape, before)]
    if not any(b or a for b, a in widths):
        return x
    if isinstance(x, np.ndarray):
        return np.pad(x, [(0, 0)] * (x.ndim - len(shape)) + widths, constant_values=fill)
    import torch.nn.functional as F

    pads = [v for b, a in reversed(widths) for v in (b, a)]
    return F.pad(x, pads, mode="constant", value=fill)


@dataclass(frozen=True)
class PatchParams:
    """The explicit random choices of one 3D item."""

    subject: int
    c_in: int
    c_out: int
    ratio: float
    phase: float
    corner: tuple[int, int, int]  # patch origin, voxel indices with the slice axis first


@functools.lru_cache(maxsize=256)
def lr_layout(hr: Grid, ratio: float, phase: float, profile: str) -> tuple[Grid, np.ndarray]:
    """LR grid of a thick-slice simulation of ``hr`` and ``u`` [N] of every HR slice (LR index units)."""
    lr = thick_slice_grid(hr, ratio * hr.thickness, phase=phase, profile=profile)
    n, delta = slice_positions(lr, hr)
    return lr, n.astype(np.float64) + delta


def random_patch_corner(dims: Sequence[int], patch_size: Sequence[int], state: np.random.RandomState) -> tuple[int, ...]:
    """Minimal corner of a uniformly random patch inside ``dims`` (0 where the volume is smaller),
    drawn exactly as ``monai.data.utils.get_random_patch(dims, patch_size, state)``."""
    return tuple(int(state.randint(0, ms - ps + 1)) if ms > ps else 0 for ms, ps in zip(dims, patch_size))


def preinterpolate(lr: np.ndarray, u: np.ndarray, kernel: str) -> np.ndarray:
    """Resample LR slices ``lr`` [M, ...] (slice axis first) at LR-index positions ``u`` -> [K, ...]."""
    from unicoal.models.interpolation import resample_slices

    return resample_slices(lr, u, kernel)


class PatchDataset3D(SliceDataset):
    """A torch map-style dataset of 3D training patches over a preprocessed samplesheet.

    Args:
        samplesheet, config, seed, rows: as for :class:`unicoal.data.SliceDataset` (subjects,
            modalities, ratios, profile, phase buckets and split come from ``config``).
        patch_size: ``(D, H, W)`` voxels, slice axis first.
        interpolation: kernel of the pre-resampling of the LR source onto the HR slices
            (``linear``, ``cubic``, ``lanczos``); ``None`` skips it (``x_in`` is then the HR
            source itself: only for CMS-only data, ``ratios == (1,)``).

    Example:
        >>> ds = PatchDataset3D("sheet.csv", DataConfig(ratios=(4,)), patch_size=(16, 32, 32))
        >>> ds[0]["x_in"].shape
        torch.Size([1, 16, 32, 32])
    """

    def __init__(self, samplesheet: str | os.PathLike, config: DataConfig, *, seed: int = 0, rows=None,
                 patch_size: Sequence[int] = (32, 32, 32), interpolation: str | None = "cubic", pad_centred: bool = False):
        patch = tuple(int(p) for p in patch_size)
        if len(patch) != 3 or min(patch) < 1:
            raise ValueError(f"patch_size must be three positive ints (slices, rows, cols), got {tuple(patch_size)}")
        if interpolation is not None and interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)} or None, got {interpolation!r}")
        if interpolation is None and any(r != 1.0 for r in config.ratios):
            raise ValueError("interpolation None is only possible for thickness ratio 1 (CMS)")
        self.patch_size = patch
        self.interpolation = interpolation
        self.pad_centred = bool(pad_centred)
        super().__init__(samplesheet, config, seed=seed, rows=rows)
        counts = [int(np.prod([math.ceil(s / p) for s, p in zip(self._shape(i), patch)])) for i in range(len(self.subjects))]
        self._offsets = np.cumsum([0] + counts)

    # --- shapes -------------------------------------------------------------------------------
    def _shape(self, subject: int) -> tuple[int, int, int]:
        """Volume shape with the slice axis first (what :meth:`volume` returns)."""
        g = self.subjects[subject].grid
        a, b = g.inplane_shape
        return g.num_slices, a, b

    def _eligible_slices(self, subject: int) -> np.ndarray:  # no per-slice items here
        return np.arange(self.subjects[subject].grid.num_slices, dtype=np.int64)

    def locate(self, index: int) -> tuple[int, int]:
        """``index`` -> (subject, tile number within the subject)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} patches")
        s = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return s, int(index - self._offsets[s])

    # --- sampling -----------------------------------------------------------------------------
    def sample_params(self, index: int, epoch: int | None = None) -> PatchParams:
        """Draw the task and the patch corner of item ``index`` from (seed, epoch, index)."""
        ep = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, ep, int(index), 3]))
        subject, _ = self.locate(index)
        cfg = self.config
        c_in = self._cin[int(rng.integers(len(self._cin)))]
        c_out = self._cout[int(rng.integers(len(self._cout)))]
        ratio = cfg.ratios[int(rng.integers(len(cfg.ratios)))]
        from unicoal.data import phase_candidates

        phases = phase_candidates(ratio, cfg.profile, cfg.phase_buckets)
        phase = float(phases[int(rng.integers(len(phases)))])
        state = np.random.RandomState(int(rng.integers(2**31 - 1)))
        corner = random_patch_corner(self._shape(subject), self.patch_size, state)
        return PatchParams(subject, c_in, c_out, float(ratio), phase, corner)

    # --- applying -----------------------------------------------------------------------------
    def _window(self, p: PatchParams) -> tuple[slice, slice, slice]:
        shape = self._shape(p.subject)
        return tuple(slice(c, min(c + s, n)) for c, s, n in zip(p.corner, self.patch_size, shape))  # type: ignore[return-value]

    def source_patch(self, p: PatchParams) -> tuple[np.ndarray, np.ndarray]:
        """The pre-interpolated source patch (in [0, 1], cropped to the volume) and ``u`` of its HR slices."""
        cfg = self.config
        s = self.subjects[p.subject]
        src = self.volume(p.subject, cfg.modalities[p.c_in])
        zs, ys, xs = self._window(p)
        if self.interpolation is None:
            return np.asarray(src[zs, ys, xs], dtype=np.float32), np.arange(zs.start, zs.stop, dtype=np.float64)
        from unicoal.models.interpolation import resample_matrix

        lr_grid, u_all = lr_layout(s.grid, p.ratio, p.phase, cfg.profile)
        count = lr_grid.num_slices
        u = u_all[zs]
        mat = resample_matrix(count, u, self.interpolation)  # [D, count]
        need = np.flatnonzero(np.abs(mat).sum(axis=0) > 0)
        lr = lr_slices(src[:, ys, xs], p.ratio, p.phase, cfg.profile, need, count)  # [len(need), h, w]
        x = np.tensordot(mat[:, need].astype(np.float32), lr, axes=([1], [0]))
        return x.astype(np.float32), u

    def lr_patch(self, p: PatchParams, context: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
        """For methods on the LR grid: the LR slices covering the patch (``context`` extra slices
        each side, replicated at the edges), in [0, 1], shape [M, h, w]; ``u`` of the patch's HR
        slices relative to the first returned LR slice; and that slice's LR index."""
        cfg = self.config
        s = self.subjects[p.subject]
        src = self.volume(p.subject, cfg.modalities[p.c_in])
        zs, ys, xs = self._window(p)
        lr_grid, u_all = lr_layout(s.grid, p.ratio, p.phase, cfg.profile)
        u = u_all[zs]
        first = int(math.floor(u.min())) - context
        last = int(math.floor(u.max())) + 1 + context
        idx = np.clip(np.arange(first, last + 1), 0, lr_grid.num_slices - 1)
        lr = lr_slices(src[:, ys, xs], p.ratio, p.phase, cfg.profile, idx, lr_grid.num_slices)
        return lr, u - first, first

    def extra_items(self, p: PatchParams) -> dict[str, Any]:
        """Hook for subclasses: more keys of an item (default none)."""
        return {}

    def _fit(self, arr: np.ndarray) -> np.ndarray:
        """A cropped patch (volume smaller than the patch) in network units, padded to the patch
        size by :func:`pad_to` (the rule synthesis uses)."""
        return pad_to(to_network(arr), self.patch_size, self.pad_centred)

    def make_item(self, p: PatchParams) -> dict[str, Any]:  # type: ignore[override]
        """Deterministic item for explicit parameters ``p``."""
        import torch

        cfg = self.config
        x, u = self.source_patch(p)
        y = np.asarray(self.volume(p.subject, cfg.modalities[p.c_out])[self._window(p)], dtype=np.float32)
        d = self.patch_size[0]
        (before,) = pad_offsets((len(u),), (d,), self.pad_centred)
        u_full = np.pad(u, (before, d - len(u) - before), mode="edge") if len(u) else np.zeros(d)  # padded slices: the nearest u
        y_net = self._fit(y)
        item = {
            "x_in": torch.from_numpy(np.ascontiguousarray(self._fit(x)[None], dtype=np.float32)),
            "y": torch.from_numpy(np.ascontiguousarray(y_net[None], dtype=np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray((y_net != BACKGROUND)[None], dtype=np.float32)),
            "delta": torch.from_numpy((u_full - np.floor(u_full)).astype(np.float32)),
            "u": torch.from_numpy(u_full.astype(np.float32)),
            "c_in": torch.tensor(p.c_in, dtype=torch.int64),
            "c_out": torch.tensor(p.c_out, dtype=torch.int64),
            "ratio": torch.tensor(p.ratio, dtype=torch.float32),
            "phase": torch.tensor(p.phase, dtype=torch.float32),
            "subject": torch.tensor(p.subject, dtype=torch.int64),
            "corner": torch.tensor(p.corner, dtype=torch.int64),
        }
        item.update(self.extra_items(p))
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.make_item(self.sample_params(int(index)))

    # --- construction from a training config --------------------------------------------------
    @classmethod
    def from_train_config(cls, cfg, samplesheet, data_cfg: DataConfig) -> "PatchDataset3D":
        """``unicoal.train.loop.build_dataset`` for ``dataset="patch3d"`` methods: patch size and
        interpolation come from the resolved model section (``model.patch_size``,
        ``model.interpolation``)."""
        model = cfg.model
        return cls(samplesheet, data_cfg, seed=cfg.run.seed, patch_size=model["patch_size"], interpolation=model.get("interpolation", "cubic"),
                   pad_centred=bool(model.get("pad_centred", False)))
