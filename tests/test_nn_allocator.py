"""unicoal.nn.allocator: freed large blocks stay in the process (glibc), and the switch turns it off."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
from unicoal.nn.allocator import keep_freed_memory
import torch
active = keep_freed_memory()
def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20
base = rss_mib()
t = torch.ones(64 * 2 ** 20)  # 256 MiB, touched
del t
print(active, round(rss_mib() - base))
"""


def _probe(**env) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True,
                         env=dict(os.environ, **env)).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_activation_memory_is_kept_and_the_switch_restores_the_default():
    active, kept = _probe(UNICOAL_ALLOCATOR="")
    assert active and kept >= 200  # the freed 256 MiB stays mapped for the next layer
    active, kept = _probe(UNICOAL_ALLOCATOR="default")
    assert not active and kept < 50  # glibc's default: munmap on free
