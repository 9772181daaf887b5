"""The Uni-COAL generator G (paper Sec. III-C/D, Fig. 3): encoder E, mapping networks M and N,
co-modulation, alias-free synthesizer D.

    v = N(c_1, delta)                               attribute code modulating every encoder layer
    w = M(l, c_1, delta)                            stochastic attribute representation
    feats, e = E(x_in; v)                           image-conditioned representation (eq. 1)
    s_j = A_j([w | e])                              co-modulation style of synthesis layer j (eq. 2)
    y = 0.25 * D(fourier(w) + feats[0], feats; s)   target slice, no tanh

E walks the alias-free schedule backwards (m slices at r x r, padded with the background -1 into
the margin -> 512 x 36 x 36), each layer a modulated 3x3 conv, leaky ReLU and filtered
downsampling; D walks it forwards from Fourier features, each layer a modulated conv and a leaky
ReLU wrapped between 2x up- and downsampling. E's map i is added to D's map i at the last map of
each size, just before the size changes (U-Net skips; indices 4, 6, 9, 12, sizes 52, 84, 148, 276
in the paper config), E's last map to D's Fourier-feature input, and the global
code ``e`` is a 3x3 conv (no clamp) on that whole map (36 x 36, margin included, as the authors'
``ReversedEncoder`` computes it; ``e_region="core"``: its 16 x 16 core), average-pooled to 4 x 4,
FC -> 1024 with dropout 0.5 during training. With ``alias_free_encoder/decoder=False`` the corresponding half
uses vanilla StyleGAN2 layers on the same channel table without margins (Table VI baseline).

Example:
    >>> cfg = UniCoalConfig.tiny()
    >>> G = Generator(cfg)
    >>> y = G(torch.zeros(2, 4, 64, 64), torch.tensor([0.0, 0.5]), torch.tensor([0, 2]))
    >>> y.shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from unicoal.models.config import UniCoalConfig
from unicoal.nn.layers import AliasFreeLayer, Conv2d, FullyConnected, VanillaLayer
from unicoal.nn.mapping import MappingNetwork
from unicoal.nn.schedule import LayerSpec
from unicoal.nn.shapes import check_shape

__all__ = ["Generator", "Encoder", "Synthesizer", "FourierFeatures", "check_generator_inputs", "skip_path_gain"]


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop or zero-pad a square map to ``size`` (margins are symmetric, so grids stay aligned)."""
    d = x.shape[-1] - size
    if d == 0:
        return x
    if d > 0:
        return x[..., d // 2: d // 2 + size, d // 2: d // 2 + size]
    return F.pad(x, [(-d) // 2, -d - (-d) // 2] * 2)


def _skip_indices(table: tuple[LayerSpec, ...], placement: str = "last") -> tuple[int, ...]:
    """Feature-map indices where E's maps are added to D's (U-Net skips).

    ``"last"`` (reference design, the authors' code): the LAST map of every size after the first,
    just before the size changes (paper config 4, 6, 9, 12; tiny 2, 4). There the map's cutoff is
    the highest of its sampling rate, so in-plane detail up to that cutoff reaches the next layer,
    whose upsampling filter is designed for it. ``"first"``: the first map of every new sampling
    rate (paper 3, 5, 7, 10), the placement before issue #15; its lower cutoff removes in-plane
    detail above about half of Nyquist from the skip path (kept as an ablation).
    """
    if placement == "last":
        n = len(table) - 1
        return tuple(t.index for t in table[1:n] if t.size != table[t.index + 1].size and t.size != table[0].size)
    if placement != "first":
        raise ValueError(f"skip placement must be 'last' or 'first', got {placement!r}")
    out, seen = [], {table[0].s}
    for t in table[:-1]:
        if t.s not in seen:
            seen.add(t.s)
            out.append(t.index)
    return tuple(out)


def check_generator_inputs(cfg: UniCoalConfig, x_in: torch.Tensor, delta: torch.Tensor, c_out: torch.Tensor,
                           z: torch.Tensor | None = None) -> int:
    """Validate G/D inputs against ``cfg``; returns the batch size."""
    r = cfg.img_resolution
    b = check_shape(x_in, [None, cfg.num_inputs, r, r], "x_in").shape[0]
    if b < 1:
        raise ValueError("x_in: empty batch")
    check_shape(delta, [b], "delta")
    check_shape(c_out, [b], "c_out")
    if c_out.dtype.is_floating_point or c_out.dtype == torch.bool:
        raise ValueError(f"c_out: expected integer modality indices, got dtype {c_out.dtype}")
    if b and (int(c_out.min()) < 0 or int(c_out.max()) >= cfg.num_modalities):
        raise ValueError(f"c_out: indices must lie in [0, {cfg.num_modalities}) for modalities "
                         f"{list(cfg.modalities)}, got {c_out.tolist()}")
    if z is not None:
        check_shape(z, [b, cfg.z_dim], "z")
    return b


class FourierFeatures(nn.Module):
    """StyleGAN3 synthesis input: ``channels`` sinusoids with random frequencies inside the disc of
    radius ``bandwidth`` (= f_c[0]), sampled on a ``size`` grid of rate ``sampling_rate``; an affine of
    ``w`` (initialised to the identity) rotates/translates them; ``transform`` is a user inverse
    transform (3 x 3) used to measure translation equivariance."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.channels, self.size, self.sampling_rate, self.bandwidth = channels, int(size), sampling_rate, bandwidth
        gen = torch.Generator().manual_seed(0x5EED)
        freqs = torch.randn([channels, 2], generator=gen)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels], generator=gen) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnected(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = w.shape[0]
        t = self.affine(w.float())
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).repeat(b, 1, 1)
        m_r[:, 0, 0], m_r[:, 0, 1], m_r[:, 1, 0], m_r[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        m_t = torch.eye(3, device=w.device).repeat(b, 1, 1)
        m_t[:, 0, 2], m_t[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        # Sample positions (pixel centres) in units where the core s x s grid spans [-0.5, 0.5].
        coords = torch.arange(self.size, device=w.device, dtype=torch.float32) + 0.5 - self.size / 2
        coords = coords / self.sampling_rate
        gy, gx = torch.meshgrid(coords, coords, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)  # [H, W, 2] (x, y)
        x = torch.einsum("hwk,bck->bhwc", grid, freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)  # [B, C, H, W], channels-last memory layout

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, size={self.size}, sampling_rate={self.sampling_rate:g}, "
                f"bandwidth={self.bandwidth:g}")


class Encoder(nn.Module):
    """Anti-aliasing encoder E (paper Sec. III-D1): the schedule walked backwards, modulated by v.

    Returns the feature maps ``{index: [B, C_i, size_i, size_i]}`` at the skip indices and index 0,
    and the global code ``e`` ``[B, e_dim]``.
    """

    def __init__(self, cfg: UniCoalConfig):
        super().__init__()
        self.cfg = cfg
        table = cfg.schedule
        n = cfg.num_layers
        self.alias_free = cfg.alias_free_encoder
        self.keep = set(_skip_indices(table, cfg.skip_placement)) | {0}
        # Alias-free: every map, the input slices included, carries the margin (size s + 2 margin;
        # the synthesizer's last two maps are r x r, the encoder's stay s + 2 margin). The input
        # slices are padded into the margin with the background value, so the border is not an
        # edge that the convolutions' zero padding (mid-grey in [-1, 1]) would invent.
        self.margin = cfg.margin_size if self.alias_free else 0
        table = tuple(dataclasses.replace(t, size=t.s + 2 * self.margin) for t in table) if self.alias_free else table
        image = LayerSpec(n, table[n].f_c, table[n].f_t, table[n].s, table[n].f_h,
                          cfg.img_resolution + 2 * self.margin, cfg.num_inputs, True)
        specs = [image] + [table[i] for i in range(n - 1, -1, -1)]
        self.layers = nn.ModuleList()
        for a, b in zip(specs[:-1], specs[1:]):
            if self.alias_free:
                layer = AliasFreeLayer(cfg.w_dim, a.channels, b.channels, a.size, b.size, a.s, b.s, a.f_c, b.f_c,
                                       a.f_h, b.f_h, conv_kernel=cfg.conv_kernel, filter_size=cfg.filter_size,
                                       lrelu_upsampling=cfg.encoder_lrelu_upsampling, conv_clamp=cfg.conv_clamp)
            else:
                layer = VanillaLayer(cfg.w_dim, a.channels, b.channels, resample=-2 if b.s < a.s else 1,
                                     conv_kernel=cfg.conv_kernel, conv_clamp=cfg.conv_clamp)
            self.layers.append(layer)
        self.out_indices = [b.index for b in specs[1:]]
        c0, s0 = table[0].channels, table[0].s
        self.core = s0
        self.e_conv = Conv2d(c0, c0, 3, activation="lrelu", conv_clamp=None)  # authors' e_16x16: no clamp
        self.e_fc = FullyConnected(c0 * cfg.e_pool ** 2, cfg.e_dim, activation="lrelu")
        self.e_dropout = nn.Dropout(cfg.e_dropout)

    def forward(self, x_in: torch.Tensor, v: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        x = F.pad(x_in, [self.margin] * 4, value=self.cfg.input_background) if self.margin else x_in
        feats: dict[int, torch.Tensor] = {}
        for index, layer in zip(self.out_indices, self.layers):
            x = layer(x, v)
            if index in self.keep:
                feats[index] = x
        e = self.e_conv(x if self.cfg.e_region == "full" else _fit(x, self.core))
        e = F.adaptive_avg_pool2d(e, self.cfg.e_pool).flatten(1)
        e = self.e_dropout(self.e_fc(e))
        return feats, e


class Synthesizer(nn.Module):
    """Anti-aliasing synthesizer D (paper Sec. III-D2), co-modulated by ``[w | e]``."""

    def __init__(self, cfg: UniCoalConfig):
        super().__init__()
        self.cfg = cfg
        table = cfg.schedule
        self.alias_free = cfg.alias_free_decoder
        self.skips = _skip_indices(table, cfg.skip_placement)
        style_dim = cfg.w_dim + cfg.e_dim
        t0 = table[0]
        self.input = FourierFeatures(cfg.w_dim, t0.channels, t0.size if self.alias_free else t0.s, t0.s, t0.f_c)
        self.layers = nn.ModuleList()
        self.sizes = []
        for idx in range(len(table)):
            a, b = table[max(idx - 1, 0)], table[idx]
            torgb = idx == len(table) - 1
            if self.alias_free:
                layer = AliasFreeLayer(style_dim, a.channels, b.channels, a.size, b.size, a.s, b.s, a.f_c, b.f_c,
                                       a.f_h, b.f_h, is_torgb=torgb, conv_kernel=cfg.conv_kernel,
                                       filter_size=cfg.filter_size, lrelu_upsampling=cfg.lrelu_upsampling,
                                       conv_clamp=cfg.conv_clamp)
                self.sizes.append(b.size)
            else:
                layer = VanillaLayer(style_dim, a.channels, b.channels, resample=2 if b.s > a.s else 1,
                                     is_torgb=torgb, conv_kernel=cfg.conv_kernel, conv_clamp=cfg.conv_clamp)
                self.sizes.append(b.s)
            self.layers.append(layer)

    def forward(self, w: torch.Tensor, e: torch.Tensor, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        style = torch.cat([w, e], dim=1)
        x = self.input(w).to(feats[0].dtype)
        x = x + _fit(feats[0], x.shape[-1])
        for idx, layer in enumerate(self.layers):
            x = layer(x, style)
            if idx in feats and idx in self.skips:
                x = x + _fit(feats[idx], x.shape[-1])
        return x * self.cfg.output_scale


def skip_path_gain(G: "Generator", rel_freq: float, index: int | None = None) -> float:
    """Gain of G's linearised skip path for an in-plane sinusoid of ``rel_freq`` x Nyquist.

    The path input slice -> encoder down to E's map ``index`` -> skip -> synthesizer layers
    ``index + 1 .. N`` -> output, with every convolution replaced by the identity (a centred
    delta kernel, same padding) and every leaky ReLU by the identity, i.e. exactly the resampling
    filters, paddings and crops of the real layers (``impl="ref"``). A cosine along x (constant
    along y) goes in; the returned gain is the amplitude of the same frequency in the central half
    of the output (least-squares fit), divided by the input amplitude. It bounds how much in-plane
    detail at that frequency the skip can carry from the source slices to the output, whatever
    the weights. ``index`` defaults to the highest-rate skip. Alias-free encoder and decoder only.
    """
    from unicoal.nn.activation import filtered_lrelu

    enc, syn = G.encoder, G.synthesis
    if not (enc.alias_free and syn.alias_free):
        raise ValueError("skip_path_gain needs the alias-free encoder and synthesizer")
    if not 0 < rel_freq < 1:
        raise ValueError(f"rel_freq must lie in (0, 1), got {rel_freq}")
    index = max(syn.skips) if index is None else index
    if index not in syn.skips:
        raise ValueError(f"index {index} is not a skip index {syn.skips}")
    r = G.cfg.img_resolution
    f = 0.5 * rel_freq  # cycles per output pixel
    xs = torch.arange(r, dtype=torch.float64) + 0.5
    x = torch.cos(2 * math.pi * f * xs).reshape(1, 1, 1, r).expand(1, 1, r, r).contiguous()

    def linear(layer: AliasFreeLayer, t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, [(layer.conv_kernel - 1) // 2] * 4)  # the full conv of an identity kernel
        fu = None if layer.up_filter is None else layer.up_filter.double()
        fd = None if layer.down_filter is None else layer.down_filter.double()
        return filtered_lrelu(t, fu, fd, None, up=layer.up_factor, down=layer.down_factor, padding=layer.padding,
                              gain=1.0, slope=1.0, clamp=None, impl="ref")

    with torch.no_grad():
        x = F.pad(x, [enc.margin] * 4)  # zero = background of this linear probe
        for out_index, layer in zip(enc.out_indices, enc.layers):
            x = linear(layer, x)
            if out_index == index:
                break
        for layer in syn.layers[index + 1:]:
            x = linear(layer, x)
    y = x[0, 0, r // 4: r - r // 4, r // 4: r - r // 4].mean(dim=0)
    pos = xs[r // 4: r - r // 4]
    basis = torch.stack([torch.cos(2 * math.pi * f * pos), torch.sin(2 * math.pi * f * pos), torch.ones_like(pos)], 1)
    coef = torch.linalg.lstsq(basis, y.unsqueeze(1)).solution[:, 0]
    return float(coef[:2].norm())


class Generator(nn.Module):
    """Uni-COAL generator ``G(x_in, delta, c_out, z=None) -> [B, 1, r, r]``.

    Args (forward):
        x_in: ``[B, m, r, r]`` source slices n-(m/2-1) .. n+m/2 in [-1, 1].
        delta: ``[B]`` float relative position of the target slice in [0, 1).
        c_out: ``[B]`` long index of the target modality in ``cfg.modalities``.
        z: ``[B, z_dim]`` latent l, or ``None`` to draw it from N(0, I).
    """

    def __init__(self, cfg: UniCoalConfig):
        super().__init__()
        if not isinstance(cfg, UniCoalConfig):
            raise TypeError(f"cfg must be a UniCoalConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.mapping = MappingNetwork(cfg.z_dim, cfg.num_modalities, cfg.embed_dim, cfg.w_dim, cfg.mapping_layers,
                                      cfg.mapping_lr_multiplier, delta_bias_init=cfg.delta_bias_init)  # M
        self.attr_mapping = MappingNetwork(0, cfg.num_modalities, cfg.embed_dim, cfg.w_dim, cfg.mapping_layers,
                                           cfg.mapping_lr_multiplier, delta_bias_init=cfg.delta_bias_init)  # N
        self.encoder = Encoder(cfg)                                                     # E
        self.synthesis = Synthesizer(cfg)                                               # D

    def forward(self, x_in: torch.Tensor, delta: torch.Tensor, c_out: torch.Tensor,
                z: torch.Tensor | None = None) -> torch.Tensor:
        b = check_generator_inputs(self.cfg, x_in, delta, c_out, z)
        if z is None:
            z = torch.randn(b, self.cfg.z_dim, device=x_in.device)
        w = self.mapping(c_out, delta, z)
        v = self.attr_mapping(c_out, delta)
        feats, e = self.encoder(x_in.contiguous(memory_format=torch.channels_last), v)  # oneDNN's fast layout
        y = self.synthesis(w, e, feats)
        r = self.cfg.img_resolution
        return check_shape(y.contiguous(), [b, 1, r, r], "G output")

    def extra_repr(self) -> str:
        return (f"img_resolution={self.cfg.img_resolution}, num_inputs={self.cfg.num_inputs}, "
                f"modalities={list(self.cfg.modalities)}, alias_free_encoder={self.cfg.alias_free_encoder}, "
                f"alias_free_decoder={self.cfg.alias_free_decoder}")
