"""Projection discriminator: interface, any batch size, projection switch, size, gradients."""
from __future__ import annotations

import pytest
import torch

from unicoal.models.config import UniCoalConfig
from unicoal.models.discriminator import Discriminator, mbstd_group_size, minibatch_std

torch.set_num_threads(2)


def _batch(cfg, b, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = cfg.img_resolution
    return (torch.rand(b, cfg.num_inputs, r, r, generator=gen) * 2 - 1, torch.rand(b, 1, r, r, generator=gen) * 2 - 1,
            torch.rand(b, generator=gen), torch.arange(b) % cfg.num_modalities)


@pytest.mark.parametrize("b", [1, 2, 3, 5, 6])
def test_any_batch_size(b):
    torch.manual_seed(0)
    D = Discriminator(UniCoalConfig.tiny())
    logits = D(*_batch(D.cfg, b))
    assert logits.shape == (b,) and torch.isfinite(logits).all()


def test_mbstd_groups():
    assert [mbstd_group_size(b, 4) for b in (1, 2, 3, 4, 6, 8, 9)] == [1, 2, 3, 4, 3, 4, 3]
    x = torch.randn(6, 4, 2, 2)
    y = minibatch_std(x, 4)
    assert y.shape == (6, 5, 2, 2)
    # group of 3: samples 0, 2, 4 form one group (reshape [G, n, ...]); their std map equals
    expected = x.reshape(3, 2, 4, 2, 2)[:, 0].std(dim=0, unbiased=False).mean()
    assert y[0, 4, 0, 0].item() == pytest.approx(expected.item(), rel=1e-4)


def test_projection_conditions_on_delta_and_modality():
    torch.manual_seed(1)
    D = Discriminator(UniCoalConfig.tiny()).eval()
    x, y, _, _ = _batch(D.cfg, 1)
    a = D(x, y, torch.tensor([0.0]), torch.tensor([0]))
    b = D(x, y, torch.tensor([0.7]), torch.tensor([0]))
    c = D(x, y, torch.tensor([0.0]), torch.tensor([2]))
    assert abs((a - b).item()) > 1e-5 and abs((a - c).item()) > 1e-5
    torch.manual_seed(1)
    plain = Discriminator(UniCoalConfig.tiny(projection=False)).eval()
    assert plain.mapping is None
    assert plain(x, y, torch.tensor([0.0]), torch.tensor([0])).item() == \
        plain(x, y, torch.tensor([0.7]), torch.tensor([2])).item()


def test_gradients_reach_every_parameter_and_inputs():
    torch.manual_seed(2)
    D = Discriminator(UniCoalConfig.tiny())
    x, y, delta, c = _batch(D.cfg, 4)
    y.requires_grad_(True)
    D(x, y, delta, c).sum().backward()
    missing = [n for n, p in D.named_parameters() if p.grad is None or p.grad.abs().sum().item() == 0]
    assert missing == [] and y.grad.abs().sum().item() > 0


def test_bad_inputs():
    D = Discriminator(UniCoalConfig.tiny())
    x, y, delta, c = _batch(D.cfg, 2)
    with pytest.raises(ValueError, match="y: dim 1 is 2"):
        D(x, torch.cat([y, y], 1), delta, c)


def test_paper_discriminator_size():
    """24.59 M parameters (reference: about 24.6 M); 6 residual blocks 256 -> 4, channels 64 .. 512."""
    D = Discriminator(UniCoalConfig.paper())
    n = sum(p.numel() for p in D.parameters())
    assert n == pytest.approx(24.6e6, rel=0.01)
    # the authors' CoModDiscriminator (zhiyuns/UniCOAL models/networks/CoModGAN/generator.py) built
    # with their IXI config (configs/ixi/multitask/allrand/UniCOAL/6_final.yml and its bases:
    # img_channels 5, c_dim 3, index_dim 1, mapping 2 layers, embed 64, mbstd 16) on CPU: 24,592,448
    assert n == 24_592_448
    assert len(D.blocks) == 6 and D.fromrgb.out_channels == 64 and D.fromrgb.in_channels == 5
