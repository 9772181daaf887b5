"""3D networks at synthesis time: pre-interpolation onto the target grid, then sliding windows.

Used by the 3D baselines (DCSRN, DeepResolve, SynthSR) whose generator maps a volume on the
target grid to a volume on the same grid, ``G(x [B, 1, D, H, W], delta, c_out, z=None) ->
[B, 1, D, H, W]`` in [-1, 1] (docs/training.md, "3D methods").

:meth:`VolumePredictor.predict` receives the source volume ``[N, A, B]`` and, for every target
slice ``k``, ``u = n[k] + delta[k]`` (source slice-index units, from
:func:`unicoal.geometry.slice_positions`). It

1. resamples the source along the slice axis at ``u`` with the method's kernel (the same
   :func:`unicoal.data3d.preinterpolate` as in training: ``linear``, ``cubic`` (Keys a = -0.5) or
   ``lanczos``; edges replicate) -- the "pre-resampling" of the 3D methods;
2. pads it with :func:`unicoal.data3d.pad_to`, the padding rule of training (background -1
   after the far end, or centred to a multiple of ``pad_multiple``: SynthSR's predict script
   pads zeros centred to a multiple of 32), so a window that holds a whole volume sees what
   the training patches of a smaller volume showed the network;
3. runs the network over it: in one pass when it fits the inference window, else by
   :func:`sliding_window_predict` (MONAI's window placement and Gaussian importance map; MONAI
   ``sliding_window_inference`` itself with ``backend="monai"``); with ``flip_axis`` set, the
   output is the mean of the network on the volume and, flipped back, on its mirror image
   (SynthSR's test-time left-right flip averaging).

:func:`sliding_window_predict` is exact, not only smooth: windows never extend past the volume
(they are clamped inside, as MONAI does), so a window face that lies on the volume face sees the same padding as a
whole-volume pass, and a voxel closer than the network's receptive radius (``halo``) to a face
*inside* the volume gets weight 0 from that window. Every voxel is covered by some window at
weight > 0 (the window stride is at most ``window - 2 * halo``), and the others are blended with
MONAI's Gaussian importance map. Hence the result equals whole-volume inference to float
rounding when ``halo`` is at least the network's receptive radius (and window starts are
multiples of ``align``, the U-Net's pooling factor), and it has no seams. When the receptive
radius does not fit in a window (the published SynthSR U-Net), the halo is capped at
``(window - align) / 2`` and the blend is an approximation (logged).
"""
from __future__ import annotations

import logging
import math
import sys
from typing import Callable, Sequence

import numpy as np

from unicoal.data import from_network, to_network
from unicoal.errors import InputError

__all__ = ["VolumePredictor", "sliding_window_predict", "window_plan", "window_starts", "importance_map"]

log = logging.getLogger(__name__)


def window_plan(size: Sequence[int], window: Sequence[int], halo: int, align: int = 1, overlap: float = 0.25) -> tuple[list[int], list[int], list[int], bool]:
    """Per-dimension window size, stride and effective halo for a (far-end padded) volume ``size``.

    Returns ``(roi, stride, halo, exact)``: ``roi`` is ``window`` rounded down to a multiple of
    ``align`` (at most ``size``); the stride is ``roi * (1 - overlap)`` but at most
    ``roi - 2 * halo``, rounded down to a multiple of ``align``; ``exact`` is False when a halo
    had to be capped to leave a stride of at least ``align``.
    """
    roi, stride, halos, exact = [], [], [], True
    for s, w in zip(size, window):
        r = min(int(s), max(align, int(w) // align * align))
        if r >= s:
            roi.append(int(s)), stride.append(int(s)), halos.append(int(halo))
            continue
        h = int(halo)
        if r - 2 * h < align:
            h = max(0, (r - align) // 2)
            exact = False
        iv = min(int(r * (1.0 - overlap)), r - 2 * h)
        iv = max(align, iv // align * align)
        roi.append(r), stride.append(iv), halos.append(h)
    return roi, stride, halos, exact


def importance_map(roi: Sequence[int], sigma_scale: float = 0.125, device=None):
    """MONAI's Gaussian importance map (``monai.data.utils.compute_importance_map(roi,
    mode="gaussian")``, the same formula: separable ``exp(-x^2 / (2 (sigma_scale * size)^2))``
    about the window centre, clamped below at max(min, 1e-3))."""
    import torch

    w = None
    for n in roi:
        x = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float32, device=device)
        g = torch.exp(x**2 / (-2 * (sigma_scale * n) ** 2))
        w = g if w is None else w.unsqueeze(-1) * g
    return torch.clamp(w, min=max(float(w.min()), 1e-3))


def window_starts(size: int, roi: int, stride: int) -> list[int]:
    """Window origins along one dimension, as MONAI's ``dense_patch_slices``: ``0, stride, ...``
    until a window reaches the end, the last one moved back to end flush with the volume."""
    if roi >= size:
        return [0]
    count = next(d for d in range(math.ceil(size / stride) + 1) if d * stride + roi >= size) + 1
    return [min(i * stride, size - roi) for i in range(count)]


def sliding_window_predict(x, fn: Callable, *, window: Sequence[int] | None, halo: int = 0, align: int = 1, overlap: float = 0.25,
                           sigma_scale: float = 0.125, sw_batch_size: int = 1, progress: bool = False, backend: str = "native"):
    """``fn`` over ``x`` [1, C, D, H, W] by overlapping windows (or in one pass if it fits).

    ``fn`` maps ``[b, C, d, h, w]`` to ``[b, K, d, h, w]``. The volume is first padded at its far
    end to a multiple of ``align`` in each dimension by :func:`unicoal.data3d.pad_to` (background
    -1, the rule of the training patches); the output is cropped back.
    Each window's Gaussian importance map (MONAI's) is zeroed within ``halo`` voxels of the window
    faces that lie inside the volume (see module doc). ``backend="monai"`` runs the windows
    through MONAI's ``sliding_window_inference`` (``with_coord``; the weight travels as an extra
    output channel), ``"native"`` (default) through the loop below, which places the windows as
    MONAI does: importing MONAI costs about 10 CPU seconds per process (measured: ``import
    monai`` imports torchvision's model zoo), more than a tiny training job; the two backends
    agree to float rounding (``tests/test_predict3d.py``).
    """
    import torch

    from unicoal.data3d import pad_to

    if backend not in ("native", "monai"):
        raise ValueError(f"backend must be 'native' or 'monai', got {backend!r}")
    size = tuple(int(s) for s in x.shape[2:])
    padded = tuple(int(math.ceil(s / align) * align) for s in size)
    x = pad_to(x, padded)
    if window is None or all(p <= w for p, w in zip(padded, window)):
        return fn(x)[:, :, : size[0], : size[1], : size[2]]
    roi, stride, halos, exact = window_plan(padded, window, halo, align, overlap)
    if not exact:
        log.warning("sliding window %s: the receptive radius %d does not fit, halo capped at %s (the blend approximates whole-volume inference)", roi, halo, halos)
    gauss = importance_map(roi, sigma_scale, x.device)

    def weight(starts: Sequence[int]):
        w = gauss.clone()
        for d in range(3):
            h, s0 = halos[d], int(starts[d])
            if h <= 0:
                continue
            idx = [slice(None)] * 3
            if s0 > 0:
                idx[d] = slice(0, h)
                w[tuple(idx)] = 0.0
            if s0 + roi[d] < padded[d]:
                idx[d] = slice(roi[d] - h, roi[d])
                w[tuple(idx)] = 0.0
        return w

    if backend == "monai":
        from monai.inferers import sliding_window_inference

        def weighted(win, coords):
            y = fn(win).float()
            w = torch.stack([weight([c[2 + d].start for d in range(3)]) for c in coords])[:, None]
            return torch.cat([y * w, w], dim=1)

        overlaps = [0.0 if r >= p else 1.0 - (iv + 0.5) / r for r, iv, p in zip(roi, stride, padded)]
        acc = sliding_window_inference(x, tuple(roi), int(sw_batch_size), weighted, overlap=overlaps, mode="constant",
                                       with_coord=True, progress=progress)
        out = acc[:, :-1] / acc[:, -1:]
    else:
        import itertools

        starts = list(itertools.product(*(window_starts(p, r, iv) for p, r, iv in zip(padded, roi, stride))))
        out = wsum = None
        bar = None
        if progress:
            from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

            bar = tqdm(total=len(starts), desc="windows", unit="window", file=sys.stderr, dynamic_ncols=True)
        for i in range(0, len(starts), max(1, int(sw_batch_size))):
            group = starts[i:i + max(1, int(sw_batch_size))]
            sls = [tuple(slice(s, s + r) for s, r in zip(st, roi)) for st in group]
            y = fn(torch.cat([x[(slice(None), slice(None)) + sl] for sl in sls])).float()
            if out is None:
                out = torch.zeros((1, y.shape[1]) + padded, dtype=torch.float32, device=y.device)
                wsum = torch.zeros((1, 1) + padded, dtype=torch.float32, device=y.device)
            for j, (st, sl) in enumerate(zip(group, sls)):
                w = weight(st).to(y.device)
                out[(slice(None), slice(None)) + sl] += y[j:j + 1] * w
                wsum[(slice(None), slice(None)) + sl] += w
            if bar is not None:
                bar.update(len(group))
        if bar is not None:
            bar.close()
        out = out / wsum
    return out[:, :, : size[0], : size[1], : size[2]]


class VolumePredictor:
    """:class:`unicoal.predictors.Predictor` of the 3D methods (deterministic).

    Args:
        G: the generator, ``G(x [B, 1, D, H, W], delta [B, D], c_out [B], z=None)``; its
            ``receptive_radius`` and ``size_multiple`` attributes (if any) set the halo and the
            alignment of the windows.
        modalities: target modalities the model was trained to produce.
        class_modalities: the model's modality list (index of ``c_out``).
        interpolation: pre-resampling kernel (``linear``, ``cubic``, ``lanczos``).
        window: inference window ``(D, H, W)`` voxels; ``None``: whole volume in one pass.
        overlap: minimum overlap of neighbouring windows (fraction of the window).
        pad_multiple: pad the volume to a multiple of this (``None``: of the network's
            ``size_multiple``) before the windows, centred when ``pad_centred`` (both by
            :func:`unicoal.data3d.pad_to`, the training rule); SynthSR: 32, centred.
        flip_axis: average with the network's output on the volume mirrored along this axis of
            ``[N, A, B]`` (``None``: off; SynthSR: 1, left-right for axial or coronal slices of
            the RAS-canonical volumes of :mod:`unicoal.preprocess.register`).
    """

    stochastic = False

    def __init__(self, G, *, modalities: Sequence[str], class_modalities: Sequence[str] | None = None, interpolation: str = "cubic",
                 window: Sequence[int] | None = None, overlap: float = 0.25, sw_batch_size: int = 1, device: str = "cpu",
                 name: str = "volume", amp: bool = True, pad_multiple: int | None = None, pad_centred: bool = False,
                 flip_axis: int | None = None):
        import torch

        self.G = G.eval().requires_grad_(False)
        self.modalities = tuple(modalities)
        self.class_modalities = tuple(class_modalities or modalities)
        self.interpolation = interpolation
        self.window = None if window is None else tuple(int(w) for w in window)
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)
        self.halo = int(getattr(G, "receptive_radius", 0))
        self.align = int(getattr(G, "size_multiple", 1))
        self.pad_multiple = int(pad_multiple or self.align)
        if self.pad_multiple % self.align:
            raise ValueError(f"pad_multiple {self.pad_multiple} must be a multiple of the network's size_multiple {self.align}")
        self.pad_centred = bool(pad_centred)
        if flip_axis is not None and int(flip_axis) not in (0, 1, 2):
            raise ValueError(f"flip_axis must be 0, 1, 2 or None, got {flip_axis}")
        self.flip_axis = None if flip_axis is None else int(flip_axis)
        self._progress = False
        self.device = torch.device(device)
        self.name = name
        self.amp = amp and self.device.type == "cuda"
        if self.device.type == "cpu":
            from unicoal.nn.allocator import keep_freed_memory

            keep_freed_memory()

    @classmethod
    def from_checkpoint(cls, spec, ckpt: dict, device: str = "cpu") -> "VolumePredictor":
        """The EMA generator of an inference export (``model.pt``) of a 3D method ``spec``."""
        model_cfg = spec.model_config(ckpt["model_config"])
        G, _ = spec.build_models(model_cfg, discriminator=False)
        G.load_state_dict(ckpt["state_dict"])
        G.to(device)
        data = (ckpt.get("train_config") or {}).get("data") or {}
        outputs = data.get("output_modalities") or ckpt["modalities"]
        return cls(G, modalities=outputs, class_modalities=ckpt["modalities"], interpolation=model_cfg.interpolation,
                   window=model_cfg.inference_window, device=device, name=spec.name, pad_multiple=getattr(model_cfg, "pad_multiple", None),
                   pad_centred=bool(getattr(model_cfg, "pad_centred", False)), flip_axis=getattr(model_cfg, "flip_axis", None))

    def forward(self, x):
        """Network output for a pre-interpolated volume ``x`` [1, 1, K, A, B] in [-1, 1] (tensor
        on the predictor's device) with the target modality set by :meth:`predict`."""
        import contextlib

        import torch

        from unicoal.data3d import pad_offsets, pad_to

        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

        def fn(win):
            b, d = win.shape[0], win.shape[2]
            delta = torch.zeros(b, d, device=win.device)
            c = torch.full((b,), self._c_out, dtype=torch.int64, device=win.device)
            with ctx:
                return self.G(win, delta, c, None).float()

        size = tuple(int(s) for s in x.shape[2:])
        m = self.pad_multiple
        x = pad_to(x, tuple(int(math.ceil(s / m) * m) for s in size), self.pad_centred)
        crop = tuple(slice(b, b + s) for b, s in zip(pad_offsets(size, x.shape[2:], self.pad_centred), size))

        def run(v):
            return sliding_window_predict(v, fn, window=self.window, halo=self.halo, align=self.align, overlap=self.overlap,
                                          sw_batch_size=self.sw_batch_size, progress=self._progress)

        y = run(x)
        if self.flip_axis is not None:
            dim = 2 + self.flip_axis
            y = 0.5 * y + 0.5 * torch.flip(run(torch.flip(x, dims=(dim,))), dims=(dim,))
        return y[(slice(None), slice(None)) + crop]

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        import torch

        from unicoal.data3d import preinterpolate

        if target not in self.modalities:
            raise InputError(None, f"this {self.name} model produces {', '.join(self.modalities)}, not {target!r}", f"use --to {' or --to '.join(self.modalities)}, or train a model for {target}")
        self._c_out = self.class_modalities.index(target)
        self._progress = bool(progress)
        u = np.asarray(n, dtype=np.float64) + np.asarray(delta, dtype=np.float64)
        x = to_network(preinterpolate(np.asarray(volume, dtype=np.float32), u, self.interpolation))
        if progress:
            print(f"[{self.name}] {x.shape} on {self.device}, window {self.window}, halo {self.halo}", file=sys.stderr)
        with torch.inference_mode():
            y = self.forward(torch.from_numpy(np.ascontiguousarray(x))[None, None].to(self.device))
        return np.clip(from_network(y[0, 0].cpu().numpy()), 0.0, 1.0).astype(np.float32)
