"""Uni-COAL networks: configuration, generator, projection discriminator, SAM feature loss."""
from __future__ import annotations

__all__ = ["UniCoalConfig", "Generator", "Discriminator"]


def __getattr__(name: str):  # lazy, so ``import unicoal.models`` stays light
    if name == "UniCoalConfig":
        from unicoal.models.config import UniCoalConfig
        return UniCoalConfig
    if name == "Generator":
        from unicoal.models.generator import Generator
        return Generator
    if name == "Discriminator":
        from unicoal.models.discriminator import Discriminator
        return Discriminator
    raise AttributeError(name)
