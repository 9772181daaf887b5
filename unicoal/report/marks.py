"""Marks of how a method was trained, for the tables and the report.

``§`` marks the cells of a method trained without the user's pretrained weights (pGAN / AutoGAN
without VGG16, ResViT without its ImageNet ViT, Uni-COAL without the SAM checkpoint: a logged
fallback ran, not the paper's setting), read from the plan's train configs, a run's
``config.json`` or a ``model.pt`` (:func:`unicoal.pretrained.fallback_weights`, which needs no
training code), with one note per table naming what ran instead (docs/fidelity.md).
"""
from __future__ import annotations

import json
from pathlib import Path

from unicoal.evaluate.stats import method_key
from unicoal.report.specs import METHOD_NOTE_MARK

__all__ = ["FALLBACK_MARK", "mark_fallbacks", "fallbacks_from_configs"]

FALLBACK_MARK = "§"


def mark_fallbacks(table, fallbacks: dict) -> None:
    """Mark with ``§`` every value cell of a method trained without the user's pretrained weights
    and add one note naming what ran instead. ``table``: a ``RenderedTable`` (:mod:`unicoal.report.tables`) or its
    ``tables.json`` form (the report marks those); ``fallbacks``: method (any spelling) ->
    ``{weights: what ran instead}``. Marking twice changes nothing."""
    fb = {method_key(k): dict(v) for k, v in (fallbacks or {}).items() if v}
    body = table["body"] if isinstance(table, dict) else table.body
    notes = table.setdefault("notes", []) if isinstance(table, dict) else table.notes
    hits: dict[str, str] = {}
    for row in body:
        key = method_key(row.get("method") or "")
        if key not in fb:
            continue
        for c in row.get("cells", []):
            if (c.get("status", "value") if isinstance(c, dict) else c.status) != "value":
                continue  # only values carry it: "-", "n.r." and "n/a" stay as they are
            if isinstance(c, dict):
                c["mark"] = FALLBACK_MARK
            else:
                c.mark = FALLBACK_MARK
            hits.setdefault(key, row["label"].rstrip(" " + METHOD_NOTE_MARK))
    if hits:
        parts = [f"{label}: " + "; ".join(f"no {w} weights, {what}" for w, what in sorted(fb[k].items())) for k, label in hits.items()]
        note = (f"{FALLBACK_MARK} trained without the user's pretrained weights (a logged fallback, not the paper's setting): "
                + " | ".join(parts) + ".")
        if note not in notes:
            notes.append(note)


def fallbacks_from_configs(paths) -> dict[str, dict[str, str]]:
    """Method -> {weights: what ran instead} over train configs: the plan's YAML configs (or a
    folder of them), a run's ``config.json``, or a ``model.pt`` (its ``train_config``); a method
    is marked when any of its configs trained without the user's weights
    (:func:`unicoal.pretrained.fallback_weights`, which needs no training code)."""
    from unicoal.errors import InputError
    from unicoal.pretrained import fallback_weights

    files: list[Path] = []
    for p in map(Path, paths or ()):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json", ".pt"))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(p, "config file or folder not found", "pass the plan's configs folder, train configs or model.pt files")
    out: dict[str, dict[str, str]] = {}
    for f in files:
        if f.suffix == ".pt":
            import torch

            cfg = torch.load(f, map_location="cpu", weights_only=True).get("train_config") or {}
        elif f.suffix == ".json":
            cfg = json.loads(f.read_text(encoding="utf-8"))
        else:  # a plan's config as written (base: the method's packaged config + overrides)
            import yaml

            try:
                cfg = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                raise InputError(f, "not valid YAML", "pass the plan's train configs") from None
        if not isinstance(cfg, dict):
            continue
        missing = fallback_weights(cfg)
        if missing:
            out.setdefault(cfg.get("method", ""), {}).update(missing)
    return out
