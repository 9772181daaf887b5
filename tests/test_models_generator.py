"""Uni-COAL generator: interface, conditioning, gradients, ablations, size, equivariance."""
from __future__ import annotations


import pytest
import torch

from unicoal.models.config import UniCoalConfig
from unicoal.models.equivariance import bandlimited_images, translation_equivariance_psnr
from unicoal.models.generator import Generator, _skip_indices, skip_path_gain
from unicoal.nn.layers import AliasFreeLayer, VanillaLayer

torch.set_num_threads(2)


def _inputs(cfg, b, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, cfg.num_inputs, cfg.img_resolution, cfg.img_resolution, generator=gen) * 2 - 1
    delta = torch.rand(b, generator=gen)
    c = torch.arange(b) % cfg.num_modalities
    z = torch.randn(b, cfg.z_dim, generator=gen)
    return x, delta, c, z


@pytest.fixture(scope="module")
def tiny_g():
    torch.manual_seed(0)
    return Generator(UniCoalConfig.tiny()).eval()


@pytest.mark.parametrize("b", [1, 3])
def test_shapes_and_determinism(tiny_g, b):
    x, delta, c, z = _inputs(tiny_g.cfg, b)
    y = tiny_g(x, delta, c, z)
    assert y.shape == (b, 1, 64, 64) and torch.isfinite(y).all()
    assert torch.equal(y, tiny_g(x, delta, c, z))
    y_random = tiny_g(x, delta, c)  # z drawn internally
    assert y_random.shape == (b, 1, 64, 64)


def test_bad_inputs_name_the_tensor(tiny_g):
    x, delta, c, z = _inputs(tiny_g.cfg, 2)
    with pytest.raises(ValueError, match="x_in: dim 1 is 3, expected 4"):
        tiny_g(x[:, :3], delta, c)
    with pytest.raises(ValueError, match="delta: dim 0 is 3"):
        tiny_g(x, torch.rand(3), c)
    with pytest.raises(ValueError, match=r"c_out: indices must lie in \[0, 3\)"):
        tiny_g(x, delta, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="c_out: expected integer"):
        tiny_g(x, delta, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="z: dim 1"):
        tiny_g(x, delta, c, torch.zeros(2, 5))


def test_delta_and_target_modality_change_the_output(tiny_g):
    """One network, three tasks: delta (SR position) and c_1 (CMS target) both steer the output."""
    x, _, _, z = _inputs(tiny_g.cfg, 1)
    base = tiny_g(x, torch.tensor([0.0]), torch.tensor([0]), z)
    other_delta = tiny_g(x, torch.tensor([0.5]), torch.tensor([0]), z)
    other_c = tiny_g(x, torch.tensor([0.0]), torch.tensor([1]), z)
    scale = base.std().item()
    assert (other_delta - base).abs().mean().item() > 0.01 * scale
    assert (other_c - base).abs().mean().item() > 0.01 * scale
    other_z = tiny_g(x, torch.tensor([0.0]), torch.tensor([0]), torch.randn(1, tiny_g.cfg.z_dim))
    assert (other_z - base).abs().mean().item() > 0.001 * scale


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    G = Generator(UniCoalConfig.tiny()).train()
    x, delta, c, z = _inputs(G.cfg, 4)
    G(x, delta, c, z).square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or p.grad.abs().sum().item() == 0]
    assert missing == []


@pytest.mark.parametrize("enc, dec, m", [(False, False, 4), (True, False, 4), (False, True, 4), (True, True, 1)])
def test_ablations_build_and_run(enc, dec, m):
    cfg = UniCoalConfig.tiny(alias_free_encoder=enc, alias_free_decoder=dec, num_inputs=m)
    G = Generator(cfg).eval()
    kinds = {type(layer) for layer in G.encoder.layers}, {type(layer) for layer in G.synthesis.layers}
    assert kinds == ({AliasFreeLayer if enc else VanillaLayer}, {AliasFreeLayer if dec else VanillaLayer})
    x, delta, c, z = _inputs(cfg, 2)
    y = G(x, delta, c, z)
    assert y.shape == (2, 1, 64, 64) and torch.isfinite(y).all()


def test_fast_path_matches_reference_ops(tiny_g):
    x, delta, c, z = _inputs(tiny_g.cfg, 2)
    fast = tiny_g(x, delta, c, z)
    ref_g = Generator(tiny_g.cfg).eval()
    ref_g.load_state_dict(tiny_g.state_dict())
    for mod in ref_g.modules():
        if isinstance(mod, (AliasFreeLayer, VanillaLayer)):
            mod.impl, mod.modconv_mode = "ref", "grouped"
        if isinstance(mod, AliasFreeLayer):  # literal StyleGAN3 order: full conv, then pad/crop
            mod.conv_padding, mod.act_padding = mod.conv_kernel - 1, mod.padding
    ref = ref_g(x, delta, c, z)
    assert (fast - ref).abs().max().item() < 1e-4 * max(ref.abs().max().item(), 1e-3)


def test_paper_config_size():
    """Paper config: 59.25 M generator parameters (reference: about 59.3 M); built on CPU, no forward."""
    cfg = UniCoalConfig.paper()
    G = Generator(cfg)
    n = sum(p.numel() for p in G.parameters())
    assert abs(n - 59e6) <= 3e6, n
    assert n == pytest.approx(59.25e6, rel=0.002)
    # the authors' UniCOALGenerator (zhiyuns/UniCOAL models/networks/UniCOAL/networks_unicoal.py)
    # built with their IXI config (configs/ixi/multitask/allrand/UniCOAL/6_final.yml and its
    # bases: z 64, mapping 2 layers, modulated encoder with embed 64) on CPU: 59,253,681
    assert n == 59_253_681
    assert _skip_indices(cfg.schedule) == (4, 6, 9, 12)  # the last map of each size (reference design)
    # every encoder map carries the 10-pixel margin, the input slices included (256 + 2 x 10)
    assert G.encoder.layers[0].in_size == 276
    assert [layer.out_size for layer in G.encoder.layers] == [276, 276, 276, 276, 148, 148, 148, 84, 84, 52, 52,
                                                              36, 36, 36]
    assert G.encoder.layers[0].in_channels == 4 and G.encoder.layers[-1].out_channels == 512


def test_alias_free_generator_is_more_translation_equivariant_than_vanilla():
    """EQ-T (shift-then-generate vs generate-then-shift, sub-pixel shifts of the slices and the
    Fourier features, central crop), tiny config at initialisation: alias-free 46.5 dB versus the
    vanilla (Table VI baseline) 38.8 dB (issue #20, e from E's whole map and the delta bias at 0
    as the authors'; 44.8 / 39.2 dB with the former core crop and bias 1). (Before issue #15 46.8 / 38.8 / 54.5 dB: these test images fill the slice up to its
    border, and the encoder now pads them with the background -1 where the convolutions used to
    pad with 0, a larger step at the fixed field-of-view border that does not move with the shift.)"""
    x = bandlimited_images(2, 4, 64, seed=1)
    delta, c = torch.tensor([0.3, 0.6]), torch.tensor([0, 1])
    shifts = [(0.5, 0.0), (0.0, 0.5), (0.25, 0.75), (1.5, -0.5)]
    scores = {}
    for name, kw in {"alias_free": {}, "vanilla": dict(alias_free_encoder=False, alias_free_decoder=False)}.items():
        torch.manual_seed(0)
        cfg = UniCoalConfig.tiny(**kw)
        G = Generator(cfg)
        z = torch.randn(2, cfg.z_dim)
        scores[name] = translation_equivariance_psnr(G, x, delta, c, z, shifts)
    assert scores["alias_free"] == pytest.approx(46.5, abs=1.5)
    assert scores["vanilla"] == pytest.approx(38.8, abs=1.5)
    assert scores["alias_free"] - scores["vanilla"] > 5.0


def test_bf16_autocast_forward_and_backward():
    """bf16 autocast (the GPU training/inference mode), run on CPU: same output within 10 % of
    the fp32 peak (bf16 has an 8-bit mantissa) and gradients for every parameter."""
    torch.manual_seed(3)
    G = Generator(UniCoalConfig.tiny(channel_max=8, e_dim=16)).eval()  # CPU bf16 convs are slow: keep it small
    x, delta, c, z = _inputs(G.cfg, 1)
    ref = G(x, delta, c, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = G(x, delta, c, z)
    assert y.dtype == torch.bfloat16
    assert ((y.float() - ref).abs().max() / ref.abs().max()).item() < 0.1
    y.float().square().mean().backward()
    assert all(p.grad is not None for p in G.parameters())


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_skip_path_carries_in_plane_detail(preset):
    """Issue #15: the highest-rate skip must carry in-plane detail from the source slices to the
    output. Gain of the linearised path (real filters, paddings and crops; identity convs and
    activations) for a sinusoid at 0.5 / 0.75 of Nyquist: 0.96 / 0.92 with the skips at the last
    map of each size; the old placement (first map of each sampling rate) gave 0.47 / 0.13 (tiny)
    and 0.39 / 0.02 (paper), because the next layer's upsampling filter is designed for that map's
    lower cutoff. Floor: 0.85 at both frequencies."""
    gains = {}
    for placement in ("last", "first"):
        G = Generator(getattr(UniCoalConfig, preset)(skip_placement=placement))
        gains[placement] = [skip_path_gain(G, f) for f in (0.5, 0.75)]
    assert min(gains["last"]) > 0.85, gains
    assert gains["first"][0] < 0.5 and gains["first"][1] < 0.15, gains  # the ablation really is worse
    assert skip_path_gain(G, 0.05) == pytest.approx(1.0, abs=0.02)  # near-DC: unit gain (sanity of the probe)


def test_encoder_margin_is_background_not_an_edge():
    """Issue #15: the input slices are padded into the encoder's margin with the background value
    (-1), so an empty (all-background) input gives spatially uniform encoder maps over the slice,
    borders included; zero padding of the bare slice (mid-grey in [-1, 1]) made a fake edge."""
    torch.manual_seed(0)
    G = Generator(UniCoalConfig.tiny()).eval()
    cfg = G.cfg
    x = torch.full((1, cfg.num_inputs, 64, 64), -1.0)
    with torch.no_grad():
        v = G.attr_mapping(torch.tensor([0]), torch.tensor([0.25]))
        feats, _ = G.encoder(x, v)
    top = max(G.synthesis.skips)
    fmap = feats[top]  # 64 + 2 x 8 = 80: the slice is the central 64 x 64
    m = cfg.margin_size
    assert fmap.shape[-1] == 64 + 2 * m
    inner = fmap[..., m:-m, m:-m]
    spread = (inner.amax(dim=(2, 3)) - inner.amin(dim=(2, 3))).max().item()
    assert spread < 1e-4 * max(fmap.abs().max().item(), 1e-3), spread


@pytest.mark.parametrize("region", ["full", "core"])
def test_global_code_reads_the_whole_encoder_map_as_the_authors(region):
    """Issue #20: the authors' ReversedEncoder computes e (3x3 conv, no clamp, pool 4 x 4, FC) from
    E's whole last map, margin included (the crop to the core is commented out in their code).
    Changing only the margin of that map must change e with ``e_region="full"`` (default) and
    leave it unchanged with the ``"core"`` option."""
    torch.manual_seed(0)
    cfg = UniCoalConfig.tiny(e_region=region)
    G = Generator(cfg).eval()
    x, delta, c, _ = _inputs(cfg, 2)
    m = cfg.margin_size
    v = G.attr_mapping(c, delta)
    with torch.no_grad():
        _, e_ref = G.encoder(x, v)

        def bump_margin(module, args, out):
            out = out.clone()
            out[..., :m, :] += 3.0  # the top margin rows only; the s x s core is untouched
            return out

        handle = G.encoder.layers[-1].register_forward_hook(bump_margin)
        try:
            _, e_bumped = G.encoder(x, v)
        finally:
            handle.remove()
    change = (e_bumped - e_ref).abs().max().item()
    if region == "full":
        assert cfg.e_region == UniCoalConfig.tiny().e_region  # the default
        assert change > 1e-3
    else:
        assert change == 0.0
    assert G.encoder.e_conv.conv_clamp is None  # authors' e_16x16: conv_clamp=None


def test_delta_embedding_bias_starts_at_zero_as_the_authors():
    """Issue #20: the authors' delta embedding is a FullyConnectedLayer with bias_init 0, so at
    initialisation the normalised embedding (hence w) is the same for every delta > 0; the
    ``delta_bias_init=1`` option makes it continuous in delta from the first step."""
    torch.manual_seed(0)
    G = Generator(UniCoalConfig.tiny())
    for net in (G.mapping, G.attr_mapping):
        assert torch.count_nonzero(net.embed_delta.bias).item() == 0
    z = torch.randn(1, G.cfg.z_dim).repeat(2, 1)
    c, deltas = torch.tensor([1, 1]), torch.tensor([0.25, 0.75])
    with torch.no_grad():
        w = G.mapping(c, deltas, z)
        assert (w[0] - w[1]).abs().max().item() < 1e-5
        G1 = Generator(UniCoalConfig.tiny(delta_bias_init=1.0))
        assert torch.all(G1.mapping.embed_delta.bias != 0)
        w1 = G1.mapping(c, deltas, z)
        assert (w1[0] - w1[1]).abs().max().item() > 1e-4
