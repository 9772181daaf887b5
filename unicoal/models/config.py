"""Uni-COAL network configuration: one frozen dataclass, two presets (paper Sec. III, IV-B).

``UniCoalConfig.paper()`` is the published IXI unified model (256 x 256, m = 4 input slices,
3 target modalities, about 59 M generator / 24.6 M discriminator parameters);
``UniCoalConfig.tiny()`` is a 64 x 64 CPU-sized model for tests and ``-profile test``.
Ablations of Table VI and the Table I variants are switches:

* ``alias_free_encoder`` / ``alias_free_decoder``: False = vanilla StyleGAN2/CoModGAN layers
  (the "baseline" row of Table VI uses both False);
* ``projection``: False = discriminator without the projection (dot product) of the attributes;
* ``num_inputs``: 1 = Uni-COAL_one (Table I), 4 = Uni-COAL_multi (m = 4 slices n-1 .. n+2);
* ``skip_placement``: ``"last"`` (reference) adds E's map to D's last map of each size, ``"first"``
  to D's first map of each new sampling rate (the placement before issue #15, an ablation);
* ``pad_mode``: how source slices outside the volume are filled by the data loader
  (``"replicate"``, the project default, or ``"constant"`` = -1 as in the authors' loader);
* ``e_region``: ``"full"`` (default, the authors' ``ReversedEncoder``) computes the global code e
  from E's whole last map, margin included (36 x 36 in the paper config); ``"core"`` from its
  central s x s core (16 x 16; the design before issue #20, an option);
* ``delta_bias_init``: initial bias of the delta embedding FC of every mapping network; 0 (default)
  as the authors' ``FullyConnectedLayer``; 1 makes the normalised embedding vary continuously with
  delta from the first step (our design before issue #20, an option).

Example:
    >>> cfg = dataclasses.replace(UniCoalConfig.paper(), alias_free_encoder=False)
    >>> UniCoalConfig.from_dict(cfg.to_dict()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from unicoal.nn.schedule import LayerSpec, alias_free_schedule

__all__ = ["UniCoalConfig", "CANONICAL_MODALITIES"]

CANONICAL_MODALITIES = ("T1", "T2", "PD", "FLAIR", "T1CE")
PAD_MODES = ("replicate", "constant")
SKIP_PLACEMENTS = ("last", "first")
E_REGIONS = ("full", "core")


@dataclass(frozen=True)
class UniCoalConfig:
    """All sizes of the Uni-COAL generator and discriminator. Paper values are the defaults."""

    # Data interface.
    img_resolution: int = 256                 # r_N: slices are img_resolution x img_resolution
    num_inputs: int = 4                       # m: source slices n-(m/2-1) .. n+m/2
    modalities: tuple[str, ...] = ("T1", "T2", "PD")  # target modality c_1 is an index into this
    pad_mode: str = "replicate"               # out-of-volume source slices: replicate | constant (-1)
    # Mapping networks M (z, c, delta -> w) and N (c, delta -> v).
    z_dim: int = 64                           # latent l
    embed_dim: int = 64                       # size of the c and delta embeddings
    w_dim: int = 512
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    delta_bias_init: float = 0.0              # authors' FullyConnectedLayer default; 1.0 = continuous in delta at init
    # Alias-free schedule (StyleGAN3-T formulas, see unicoal.nn.schedule).
    num_layers: int = 14
    num_critical: int = 2
    first_cutoff: float = 2.0
    first_stopband: float = 2 ** 2.1
    last_stopband_rel: float = 2 ** 0.3
    margin_size: int = 10
    channel_base: int = 16384
    channel_max: int = 512
    conv_kernel: int = 3
    filter_size: int = 6                      # taps per unit of up/down factor
    lrelu_upsampling: int = 2                 # synthesizer: leaky ReLU at 2x the sampling rate
    encoder_lrelu_upsampling: int = 1         # encoder: 1 = activation applied directly (paper), 2 = filtered
    conv_clamp: float | None = 256.0
    output_scale: float = 0.25                # no tanh
    skip_placement: str = "last"              # E -> D skips at the last map of each size (reference) | "first" (ablation)
    input_background: float = -1.0            # value the input slices are padded with into the encoder's margin
    # Global code e of the encoder.
    e_dim: int = 1024
    e_pool: int = 4                           # final map resampled to e_pool x e_pool
    e_dropout: float = 0.5
    e_region: str = "full"                    # e from E's whole last map (authors) | "core": its s x s centre
    # Ablations (Table VI).
    alias_free_encoder: bool = True
    alias_free_decoder: bool = True
    projection: bool = True
    # Discriminator.
    d_channel_base: int = 16384
    d_channel_max: int = 512
    d_mbstd_group: int = 16
    d_mbstd_channels: int = 1
    d_cmap_dim: int = 512
    d_mapping_layers: int = 2

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two >= 16, got {r}")
        if self.num_inputs < 1:
            raise ValueError(f"num_inputs must be >= 1, got {self.num_inputs}")
        object.__setattr__(self, "modalities", tuple(self.modalities))
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be a non-empty list of distinct names, got {self.modalities}")
        unknown = [m for m in self.modalities if m not in CANONICAL_MODALITIES]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; expected names from {CANONICAL_MODALITIES}")
        if self.skip_placement not in SKIP_PLACEMENTS:
            raise ValueError(f"skip_placement must be one of {SKIP_PLACEMENTS}, got {self.skip_placement!r}")
        if self.e_region not in E_REGIONS:
            raise ValueError(f"e_region must be one of {E_REGIONS}, got {self.e_region!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        for name in ("z_dim", "embed_dim", "w_dim", "mapping_layers", "e_dim", "e_pool", "channel_base",
                     "channel_max", "d_channel_base", "d_channel_max", "d_mbstd_group", "d_cmap_dim",
                     "d_mapping_layers", "filter_size", "conv_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lrelu_upsampling not in (1, 2, 4) or self.encoder_lrelu_upsampling not in (1, 2, 4):
            raise ValueError("lrelu_upsampling and encoder_lrelu_upsampling must be 1, 2 or 4, got "
                             f"{self.lrelu_upsampling}, {self.encoder_lrelu_upsampling}")
        if not 0 <= self.e_dropout < 1:
            raise ValueError(f"e_dropout must lie in [0, 1), got {self.e_dropout}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        table = self.schedule  # validates the schedule numbers
        if table[0].s % self.e_pool:
            raise ValueError(f"e_pool {self.e_pool} must divide the first sampling rate {table[0].s}")

    # ----------------------------------------------------------------------------------------
    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def schedule(self) -> tuple[LayerSpec, ...]:
        """The alias-free per-layer table (f_c, f_t, s, f_h, size, channels)."""
        return alias_free_schedule(
            img_resolution=self.img_resolution, img_channels=1, num_layers=self.num_layers,
            num_critical=self.num_critical, first_cutoff=self.first_cutoff, first_stopband=self.first_stopband,
            last_stopband_rel=self.last_stopband_rel, margin_size=self.margin_size,
            channel_base=self.channel_base, channel_max=self.channel_max)

    def modality_index(self, name: str) -> int:
        """Index of modality ``name`` in :attr:`modalities` (the c_1 the networks take)."""
        if name not in self.modalities:
            raise ValueError(f"unknown target modality {name!r}; this model knows {list(self.modalities)}")
        return self.modalities.index(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (for checkpoints and run directories)."""
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UniCoalConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (a checkpoint from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown UniCoalConfig keys {unknown}")
        d = dict(d)
        if "modalities" in d:
            d["modalities"] = tuple(d["modalities"])
        return cls(**d)

    # ----------------------------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides: Any) -> "UniCoalConfig":
        """The published IXI unified model (reference-facts.md; about 59 M generator parameters)."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> "UniCoalConfig":
        """64 x 64, 6 layers, at most 32 channels: CPU-friendly, for tests and ``-profile test``."""
        base = dict(img_resolution=64, z_dim=16, embed_dim=16, w_dim=64, num_layers=6, num_critical=2,
                    margin_size=8, channel_base=1024, channel_max=32, e_dim=64, d_channel_base=512,
                    d_channel_max=64, d_mbstd_group=4, d_cmap_dim=64)
        base.update(overrides)
        return cls(**base)
