"""Losses, blur and lr schedules, EMA and config loading of unicoal.train (numbers)."""
from __future__ import annotations

import math

import pytest
import torch

from unicoal.errors import InputError
from unicoal.train.config import LossConfig, load_config
from unicoal.train.ema import ema_beta
from unicoal.train.losses import UniCoalLoss, blur_sigma_at, gaussian_blur, gaussian_kernel1d
from unicoal.train.schedule import lr_factor, make_scheduler

torch.set_num_threads(1)


class _LinearD(torch.nn.Module):
    """D(x_in, y) = sum(a * y) + b: its R1 gradient is ``a`` everywhere."""

    def __init__(self, a=0.5, b=0.25):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.b = torch.nn.Parameter(torch.tensor(b))

    def forward(self, x_in, y, delta, c_out):
        return (self.a * y).flatten(1).sum(1) + self.b


class _ShiftG(torch.nn.Module):
    def __init__(self, shift=0.1):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(shift))

    def forward(self, x_in, delta, c_out, z=None):
        return x_in[:, :1] + self.shift


def _batch(b=2, s=8):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(b, 1, s, s, generator=g) * 2 - 1
    return {"x_in": y.repeat(1, 4, 1, 1), "y": y, "delta": torch.zeros(b), "c_out": torch.zeros(b, dtype=torch.long)}


def test_blur_schedule_numbers():
    assert blur_sigma_at(0, 2.0, 100) == 2.0
    assert blur_sigma_at(50_000, 2.0, 100) == pytest.approx(1.0)
    assert blur_sigma_at(100_000, 2.0, 100) == 0.0 and blur_sigma_at(300_000, 10.0, 200) == 0.0
    assert blur_sigma_at(100_000, 10.0, 200) == pytest.approx(5.0)


def test_gaussian_blur_properties():
    const = torch.full((1, 1, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, 2.0), const, atol=1e-6)  # DC gain 1, replicate edges
    delta = torch.zeros(1, 1, 21, 21)
    delta[0, 0, 10, 10] = 1.0
    out = gaussian_blur(delta, 1.5)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    ys = torch.arange(21.0) - 10
    var = float((out[0, 0].sum(1) * ys**2).sum())
    # StyleGAN3's kernel 2^-(x/sigma)^2: a Gaussian of std sigma / sqrt(2 ln 2), radius floor(3 sigma)
    assert var == pytest.approx(1.5**2 / (2 * math.log(2)), rel=0.02)
    assert int((out[0, 0, 10] > 0).sum()) == 9  # radius floor(4.5) = 4 (ceil would give 11 taps)
    f = gaussian_kernel1d(2.0)
    assert f.numel() == 13 and float(f[7] / f[6]) == pytest.approx(2 ** -(1 / 2.0) ** 2, rel=1e-6)
    assert torch.equal(gaussian_blur(delta, 0.0), delta)
    assert torch.equal(gaussian_blur(delta, 0.3), delta)  # radius floor(0.9) = 0: no blur


def test_discriminator_loss_and_r1_values():
    D, G = _LinearD(), _ShiftG()
    cfg = LossConfig(r1_gamma=10.0, sam_weight=0)
    loss = UniCoalLoss(G, D, cfg)
    batch = _batch()
    total, stats = loss.discriminator_loss(batch, None, 0.0, do_r1=True)
    with torch.no_grad():
        real = D(None, batch["y"], None, None)
        fake = D(None, batch["y"] + 0.1, None, None)
    expect = torch.nn.functional.softplus(fake).mean() + torch.nn.functional.softplus(-real).mean()
    penalty = 0.5**2 * 64  # |grad|^2 = a^2 per pixel, 8 x 8 pixels
    assert float(stats["D_r1"]) == pytest.approx(penalty, rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(expect) + 10.0 / 2 * penalty, rel=1e-5)
    lazy = UniCoalLoss(G, D, LossConfig(r1_gamma=10.0, r1_interval=4, sam_weight=0))
    total4, _ = lazy.discriminator_loss(batch, None, 0.0, do_r1=True)
    assert float(total4.detach()) == pytest.approx(float(expect) + 4 * 10.0 / 2 * penalty, rel=1e-5)
    total_off, stats_off = lazy.discriminator_loss(batch, None, 0.0, do_r1=False)
    assert "D_r1" not in stats_off and float(total_off.detach()) == pytest.approx(float(expect), rel=1e-5)


class _SourceD(torch.nn.Module):
    """D = sum(a * y) + sum(c * x_in) + b; records the inputs it sees."""

    def __init__(self, a=0.5, c=0.25):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.c = torch.nn.Parameter(torch.tensor(c))
        self.seen = []

    def forward(self, x_in, y, delta, c_out):
        self.seen.append((x_in.detach().clone(), y.detach().clone()))
        return (self.a * y).flatten(1).sum(1) + (self.c * x_in).flatten(1).sum(1)


@pytest.mark.parametrize("sources", [True, False])
def test_r1_and_blur_cover_the_whole_discriminator_input(sources):
    """Issue #15: as in the authors' code, R1 penalises the gradient with respect to the whole D
    input (4 source slices + target) and the blur covers all of it; ``d_sources_blur_r1: false``
    restricts both to the target slice."""
    D, G = _SourceD(), _ShiftG()
    loss = UniCoalLoss(G, D, LossConfig(r1_gamma=10.0, sam_weight=0, d_sources_blur_r1=sources))
    batch = _batch(s=16)
    batch["x_in"] = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    _, stats = loss.discriminator_loss(batch, None, 0.0, do_r1=True)
    penalty = 0.5**2 * 256 + (0.25**2 * 4 * 256 if sources else 0.0)
    assert float(stats["D_r1"]) == pytest.approx(penalty, rel=1e-5)
    D.seen.clear()
    loss.discriminator_loss(batch, None, 1.5, do_r1=True)
    loss.generator_loss(batch, None, 1.5)
    blurred = gaussian_blur(batch["x_in"], 1.5)
    assert len(D.seen) == 3  # fake, real, generator phase
    for x_seen, y_seen in D.seen:
        assert torch.allclose(x_seen, blurred if sources else batch["x_in"], atol=1e-6)
    assert torch.allclose(D.seen[1][1], gaussian_blur(batch["y"], 1.5), atol=1e-6)


def test_generator_loss_values():
    D, G = _LinearD(), _ShiftG(0.1)
    loss = UniCoalLoss(G, D, LossConfig(l1_weight=80.0, sam_weight=0))
    batch = _batch()
    total, stats = loss.generator_loss(batch, None, 0.0)
    with torch.no_grad():
        adv = torch.nn.functional.softplus(-D(None, batch["y"] + 0.1, None, None)).mean()
    assert float(stats["G_l1"]) == pytest.approx(0.1, rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(adv) + 80 * 0.1, rel=1e-5)
    sam_calls = []

    def fake_sam(a, b):
        sam_calls.append((a.shape, b.shape))
        return (a - b).abs().mean() * 2

    with_sam = UniCoalLoss(G, D, LossConfig(l1_weight=80.0, sam_weight=100.0), sam=fake_sam)
    total2, stats2 = with_sam.generator_loss(batch, None, 0.0)
    assert float(stats2["G_sam"]) == pytest.approx(0.2, rel=1e-5)
    assert float(total2.detach()) == pytest.approx(float(total.detach()) + 100 * 0.2, rel=1e-5)
    assert sam_calls == [((2, 1, 8, 8), (2, 1, 8, 8))]


def test_lr_schedule_and_ema_numbers():
    assert [lr_factor(s, 100) for s in (0, 49, 50, 75, 99, 100)] == [1.0, 1.0, 1.0, 0.5, pytest.approx(0.02), 0.0]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.0025)
    sched = make_scheduler(opt, 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0025] * 5 + [0.0025 * f for f in (1.0, 0.8, 0.6, 0.4, 0.2)])
    state = sched.state_dict()
    torch.save(state, "/dev/null")
    assert ema_beta(16, 10.0) == pytest.approx(0.5 ** (16 / 10000))
    assert ema_beta(16, 10.0) ** (10000 / 16) == pytest.approx(0.5)
    assert ema_beta(16, 0.0) == 0.0
    assert ema_beta(16, 10.0, images_seen=1000, rampup=0.05) == pytest.approx(0.5 ** (16 / 50))


def test_config_parity_and_validation(tmp_path):
    paper = load_config("paper")
    assert (paper.loss.blur_sigma, paper.loss.blur_fade_kimg, paper.data.profile, paper.data.padding) == (2.0, 100.0, "rect", "replicate")
    assert (paper.optim.lr_g, paper.optim.lr_d, paper.optim.betas, paper.optim.eps) == (0.0025, 0.002, (0.0, 0.99), 1e-8)
    assert (paper.loss.l1_weight, paper.loss.sam_weight, paper.loss.r1_gamma, paper.optim.batch_size) == (80.0, 100.0, 10.0, 16)
    assert paper.data.ratios == (1.0, 2.0, 4.0, 6.0) and paper.data.resolution == 256 and paper.data.num_inputs == 4
    official = load_config("paper", {"parity": "official"})
    assert (official.loss.blur_sigma, official.loss.blur_fade_kimg, official.data.profile, official.data.padding) == (10.0, 200.0, "select", "constant")
    assert official.model["pad_mode"] == "constant"
    one = load_config("task_one")
    assert one.data.num_inputs == 1 and one.data.input_modalities == ("T1",) and one.data.output_modalities == ("T2",)
    sr = load_config("task_sr")
    assert sr.data.ratios == (8.0,) and sr.data.input_modalities == sr.data.output_modalities == ("T1",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: tiny\noptim:\n  batch_sise: 4\n")
    with pytest.raises(InputError, match="batch_sise"):
        load_config(bad)
    bad.write_text("base: tiny\ndata:\n  resolution: 128\n")
    with pytest.raises(InputError, match="differs from the model"):
        load_config(bad)
    with pytest.raises(InputError, match="config not found"):
        load_config(tmp_path / "missing.yaml")
    cfg = load_config("tiny")
    assert cfg.to_dict() == load_config("tiny").to_dict()
    assert math.isclose(cfg.loss.blur_sigma, 2.0)


def test_cli_dry_run_prints_config(capsys):
    from unicoal.cli import main

    assert main(["train", "--config", "tiny", "--dry-run", "--max-steps", "7", "--set", "optim.batch_size=2"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["optim"]["total_steps"] == 7 and out["optim"]["batch_size"] == 2 and out["method"] == "unicoal"
    assert main(["train", "--config", "tiny", "--set", "nonsense"]) == 1
    assert "is not KEY=VALUE" in capsys.readouterr().err


def test_describe_lr_names_each_schedule():
    from unicoal.train.schedule import describe_lr

    assert describe_lr(1e-3, 1e-3, 1.0, 100) == "lr G 0.001, D 0.001: constant (no decay)"
    assert describe_lr(0.0025, 0.002, 0.5, 100) == "lr G 0.0025, D 0.002: constant until epoch 50 of 100, then linear decay to 0"
    assert describe_lr(2e-4, 2e-4, 0.0) == "lr G 0.0002, D 0.0002: linear decay to 0 from the first step"
