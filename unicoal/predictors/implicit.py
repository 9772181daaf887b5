"""Implicit (coordinate-queried) 3D networks: ArSSR's training patches and patch-wise synthesis.

ArSSR (:mod:`unicoal.models.baselines.arssr`) encodes a low-resolution (LR) patch on its own
grid and decodes the high-resolution (HR) target slices at their continuous positions
``u = n + delta`` in LR slice-index units (:func:`unicoal.geometry.slice_positions`), so one
model serves every thickness ratio, including non-integer ones (5.33x).

* :class:`ImplicitPatchDataset` (training): index ``i`` fixes a subject and an HR slice ``k``
  (as :class:`unicoal.data.SliceDataset`); per item and epoch it draws the thickness ratio (as
  ArSSR's authors draw their scale, ``round(uniform(lo, hi + 0.04), 1)`` over the range of the
  data config's ratios; or one of the listed ratios), a grid phase covering ``k``, the first LR
  slice ``j0`` of an ``L``-slice window containing ``k``'s LR neighbours, an ``S x S`` in-plane
  crop and ``K`` random voxels (without replacement where there are enough) of the HR slices
  inside the window, as the authors draw ``K = 8000`` voxels of their HR patch; then it cuts
  the LR window from the thick-slice simulation (:func:`unicoal.data.lr_slices`, only the
  slices it needs) and the queried voxels from the volume. Items: ``x_in [1, L, S, S]`` and
  ``y [1, K]`` in [-1, 1], ``delta [K, 3]`` = the voxels' ``(u - j0, row, col)`` in patch
  voxel units (ArSSR's queries), ``c_in = c_out`` (SR), ``ratio``, ``phase``, ``j0``,
  ``subject``, ``k``. Deterministic in ``(seed, epoch, index)``.
* :class:`ImplicitPredictor` (synthesis, predictor kind ``implicit``): the volume is covered by
  overlapping windows of ``L`` LR slices (stride ``L / 2``) over the whole plane; each window
  is encoded once and the decoder is queried at the target slices inside it, a few slices per
  pass; overlapping windows are blended with tent weights along the slice axis, so seams get no
  edge effects of the convolutions' padding. In-plane the window is the whole plane, with the
  decoder's in-plane coordinates normalised over it, as the authors' test script does for the
  whole image (training normalises over the ``S x S`` patch); along the slice axis they are
  normalised over the ``L``-slice window, as in training.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from unicoal.data import SliceDataset, _lr_layout, lr_slices, to_network, from_network
from unicoal.errors import InputError

__all__ = ["ImplicitItemParams", "ImplicitPatchDataset", "ImplicitPredictor", "window_starts", "tent_weights"]


def window_starts(length: int, window: int, stride: int | None = None) -> list[int]:
    """Starts of windows of ``window`` covering ``0 .. length-1`` with ``stride`` (default
    ``window // 2``), the last one flush with the end; ``[0]`` when the window is longer."""
    if length <= window:
        return [0]
    step = max(1, int(stride or window // 2))
    starts = list(range(0, length - window + 1, step))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def tent_weights(pos: np.ndarray, lo: float, hi: float, open_lo: bool, open_hi: bool, floor: float = 1e-3) -> np.ndarray:
    """Blending weight of positions ``pos`` in a window spanning ``[lo, hi]``: the distance to
    the nearest window edge (edges on the volume's border count as infinitely far), >= ``floor``."""
    pos = np.asarray(pos, dtype=np.float64)
    d_lo = np.full(pos.shape, np.inf) if open_lo else pos - lo
    d_hi = np.full(pos.shape, np.inf) if open_hi else hi - pos
    w = np.minimum(d_lo, d_hi)
    w = np.where(np.isinf(w), hi - lo, w)
    return np.maximum(w, floor)


def _crop(arr: np.ndarray, a0: int, b0: int, size: int, fill: float) -> np.ndarray:
    """``arr[..., a0:a0+size, b0:b0+size]``, padded with ``fill`` where it leaves the array."""
    a, b = arr.shape[-2:]
    out = np.full(arr.shape[:-2] + (size, size), fill, dtype=np.float32)
    sa, sb = max(a0, 0), max(b0, 0)
    ea, eb = min(a0 + size, a), min(b0 + size, b)
    if ea > sa and eb > sb:
        out[..., sa - a0:ea - a0, sb - b0:eb - b0] = arr[..., sa:ea, sb:eb]
    return out


@dataclass(frozen=True)
class ImplicitItemParams:
    """The explicit random choices of one ArSSR item (:meth:`ImplicitPatchDataset.make_item` applies them)."""

    subject: int
    k: int
    c_in: int
    ratio: float
    phase: float
    j0: int  # first LR slice of the window
    targets: tuple[int, ...]  # the HR slices inside the window (those the queries may hit)
    a0: int  # in-plane crop offsets (may be negative: padding)
    b0: int
    queries: tuple[int, ...] = ()  # K flat indices into [len(targets), S, S]


class ImplicitPatchDataset(SliceDataset):
    """ArSSR training patches over a preprocessed samplesheet (see module doc).

    Args:
        samplesheet, config, seed: as :class:`unicoal.data.SliceDataset` (``config.resolution``
            is the in-plane patch side ``S``; SR only: the output modality is the input's).
        lr_slices: ``L``, LR slices per window; ``query_voxels``: ``K``, HR voxels per item.
        continuous_scale: draw the ratio continuously over the range of ``config.ratios``
            (ArSSR's authors); False: one of the listed ratios.
    """

    def __init__(self, samplesheet, config, *, lr_slices: int, query_voxels: int, seed: int = 0, rows=None, continuous_scale: bool = True):
        super().__init__(samplesheet, config, seed=seed, rows=rows)
        if lr_slices < 2 or query_voxels < 1:
            raise ValueError(f"lr_slices must be >= 2 and query_voxels >= 1, got {lr_slices}, {query_voxels}")
        if not set(config.input_modalities) <= set(config.output_modalities):
            raise InputError(samplesheet, f"ArSSR is SR only: input modalities {list(config.input_modalities)} must be among the outputs {list(config.output_modalities)}", "set data.output_modalities to the input modalities")
        self.lr_slices = int(lr_slices)
        self.query_voxels = int(query_voxels)
        self.continuous_scale = bool(continuous_scale)

    @classmethod
    def from_train_config(cls, cfg, samplesheet, data_cfg) -> "ImplicitPatchDataset":
        """``unicoal.train.loop.build_dataset`` for ``dataset="implicit"`` methods: ``L``, ``K`` and
        the scale sampling come from the resolved model section (``model.lr_slices``,
        ``model.query_voxels``, ``model.continuous_scale``)."""
        return cls(samplesheet, data_cfg, lr_slices=int(cfg.model["lr_slices"]), query_voxels=int(cfg.model["query_voxels"]), seed=cfg.run.seed,
                   continuous_scale=bool(cfg.model.get("continuous_scale", True)))

    def draw_ratio(self, rng: np.random.Generator) -> float:
        """The item's thickness ratio: ``round(uniform(lo, hi + 0.04), 1)`` over the range of the
        config's ratios (ArSSR's ``data.py``: ``np.round(random.uniform(2, 4 + 0.04), 1)``), or
        one of the listed ratios (``continuous_scale`` False)."""
        ratios = [float(r) for r in self.config.ratios]
        lo, hi = min(ratios), max(ratios)
        if not self.continuous_scale or hi <= lo:
            return ratios[int(rng.integers(len(ratios)))]
        return float(min(hi, round(float(rng.uniform(lo, hi + 0.04)), 1)))

    def sample_params(self, index: int, epoch: int | None = None) -> ImplicitItemParams:  # type: ignore[override]
        p = super().sample_params(index, epoch)
        ep = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, ep, int(index), 1]))
        s = self.subjects[p.subject]
        ratio = self.draw_ratio(rng)
        phases = self.covering_phases(s.grid.num_slices, ratio, p.k)
        phase = float(phases[int(rng.integers(len(phases)))])
        lr_grid, n_all, d_all = _lr_layout(s.grid, ratio, phase, self.config.profile)
        count = lr_grid.num_slices
        L = self.lr_slices
        n = int(n_all[p.k])
        # windows holding n and n + 1 (the LR slices around k), inside the LR volume when it is long enough
        lo, hi = n + 2 - L, n
        if count >= L:
            lo, hi = max(lo, 0), min(hi, count - L)
            lo = min(lo, hi)
        else:
            lo = hi = 0
        j0 = int(rng.integers(lo, hi + 1))
        u = n_all + d_all
        inside = np.flatnonzero((u >= j0 - 0.5) & (u <= j0 + L - 0.5))
        targets = tuple(int(t) for t in inside) if len(inside) else (int(p.k),)
        a, b = s.grid.inplane_shape
        S = int(self.config.resolution)
        a0 = int(rng.integers(0, a - S + 1)) if a >= S else -((S - a) // 2)
        b0 = int(rng.integers(0, b - S + 1)) if b >= S else -((S - b) // 2)
        total, K = len(targets) * S * S, self.query_voxels
        queries = rng.choice(total, size=K, replace=total < K)  # the authors: without replacement
        return ImplicitItemParams(p.subject, p.k, p.c_in, ratio, phase, j0, targets, a0, b0, tuple(int(q) for q in queries))

    def make_item(self, p: ImplicitItemParams) -> dict[str, Any]:  # type: ignore[override]
        import torch

        cfg = self.config
        s = self.subjects[p.subject]
        lr_grid, n_all, d_all = _lr_layout(s.grid, float(p.ratio), float(p.phase), cfg.profile)
        count = lr_grid.num_slices
        raw = np.arange(p.j0, p.j0 + self.lr_slices)
        idx = np.clip(raw, 0, count - 1)
        mod = cfg.modalities[p.c_in]
        vol = self.volume(p.subject, mod)
        S = int(cfg.resolution)
        x = to_network(lr_slices(vol, p.ratio, p.phase, cfg.profile, idx, count))
        if cfg.padding == "constant":
            x[(raw < 0) | (raw >= count)] = -1.0
        x = _crop(x, p.a0, p.b0, S, -1.0)
        t = np.asarray(p.targets)
        ti, ri, ci = np.unravel_index(np.asarray(p.queries, dtype=np.int64), (len(t), S, S))
        planes = _crop(to_network(np.asarray(vol[t], dtype=np.float32)), p.a0, p.b0, S, -1.0)  # [len(t), S, S]
        y = planes[ti, ri, ci]
        u = n_all[t] + d_all[t] - p.j0
        coords = np.stack([u[ti], ri, ci], axis=-1).astype(np.float32)  # [K, 3]: (u - j0, row, col)
        return {
            "x_in": torch.from_numpy(np.ascontiguousarray(x[None], dtype=np.float32)),
            "y": torch.from_numpy(np.ascontiguousarray(y[None], dtype=np.float32)),
            "delta": torch.from_numpy(coords),
            "c_in": torch.tensor(p.c_in, dtype=torch.int64),
            "c_out": torch.tensor(p.c_in, dtype=torch.int64),
            "ratio": torch.tensor(p.ratio, dtype=torch.float32),
            "phase": torch.tensor(p.phase, dtype=torch.float32),
            "j0": torch.tensor(p.j0, dtype=torch.int64),
            "subject": torch.tensor(p.subject, dtype=torch.int64),
            "k": torch.tensor(p.k, dtype=torch.int64),
        }


class ImplicitPredictor:
    """Patch-wise synthesis with an encoder / implicit-decoder network (ArSSR; see module doc).

    ``net`` has ``encode(x [B, 1, L, H, W]) -> feats`` and ``decode(feats, u [B, Q]) ->
    [B, 1, Q, H, W]``; windows are ``L`` LR slices over the whole plane (see module doc).
    """

    stochastic = False

    def __init__(self, net, *, modalities: Sequence[str], lr_slices: int, resolution: int, padding: str = "replicate", device: str = "cpu", name: str = "arssr"):
        import torch

        self.net = net.eval().requires_grad_(False)
        self.modalities = tuple(modalities)
        self.lr_slices = int(lr_slices)
        self.resolution = int(resolution)
        self.padding = padding
        self.device = torch.device(device)
        self.name = name

    @classmethod
    def from_checkpoint(cls, spec, ckpt: dict, device: str = "cpu") -> "ImplicitPredictor":
        model_cfg = spec.model_config(ckpt["model_config"])
        G, _ = spec.build_models(model_cfg, discriminator=False)
        G.load_state_dict(ckpt["state_dict"])
        G.to(device)
        return cls(G, modalities=ckpt["modalities"], lr_slices=model_cfg.lr_slices, resolution=model_cfg.img_resolution, padding=ckpt.get("padding", "replicate"), device=device, name=spec.name)

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Target slices at ``u = n + delta`` (``batch_size``: target slices per decoder pass)."""
        import torch

        if target is not None and target not in self.modalities:
            raise InputError(None, f"unknown target modality {target!r} for this model", f"use one of {', '.join(self.modalities)}")
        count, a, b = volume.shape
        L = self.lr_slices
        u = np.asarray(n, dtype=np.float64) + np.asarray(delta, dtype=np.float64)
        K = len(u)
        src = to_network(np.asarray(volume, dtype=np.float32))
        acc = np.zeros((K, a, b), dtype=np.float64)
        wsum = np.zeros(K, dtype=np.float64)
        z_starts = window_starts(count, L)
        step = max(1, int(batch_size))
        bar = None
        if progress:
            from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

            bar = tqdm(total=K * len(z_starts), desc=f"{self.name} {target}", unit="slice", file=sys.stderr, dynamic_ncols=True)
        with torch.inference_mode():
            for zi, j0 in enumerate(z_starts):
                lo, hi = j0 - 0.5, j0 + L - 0.5
                first, last = zi == 0, zi == len(z_starts) - 1
                sel = np.flatnonzero(((u >= lo) | first) & ((u <= hi) | last))
                if not len(sel):
                    continue
                wz = tent_weights(u[sel], lo, hi, first, last)
                raw = np.arange(j0, j0 + L)
                window = src[np.clip(raw, 0, count - 1)]
                if self.padding == "constant":
                    window[(raw < 0) | (raw >= count)] = -1.0
                feats = self.net.encode(torch.from_numpy(np.ascontiguousarray(window))[None, None].to(self.device))
                for s in range(0, len(sel), step):
                    part = sel[s:s + step]
                    q = torch.as_tensor((u[part] - j0).astype(np.float32), device=self.device)[None]
                    y = from_network(self.net.decode(feats, q)[0, 0].float().cpu().numpy())  # [q, a, b]
                    w = wz[s:s + step]
                    acc[part] += w[:, None, None] * y
                    wsum[part] += w
                    if bar is not None:
                        bar.update(len(part))
        if bar is not None:
            bar.close()
        return np.clip(acc / np.maximum(wsum, 1e-12)[:, None, None], 0.0, 1.0).astype(np.float32)
