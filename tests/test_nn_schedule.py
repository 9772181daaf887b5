"""The alias-free layer schedule, pinned against reference-facts.md."""
from __future__ import annotations

import math

import pytest

from unicoal.nn.schedule import alias_free_schedule, format_schedule


def test_paper_schedule_matches_reference_facts():
    t = alias_free_schedule()  # paper defaults: r=256, 14 layers, 2 critical, f_c0=2, f_t0=2^2.1, 2^0.3, margin 10
    assert len(t) == 15
    assert [x.size for x in t] == [36, 36, 36, 52, 52, 84, 84, 148, 148, 148, 276, 276, 276, 256, 256]
    assert [x.channels for x in t[:14]] == [512] * 7 + [362, 256, 181, 128, 91, 64, 64]
    assert t[14].channels == 1
    assert [x.s for x in t] == [16, 16, 16, 32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256]
    for x in t:
        i = x.index
        assert x.f_c == pytest.approx(2 * 64 ** min(i / 12, 1))                               # f_c
        assert x.f_t == pytest.approx(2 ** 2.1 * (2 ** 0.3 * 128 / 2 ** 2.1) ** min(i / 12, 1))  # f_t
        assert x.s == 2 ** math.ceil(math.log2(min(2 * x.f_t, 256)))                          # s
        assert x.f_h == pytest.approx(max(x.f_t, x.s / 2) - x.f_c)                            # f_h
    assert [x.critical for x in t] == [False] * 12 + [True] * 3
    assert t[0].f_t == pytest.approx(4.287, abs=1e-3) and t[12].f_t == pytest.approx(157.586, abs=1e-3)
    assert "f_c" in format_schedule(t).splitlines()[0]


def test_schedule_rejects_bad_numbers():
    with pytest.raises(ValueError):
        alias_free_schedule(img_resolution=100)
    with pytest.raises(ValueError):
        alias_free_schedule(num_layers=4, num_critical=4)
    with pytest.raises(ValueError):
        alias_free_schedule(img_resolution=64, first_cutoff=40)
