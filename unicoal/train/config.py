"""Training configuration: typed frozen dataclasses loaded from YAML (paper Sec. III-G, IV-B).

A YAML file has the sections ``method``, ``parity``, ``model``, ``data``, ``loss``, ``optim``
and ``run`` (see ``unicoal/configs/*.yaml``). ``base: NAME`` inherits a packaged config
(``paper``, ``tiny`` ...) or a path, merged key by key. Precedence, lowest first: dataclass
defaults < parity preset < base config < this file < command-line overrides.

``parity: paper`` (default) follows the paper: blur sigma 2 px fading over 100k images, slice
profile ``rect`` (filter, then downsample), replicate padding. ``parity: official`` follows the
authors' published configuration: blur sigma 10 px over 200k images, slice selection
(``select``) and constant -1 padding of slices outside the volume. For the baselines, each
method's packaged config is its original authors' recipe; ``parity: official`` also applies
:data:`PARITY_METHODS`, the Uni-COAL authors' reimplementation of that baseline (the source of
the paper's baseline numbers; github.com/zhiyuns/UniCOAL ``models/*_model.py``), merged over the
method's config (docs/fidelity.md lists both).

The model section is method-specific (``preset: paper|tiny`` plus field overrides for
Uni-COAL); the trainer resolves it with the method's ``model_config`` and copies the model's
resolution, input count and modalities into the data section, so they cannot disagree.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

from unicoal.data import DataConfig
from unicoal.errors import InputError
from unicoal.pretrained import fallback_weights  # noqa: F401  (re-exported: what a config trains without)

__all__ = ["LossConfig", "OptimConfig", "RunConfig", "TrainConfig", "PARITY", "PARITY_METHODS", "UPDATE_ORDERS", "load_config", "resolve_model", "packaged_configs", "deep_merge", "fallback_weights"]

PARITY: dict[str, dict] = {
    "paper": {"loss": {"blur_sigma": 2.0, "blur_fade_kimg": 100.0}, "data": {"profile": "rect", "padding": "replicate"}},
    "official": {"loss": {"blur_sigma": 10.0, "blur_fade_kimg": 200.0}, "data": {"profile": "select", "padding": "constant"}},
}


#: ``optim.update_order``: how one optimiser step orders the G and D updates
UPDATE_ORDERS: dict[str, str] = {
    # G step, then a D step on a fresh forward of the updated G (StyleGAN2-ADA's phase order)
    "g_then_d": "G update, then D update on a new forward of the updated G",
    # the pix2pix code base (pix2pix, pGAN, ResViT, ProvoGAN): one forward of G; D steps on its
    # detached output, then G steps on the same output through the updated D
    "d_then_g": "one forward of G; D update, then G update through the updated D",
    # the Uni-COAL authors' unicoal_model.optimize_parameters: D update on one forward of G,
    # then G update on a second forward
    "d_then_g_refresh": "D update, then G update on a second forward of G",
}


#: the Uni-COAL authors' reimplementations (``parity: official``), merged after the method's own
#: config and before command-line overrides. Their Pix2PixModel (which the ResViT, ProvoGAN and
#: AutoGAN models extend) trains with the cross-entropy GAN loss + 100 x L1, Adam lr 2e-4, beta1
#: 0.5, batch 32, 50 + 50 epochs (configs/ixi/multitask/base.yml), D before G.
PARITY_METHODS: dict[str, dict[str, dict]] = {
    "paper": {},
    "official": {
        "pix2pix": {"optim": {"batch_size": 32, "epochs": 100}},
        # Pix2PixModel's ngf = ndf = 64 (modify_commandline_options), one stage per run
        "provogan": {"model": {"ngf": 64, "ndf": 64}, "loss": {"gan": "vanilla"}, "optim": {"batch_size": 32}},
        # one run from scratch (no pre_trained_resnet / pre_trained_trans): transformer on from step 0
        "resvit": {"model": {"pretrain_steps": 0, "finetune_lr": None}, "loss": {"gan": "vanilla"}, "optim": {"batch_size": 32, "epochs": 100}},
        # AutoGANModel(Pix2PixModel): pix2pix losses, no k-space channel, no augmentation
        "autogan": {"model": {"kspace": False}, "data": {"augment": []},
                    "loss": {"l1_weight": 100, "mse_weight": 0, "style_weight": 0, "tv_weight": 0, "adversarial_weight": 1.0},
                    "optim": {"batch_size": 32, "epochs": 100, "lr_g": 2.0e-4, "lr_d": 2.0e-4, "betas": [0.5, 0.999], "decay_start": 0.5}},
        # 3D (docs/fidelity.md): scgan_model.py (L1 + GAN only, D first, Adam weight_decay 1e-3 = our L2
        # terms), dcsrn.py (3x3x3 tail, residual, MSE), synthsr/ (pytorch-3dunet UNet3D, no norm, no
        # flip); configs/defaults.py: lr 2e-4, beta1 0.5, linear decay over the second half
        "scgan": {"model": {"feature_matching_weight": 0, "rmse_weight": 0}, "loss": {"gan": "vanilla", "l1_weight": 100},
                  "optim": {"lr_g": 2.0e-4, "lr_d": 2.0e-4, "decay_start": 0.5, "update_order": "d_then_g"}},
        "dcsrn": {"model": {"tail_kernel": 3, "residual": True}, "loss": {"l1_weight": 0, "mse_weight": 1},
                  "optim": {"lr_g": 2.0e-4, "betas": [0.5, 0.999], "decay_start": 0.5}},
        "deepresolve": {"optim": {"lr_g": 2.0e-4, "betas": [0.5, 0.999], "decay_start": 0.5}},
        "synthsr": {"model": {"batch_norm": False, "flip_axis": None, "pad_multiple": None, "pad_centred": False},
                    "optim": {"lr_g": 2.0e-4, "betas": [0.5, 0.999], "decay_start": 0.5}},
    },
}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class LossConfig:
    """Eq. 7-8: L_G = L_adv + l1_weight * L_pix + sam_weight * L_SAM; D: non-saturating + R1."""

    r1_gamma: float = 10.0
    r1_interval: int = 1  # lazy R1: every N D steps, scaled by N (1 = every step, as published)
    l1_weight: float = 80.0
    sam_weight: float = 100.0  # 0 disables the SAM loss (ablation of Table VI)
    sam_encoder: str = "litemedsam"
    sam_checkpoint: str | None = None
    blur_sigma: float = 2.0  # px, fading linearly to 0 over blur_fade_kimg thousand images
    blur_fade_kimg: float = 100.0
    adversarial: bool = True  # False: pixel (+SAM) losses only, no discriminator
    d_sources_blur_r1: bool = True  # blur and R1 cover the source slices too (authors' code); False: target slice only
    # options of the baselines (unicoal.train.losses); the defaults are Uni-COAL's losses
    gan: str = "nonsaturating"  # nonsaturating | vanilla (pix2pix BCE, D halved) | lsgan (least squares, D halved)
    adversarial_weight: float = 1.0  # weight of G's adversarial term (AutoGAN-Synthesizer: 1e-4); D's loss is unweighted
    perceptual_weight: float = 0.0  # pGAN: 100 x L1 of frozen-network features (0 = off)
    perceptual_network: str = "vgg16"  # vgg16 (needs perceptual_checkpoint, else LiteMedSAM is used and logged) | litemedsam
    perceptual_checkpoint: str | None = None  # torchvision VGG16 ImageNet weights (vgg16-397923af.pth)
    # AutoGAN-Synthesizer's content loss, on slices mapped to [0, 1] as the authors' images:
    # mse_weight x MSE + style_weight x Gram-matrix style loss over four VGG16 layers (its network
    # and checkpoint: perceptual_network / perceptual_checkpoint) + tv_weight x total variation
    mse_weight: float = 0.0
    style_weight: float = 0.0
    tv_weight: float = 0.0

    def __post_init__(self):
        from unicoal.train.losses import GAN_LOSSES

        _check(self.gan in GAN_LOSSES, f"loss.gan must be one of {', '.join(GAN_LOSSES)}, got {self.gan!r}")
        _check(self.perceptual_weight >= 0 and self.adversarial_weight >= 0, f"loss.perceptual_weight and adversarial_weight must be >= 0, got {self.perceptual_weight}, {self.adversarial_weight}")
        _check(min(self.mse_weight, self.style_weight, self.tv_weight) >= 0, f"loss.mse_weight, style_weight and tv_weight must be >= 0, got {self.mse_weight}, {self.style_weight}, {self.tv_weight}")
        _check(self.perceptual_network in ("vgg16", "litemedsam"), f"loss.perceptual_network must be vgg16 or litemedsam, got {self.perceptual_network!r}")
        _check(self.r1_gamma >= 0, f"loss.r1_gamma must be >= 0, got {self.r1_gamma}")
        _check(int(self.r1_interval) >= 1, f"loss.r1_interval must be >= 1, got {self.r1_interval}")
        _check(self.l1_weight >= 0 and self.sam_weight >= 0, "loss weights must be >= 0")
        _check(self.blur_sigma >= 0 and self.blur_fade_kimg >= 0, "loss.blur_sigma and blur_fade_kimg must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """Adam (betas 0, 0.99; eps 1e-8), lr 0.0025 / 0.002, constant then linear decay to 0."""

    batch_size: int = 16
    epochs: float = 100.0
    total_steps: int | None = None  # schedule horizon; default epochs * steps per epoch
    lr_g: float = 0.0025
    lr_d: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    decay_start: float = 0.5  # fraction of the horizon after which lr decays linearly to 0
    ema_halflife_kimg: float = 10.0
    ema_rampup: float | None = None  # StyleGAN3-style ramp (None = off)
    update_order: str = "g_then_d"  # order of the two updates within a step (UPDATE_ORDERS)

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        _check(int(self.batch_size) >= 1, f"optim.batch_size must be >= 1, got {self.batch_size}")
        _check(self.epochs > 0, f"optim.epochs must be > 0, got {self.epochs}")
        _check(self.total_steps is None or int(self.total_steps) >= 1, "optim.total_steps must be >= 1")
        _check(self.lr_g > 0 and self.lr_d > 0, "learning rates must be > 0")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        _check(0.0 <= self.decay_start <= 1.0, f"optim.decay_start must be in [0, 1], got {self.decay_start}")
        _check(self.ema_halflife_kimg >= 0, "optim.ema_halflife_kimg must be >= 0")
        _check(self.update_order in UPDATE_ORDERS, f"optim.update_order must be one of {', '.join(UPDATE_ORDERS)}, got {self.update_order!r}")


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    checkpoint_every: int = 1000  # steps
    log_every: int = 10  # steps
    num_workers: int = 0
    amp: str = "bf16"  # autocast dtype on CUDA: bf16 | none
    tensorboard: bool = True  # used when the tensorboard package is installed
    val_every: int = 0  # steps between validations (model selection, unicoal/train/validate.py); 0 = off

    def __post_init__(self):
        _check(int(self.checkpoint_every) >= 1, "run.checkpoint_every must be >= 1")
        _check(int(self.log_every) >= 1, "run.log_every must be >= 1")
        _check(int(self.num_workers) >= 0, "run.num_workers must be >= 0")
        _check(int(self.val_every) >= 0, f"run.val_every must be >= 0 (0 = no validation), got {self.val_every}")
        _check(self.amp in ("bf16", "none"), f"run.amp must be bf16 or none, got {self.amp!r}")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "unicoal"
    parity: str = "paper"
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        from unicoal.methods import get_method

        spec = get_method(self.method)
        _check(spec.trainable, f"method {self.method!r} is not trainable")
        _check(self.parity in PARITY, f"parity must be one of {', '.join(PARITY)}, got {self.parity!r}")

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "parity": self.parity,
            "model": copy.deepcopy(self.model),
            "data": self.data.to_dict(),
            "loss": asdict(self.loss),
            "optim": asdict(self.optim),
            "run": asdict(self.run),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a plain dict (``config.json`` or a merged YAML); unknown keys are errors."""
        d = dict(d)
        unknown = set(d) - {"method", "parity", "model", "data", "loss", "optim", "run", "base"}
        _check(not unknown, f"unknown config section(s) {sorted(unknown)} (allowed: method, parity, model, data, loss, optim, run, base)")
        d.pop("base", None)
        return cls(
            method=d.get("method", "unicoal"),
            parity=d.get("parity", "paper"),
            model=dict(d.get("model") or {}),
            data=DataConfig.from_dict(d.get("data") or {}),
            loss=_build(LossConfig, d.get("loss"), "loss"),
            optim=_build(OptimConfig, d.get("optim"), "optim"),
            run=_build(RunConfig, d.get("run"), "run"),
        )


def _build(cls, d: dict | None, section: str):
    d = dict(d or {})
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    _check(not unknown, f"unknown {section} key(s) {sorted(unknown)} (allowed: {', '.join(sorted(names))})")
    return cls(**d)


def deep_merge(base: dict, over: dict) -> dict:
    """``over`` merged into a copy of ``base`` (nested dicts merged, everything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def packaged_configs() -> dict[str, Path]:
    """Names of the configs shipped in ``unicoal/configs`` -> their paths."""
    root = Path(str(resources.files("unicoal") / "configs"))
    return {p.stem: p for p in sorted(root.glob("*.yaml"))}


def _read_yaml(ref: str | os.PathLike, seen: tuple[str, ...] = ()) -> dict:
    import yaml

    shipped = packaged_configs()
    path = Path(ref)
    if not path.exists() and str(ref) in shipped:
        path = shipped[str(ref)]
    if not path.exists():
        raise InputError(ref, "config not found", f"give a YAML path or one of the packaged configs: {', '.join(shipped)}")
    key = str(path.resolve())
    if key in seen:
        raise InputError(path, "config inherits from itself (base: cycle)", "fix the base: entries")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML ({' '.join(str(err).split())[:160]})", "fix the syntax") from None
    if not isinstance(raw, dict):
        raise InputError(path, "config must be a YAML mapping", "see unicoal/configs/tiny.yaml")
    base = raw.get("base")
    if base:
        parent = Path(base) if Path(base).is_absolute() or str(base) in shipped else path.parent / base
        base_ref = parent if parent.exists() else base
        raw = deep_merge(_read_yaml(base_ref, seen + (key,)), {k: v for k, v in raw.items() if k != "base"})
    return raw


def resolve_model(merged: dict, source=None) -> dict:
    """Resolve the ``model`` section with the method's ``model_config`` and make the ``data``
    section agree with it (modalities, resolution, number of inputs, padding; no identity items
    for a method without SR)."""
    from unicoal.methods import get_method

    spec = get_method(merged.get("method", "unicoal"))
    if not spec.trainable:
        raise InputError(source, f"method {spec.name!r} is not trainable", "choose a learned method (see unicoal methods)")
    model = dict(merged.get("model") or {})
    data = dict(merged.get("data") or {})
    if "padding" in data:
        if "pad_mode" in model and model["pad_mode"] != data["padding"]:
            raise InputError(source, f"model.pad_mode {model['pad_mode']!r} differs from data.padding {data['padding']!r}", "set only data.padding")
        model["pad_mode"] = data["padding"]
    try:
        model_cfg = spec.model_config(model)
    except (ValueError, TypeError) as err:
        raise InputError(source, f"invalid model config: {err}", "fix the model section") from None
    for key, value in (("modalities", list(model_cfg.modalities)), ("resolution", int(model_cfg.img_resolution)), ("num_inputs", int(model_cfg.num_inputs))):
        given = data.get(key)
        if given is not None and (list(given) if key == "modalities" else given) != value:
            raise InputError(source, f"data.{key} {given} differs from the model's {value}", f"set it in the model section only (model.{'img_resolution' if key == 'resolution' else key})")
        data[key] = value
    if "sr" not in spec.tasks and data.get("identity_items") is None:
        data["identity_items"] = False  # a method without SR never trains on copying its input
    out = dict(merged)
    out["model"] = model_cfg.to_dict()
    out["data"] = data
    return out


def load_config(ref: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """Load, merge (parity preset < base < file < the parity's method variant < overrides),
    resolve and validate a config."""
    file_raw = _read_yaml(ref)
    raw = deep_merge(file_raw, overrides or {})
    parity = raw.get("parity", "paper")
    if parity not in PARITY:
        raise InputError(ref, f"unknown parity {parity!r}", f"use one of {', '.join(PARITY)}")
    variant = PARITY_METHODS.get(parity, {}).get(raw.get("method", "unicoal"), {})
    if variant:
        raw = deep_merge(deep_merge(file_raw, variant), overrides or {})
    merged = resolve_model(deep_merge(PARITY[parity], raw), ref)
    try:
        return TrainConfig.from_dict(merged)
    except (ValueError, TypeError) as err:
        raise InputError(ref, f"invalid config: {err}", "fix the value (see docs/training.md)") from None

