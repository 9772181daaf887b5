"""ArSSR: arbitrary-scale super-resolution with an implicit voxel function (baseline of Table IV).

Reference: Q. Wu, Y. Li, Y. Sun, Y. Zhou, H. Wei, J. Yu, Y. Zhang, "An Arbitrary Scale
Super-Resolution Approach for 3D MR Images via Implicit Neural Representation", IEEE Journal of
Biomedical and Health Informatics 27(2):1004-1015, 2023 (the Uni-COAL paper's [18]). Authors'
code: github.com/iwuqing/ArSSR (read for the layer table, nothing copied).

What is the paper's (and the authors' code's):

* a 3D convolutional encoder turns the low-resolution (LR) image into a feature map of
  ``feature_dim`` channels on the LR grid; the published model uses a residual dense network
  (RDN: 3x3x3 shallow features twice, ``blocks`` residual dense blocks of ``layers`` densely
  connected 3x3x3 conv + ReLU layers with a 1x1x1 local fusion and local residual, global
  1x1x1 + 3x3x3 fusion of all blocks with a global residual, a 3x3x3 output conv), 64
  features, growth 64, 8 blocks of 3 layers, ``feature_dim`` 128;
* the implicit voxel function: for every high-resolution (HR) query coordinate the feature
  vector is interpolated trilinearly from the feature map (``grid_sample``, coordinates
  normalised to [-1, 1] over the LR patch, voxel centres at ``(2 i + 1) / n - 1``; ``grid_sample``'s
  default zero padding, so a query beyond the outermost voxel centres mixes in zero features),
  concatenated with the coordinate and decoded by an MLP (published: two stages of 4 ReLU
  layers of width 256, the first stage's output added to its input before the second: "depth
  8");
* one model for every scale: training draws the scale per item continuously,
  ``round(uniform(2, 4.04), 1)`` (``data.py`` ``ImgTrain``), and decodes ``K = 8000`` voxels
  drawn at random (without replacement) from the HR patch (``-ss 8000`` in ``train.py``); L1
  loss, Adam lr 1e-4, halved every 200 of 2500 epochs.

The Uni-COAL authors' repository (zhiyuns/UniCOAL) has no ArSSR model; the paper's ArSSR
numbers follow the authors' code.

What is ours (the Uni-COAL paper's thick-slice setting):

* only the slice axis is low-resolution: an LR patch is ``[B, 1, L, S, S]`` (``L`` thick
  slices, full in-plane resolution), and HR queries sit at the in-plane voxel centres of the
  patch and, along the slice axis, at the target slices' continuous positions
  ``u = n + delta`` (:mod:`unicoal.geometry`) relative to the patch's first LR slice, so
  any thickness ratio, e.g. the non-integer 5.33x, is one forward pass of the same model;
* training decodes ``query_voxels`` (8000) random voxels of the HR slices inside the LR window
  (:class:`unicoal.predictors.implicit.ImplicitPatchDataset`); the thickness ratio is drawn as
  the authors draw their scale, ``round(uniform(lo, hi + 0.04), 1)``, over the range of the
  data config's ratios (Table IV: 2 to 6; theirs 2 to 4); ``continuous_scale: false`` draws
  from the listed ratios only;
* synthesis (:class:`unicoal.predictors.implicit.ImplicitPredictor`) encodes windows of ``L``
  LR slices over the whole plane (in-plane coordinates normalised over the plane, as the
  authors' test script does over the whole image) and blends overlapping windows along the
  slice axis;
* intensities in [-1, 1] like every network of this project;
* call convention of docs/training.md with ArSSR's queries in ``delta``: whole planes,
  ``G(x_in [B, 1, L, S, S], u [B, Q], c_out=None, z=None) -> [B, 1, Q, S, S]`` (synthesis), or
  voxels, ``G(x_in, coords [B, K, 3]) -> [B, 1, K]`` with ``coords = (u, row, col)`` in voxel
  units of the patch (training).

Example:
    >>> cfg = ArssrConfig.tiny()
    >>> G = ArssrNet(cfg)
    >>> x = torch.zeros(2, 1, cfg.lr_slices, cfg.img_resolution, cfg.img_resolution)
    >>> u = torch.tensor([[0.25, 1.75, 2.5, 3.0]] * 2)
    >>> G(x, u).shape
    torch.Size([2, 1, 4, 16, 16])
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ArssrConfig", "RdnEncoder3d", "ImplicitDecoder", "ArssrNet", "arssr_config", "build_arssr", "normalized_coords"]

_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")


@dataclass(frozen=True)
class ArssrConfig:
    """Sizes of ArSSR (published values are the defaults).

    Attributes:
        modalities: modalities it may be applied to (SR: the output is the input's modality).
        lr_slices: ``L``, LR slices per patch (training and sliding-window inference).
        img_resolution: ``S``, in-plane patch side.
        query_voxels: ``K``, random HR voxels decoded per training patch (authors: 8000).
        continuous_scale: draw the training ratio continuously over the ratios' range (authors).
        features / growth / blocks / layers: RDN encoder sizes.
        feature_dim: channels of the encoder's output (the implicit function's feature vector).
        decoder_depth / decoder_width: MLP layers in total (two equal stages) and their width.
    """

    modalities: tuple[str, ...] = ("T1", "T2", "PD")
    num_inputs: int = 1
    pad_mode: str = "replicate"  # slices outside the volume: replicate | constant (-1); set by data.padding
    lr_slices: int = 10
    img_resolution: int = 40
    query_voxels: int = 8000
    continuous_scale: bool = True
    features: int = 64
    growth: int = 64
    blocks: int = 8
    layers: int = 3
    feature_dim: int = 128
    decoder_depth: int = 8
    decoder_width: int = 256

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(str(m) for m in self.modalities))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities) or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be distinct names from {', '.join(_MODALITIES)}, got {list(self.modalities)}")
        if self.pad_mode not in ("replicate", "constant"):
            raise ValueError(f"pad_mode must be 'replicate' or 'constant', got {self.pad_mode!r}")
        if int(self.num_inputs) != 1:
            raise ValueError(f"ArSSR reads one LR volume: num_inputs must be 1, got {self.num_inputs}")
        for name in ("lr_slices", "img_resolution", "query_voxels", "features", "growth", "blocks", "layers", "feature_dim", "decoder_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_slices < 2:
            raise ValueError(f"lr_slices must be >= 2 (interpolation between LR slices), got {self.lr_slices}")
        if self.decoder_depth < 2 or self.decoder_depth % 2:
            raise ValueError(f"decoder_depth must be an even number >= 2 (two equal stages), got {self.decoder_depth}")

    @property
    def z_dim(self) -> int:
        return 0

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        """LR patch ``(L, S, S)``."""
        return (int(self.lr_slices), int(self.img_resolution), int(self.img_resolution))

    @classmethod
    def paper(cls, **kw) -> "ArssrConfig":
        """The published ArSSR-RDN (feature_dim 128, decoder 8 x 256)."""
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "ArssrConfig":
        """CPU-sized ArSSR (6 x 16 x 16 LR patches, 512 query voxels, RDN 2 blocks of 2 layers, 8
        channels, MLP 4 x 32)."""
        base = dict(lr_slices=6, img_resolution=16, query_voxels=512, features=8, growth=8, blocks=2, layers=2,
                    feature_dim=8, decoder_depth=4, decoder_width=32)
        return cls(**{**base, **kw})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["modalities"] = list(d["modalities"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArssrConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ArSSR model key(s) {sorted(unknown)} (allowed: preset, {', '.join(sorted(names))})")
        return cls(**d)


def arssr_config(d: dict | None) -> ArssrConfig:
    """``model`` section -> :class:`ArssrConfig` (``preset: paper|tiny`` plus field overrides)."""
    d = dict(d or {})
    preset = d.pop("preset", "paper")
    if preset not in ("paper", "tiny"):
        raise ValueError(f"model.preset must be 'paper' or 'tiny', got {preset!r}")
    base = ArssrConfig.paper() if preset == "paper" else ArssrConfig.tiny()
    return ArssrConfig.from_dict({**base.to_dict(), **d}) if d else base


def build_arssr(cfg: ArssrConfig, discriminator: bool = True):
    """ArSSR has no discriminator (L1 only): ``(ArssrNet, None)``."""
    return ArssrNet(cfg), None


def normalized_coords(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Voxel index (continuous) -> [-1, 1] over ``size`` voxels, voxel centres at ``(2 i + 1) / size - 1``
    (``grid_sample(align_corners=False)``)."""
    return (2.0 * idx + 1.0) / float(size) - 1.0


# --------------------------------------------------------------------------------------------
class _DenseBlock(nn.Module):
    """Residual dense block: ``layers`` x (3x3x3 conv + ReLU, concatenated), 1x1x1 fusion, residual."""

    def __init__(self, channels: int, growth: int, layers: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv3d(channels + i * growth, growth, 3, padding=1) for i in range(layers))
        self.fuse = nn.Conv3d(channels + layers * growth, channels, 1)

    def forward(self, x):
        feats = x
        for conv in self.convs:
            feats = torch.cat([feats, F.relu(conv(feats))], dim=1)
        return x + self.fuse(feats)


class RdnEncoder3d(nn.Module):
    """ArSSR's RDN encoder: ``[B, 1, L, S, S] -> [B, feature_dim, L, S, S]`` (same grid)."""

    def __init__(self, cfg: ArssrConfig):
        super().__init__()
        f, g = cfg.features, cfg.growth
        self.sfe1 = nn.Conv3d(1, f, 3, padding=1)
        self.sfe2 = nn.Conv3d(f, g, 3, padding=1)
        self.blocks = nn.ModuleList(_DenseBlock(g, g, cfg.layers) for _ in range(cfg.blocks))
        self.gff = nn.Sequential(nn.Conv3d(g * cfg.blocks, f, 1), nn.Conv3d(f, f, 3, padding=1))
        self.out = nn.Conv3d(f, cfg.feature_dim, 3, padding=1)

    def forward(self, x):
        s1 = self.sfe1(x)
        h = self.sfe2(s1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return self.out(self.gff(torch.cat(outs, dim=1)) + s1)


class ImplicitDecoder(nn.Module):
    """ArSSR's two-stage MLP: ``h = stage1(v)``, ``out = stage2(v + h)`` (``v`` = feature + coordinate)."""

    def __init__(self, in_dim: int, depth: int, width: int):
        super().__init__()
        half = depth // 2

        def stage(out_dim: int, final_relu: bool) -> nn.Sequential:
            dims = [in_dim] + [width] * (half - 1) + [out_dim]
            mods: list[nn.Module] = []
            for i in range(half):
                mods.append(nn.Linear(dims[i], dims[i + 1]))
                if i < half - 1 or final_relu:
                    mods.append(nn.ReLU())
            return nn.Sequential(*mods)

        # the authors' code ends both stages with a ReLU; a ReLU on the intensity cannot produce
        # the negative half of our [-1, 1] range, so the last layer is linear here
        self.stage1 = stage(in_dim, True)
        self.stage2 = stage(1, False)

    def forward(self, v):
        return self.stage2(v + self.stage1(v))


class ArssrNet(nn.Module):
    """Encoder + implicit decoder: ``G(x_in [B, 1, L, S, S], u [B, Q], c_out=None, z=None) -> [B, 1, Q, S, S]``.

    ``u`` are the target slices' positions in LR slice-index units relative to the patch's first
    slice (``u = n + delta - first``); features are sampled with ``grid_sample``'s zero padding
    (authors). :meth:`encode` and :meth:`decode` (whole planes) / :meth:`decode_points` (voxels)
    split the two halves for patch-wise inference.
    """

    def __init__(self, cfg: ArssrConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = RdnEncoder3d(cfg)
        self.decoder = ImplicitDecoder(cfg.feature_dim + 3, cfg.decoder_depth, cfg.decoder_width)

    def encode(self, x_in: torch.Tensor) -> torch.Tensor:
        if x_in.ndim != 5 or x_in.shape[1] != 1:
            raise ValueError(f"x_in must be [B, 1, L, H, W], got {tuple(x_in.shape)}")
        return self.encoder(x_in)

    def decode(self, feats: torch.Tensor, u: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """Decode feature maps ``[B, C, L, H, W]`` at slice positions ``u [B, Q]`` -> ``[B, 1, Q, H, W]``
        (``chunk``: at most that many query slices per MLP pass, to bound memory)."""
        b, c, L, h, w = feats.shape
        if u.ndim != 2 or u.shape[0] != b:
            raise ValueError(f"u must be [B, Q] with B = {b}, got {tuple(u.shape)}")
        q = u.shape[1]
        step = q if chunk is None else max(1, int(chunk))
        dev, dt = feats.device, feats.dtype
        ys = normalized_coords(torch.arange(h, device=dev, dtype=dt), h)
        xs = normalized_coords(torch.arange(w, device=dev, dtype=dt), w)
        outs = []
        for s in range(0, q, step):
            uz = normalized_coords(u[:, s:s + step].to(dev, dt), L)  # [B, q]
            qq = uz.shape[1]
            grid = torch.stack(torch.broadcast_tensors(xs.view(1, 1, 1, w), ys.view(1, 1, h, 1), uz.view(b, qq, 1, 1)), dim=-1)  # [B, q, H, W, 3] (x, y, z)
            outs.append(self._query(feats, grid).permute(0, 4, 1, 2, 3))  # [B, 1, q, H, W]
        return torch.cat(outs, dim=2)

    def decode_points(self, feats: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Decode feature maps ``[B, C, L, H, W]`` at voxel coordinates ``coords [B, K, 3]`` =
        ``(u, row, col)`` in voxel units of the patch -> ``[B, 1, K]`` (the authors' training)."""
        b, c, L, h, w = feats.shape
        if coords.ndim != 3 or coords.shape[0] != b or coords.shape[-1] != 3:
            raise ValueError(f"coords must be [B, K, 3] with B = {b}, got {tuple(coords.shape)}")
        coords = coords.to(feats.device, feats.dtype)
        zyx = torch.stack([normalized_coords(coords[..., i], n) for i, n in enumerate((L, h, w))], dim=-1)  # [B, K, 3]
        return self._query(feats, zyx.flip(-1)[:, :, None, None]).reshape(b, 1, -1)  # grid [B, K, 1, 1, (x, y, z)]

    def _query(self, feats, grid):
        """MLP of [trilinear feature | (z, y, x)] at ``grid [B, ..., 3]`` (x, y, z in [-1, 1]) -> ``[B, ..., 1]``."""
        v = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # [B, C, ...]
        v = torch.cat([v.movedim(1, -1), grid.flip(-1)], dim=-1)  # feature | (z, y, x)
        return self.decoder(v)

    def forward(self, x_in, delta, c_out=None, z=None):
        """``delta`` [B, Q]: whole planes at slice positions -> [B, 1, Q, S, S]; [B, K, 3]: voxels -> [B, 1, K]."""
        feats = self.encode(x_in)
        return self.decode_points(feats, delta) if delta.ndim == 3 else self.decode(feats, delta)
