"""Mapping networks with 2nd-moment-normalised embeddings."""
from __future__ import annotations

import pytest
import torch

from unicoal.nn.mapping import MappingNetwork, normalize_2nd_moment


def test_normalize_2nd_moment():
    x = torch.randn(5, 64) * 7
    assert torch.allclose(normalize_2nd_moment(x).square().mean(dim=1), torch.ones(5), atol=1e-5)


def test_mapping_uses_every_input():
    torch.manual_seed(0)
    m = MappingNetwork(z_dim=8, num_classes=3, embed_dim=8, out_dim=32, num_layers=2, delta_bias_init=1.0)
    z = torch.randn(1, 8).repeat(4, 1)
    c = torch.tensor([0, 1, 0, 0])
    delta = torch.tensor([0.0, 0.0, 0.5, 0.0])
    w = m(c, delta, z)
    assert w.shape == (4, 32)
    assert (w[1] - w[0]).abs().max() > 1e-3   # c
    assert (w[2] - w[0]).abs().max() > 1e-3   # delta (continuous from the start with delta_bias_init=1)
    assert (w[3] - w[0]).abs().max() == 0
    w2 = m(c, delta, torch.randn(4, 8))
    assert (w2 - w).abs().max() > 1e-3       # z
    d1 = m(c[:1], torch.tensor([0.25]), z[:1])
    d2 = m(c[:1], torch.tensor([0.75]), z[:1])
    assert (d1 - d2).abs().max() > 1e-4


def test_attribute_mapping_without_latent_and_errors():
    n = MappingNetwork(z_dim=0, num_classes=2, embed_dim=4, out_dim=16)
    assert n(torch.tensor([0, 1]), torch.tensor([0.1, 0.2])).shape == (2, 16)
    with pytest.raises(ValueError, match="c: dim 1"):
        n(torch.zeros(2, 3), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="delta"):
        n(torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match="z"):
        MappingNetwork(z_dim=4, num_classes=2)(torch.tensor([0]), torch.tensor([0.1]))
