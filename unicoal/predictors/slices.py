"""Slice-wise (2D / 2.5D) networks at synthesis time: every target slice from its ``m`` source slices.

Used by Uni-COAL and every slice-wise baseline whose generator follows the call convention
``G(x_in [B, m, S, S], delta [B], c_out [B], z [B, z_dim] | None) -> [B, 1, S, S]``
(docs/training.md). For target slice ``k`` at ``u = n + delta`` the source slices
``n-1 .. n+2`` (for ``m = 4``; :func:`unicoal.geometry.input_indices`) are fitted in-plane to the
network's resolution, mapped to [-1, 1], run in batches and mapped back.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from unicoal.data import fit_inplane, from_network, restore_inplane, to_network
from unicoal.errors import InputError
from unicoal.geometry import input_indices

__all__ = ["SlicePredictor"]


class SlicePredictor:
    """Slice-wise (2D / 2.5D) networks with the Uni-COAL call convention
    ``G(x_in [B, m, S, S], delta [B], c_out [B], z [B, z_dim]) -> [B, 1, S, S]``.

    The same latent code ``z`` (drawn from ``seed``) is used for every slice of a volume, so a
    sample is one coherent volume; source slices outside the volume are replicated (or set to
    -1 with ``padding="constant"``), as in training.
    """

    stochastic = True

    def __init__(self, G, *, modalities: Sequence[str], num_inputs: int, resolution: int, padding: str = "replicate", z_dim: int = 0, device: str = "cpu", name: str = "unicoal", amp: bool = False):
        import torch

        self.G = G.eval().requires_grad_(False)
        self.modalities = tuple(modalities)
        self.num_inputs = int(num_inputs)
        self.resolution = int(resolution)
        self.padding = padding
        self.z_dim = int(z_dim)
        self.device = torch.device(device)
        self.name = name
        self.amp = amp and self.device.type == "cuda"
        if self.device.type == "cpu":
            from unicoal.nn.allocator import keep_freed_memory

            keep_freed_memory()  # reuse freed activation memory: about 1.4x faster on the CPU

    @classmethod
    def from_checkpoint(cls, spec, ckpt: dict, device: str = "cpu") -> "SlicePredictor":
        """The EMA generator of an inference export (``model.pt``) of method ``spec``."""
        model_cfg = spec.model_config(ckpt["model_config"])
        G, _ = spec.build_models(model_cfg, discriminator=False)
        G.load_state_dict(ckpt["state_dict"])
        G.to(device)
        # the precision the model was trained in: bf16 autocast on CUDA only after a bf16 training
        # (run.amp), fp32 otherwise, as the authors synthesize
        amp = (ckpt.get("train_config") or {}).get("run", {}).get("amp", "none") == "bf16"
        return cls(G, modalities=ckpt["modalities"], num_inputs=ckpt["num_inputs"], resolution=ckpt["resolution"], padding=ckpt.get("padding", "replicate"), z_dim=int(getattr(model_cfg, "z_dim", 0) or 0), device=device, name=spec.name, amp=amp)

    def predict(self, volume: np.ndarray, n: np.ndarray, delta: np.ndarray, target: str | None, *, seed: int = 0, batch_size: int = 16, progress: bool = False) -> np.ndarray:
        import contextlib

        import torch

        if target not in self.modalities:
            raise InputError(None, f"unknown target modality {target!r} for this model", f"use one of {', '.join(self.modalities)}")
        c_out = self.modalities.index(target)
        count, a, b = volume.shape
        idx, inside = input_indices(np.asarray(n), count, self.num_inputs)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(1, self.z_dim, generator=gen) if self.z_dim else None
        out = np.empty((len(n), a, b), dtype=np.float32)
        bar = None
        if progress:
            from unicoal.progress import progress as tqdm  # a bar on a TTY, plain lines in batch logs

            bar = tqdm(total=len(n), desc=f"{self.name} {target}", unit="slice", file=sys.stderr, dynamic_ncols=True)
        ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.amp else contextlib.nullcontext
        with torch.inference_mode():
            for s in range(0, len(n), batch_size):
                sl = slice(s, min(s + batch_size, len(n)))
                x = to_network(volume[idx[sl]].astype(np.float32))  # [B, m, A, B]
                if self.padding == "constant":
                    x[~inside[sl]] = -1.0
                x = torch.from_numpy(fit_inplane(x, self.resolution, -1.0)).to(self.device)
                bsz = x.shape[0]
                d = torch.as_tensor(np.asarray(delta[sl], dtype=np.float32), device=self.device)
                c = torch.full((bsz,), c_out, dtype=torch.int64, device=self.device)
                zz = z.expand(bsz, -1).to(self.device) if z is not None else None
                with ctx():
                    y = self.G(x, d, c, zz)
                y = from_network(y.float()[:, 0].cpu().numpy())
                out[sl] = restore_inplane(np.clip(y, 0.0, 1.0), (a, b), 0.0)
                if bar is not None:
                    bar.update(bsz)
        if bar is not None:
            bar.close()
        return out
