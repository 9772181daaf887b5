"""Qualitative figures in the spirit of the paper's Figs. 1 and 4-7 (matplotlib, Agg, PNG).

Two kinds of figure, described by a cases CSV (:data:`CASE_COLUMNS`)::

    figure,kind,label,path
    fig4_case1,source,T1 (input),sub-01_T1.nii.gz
    fig4_case1,method,ResViT,resvit/sub-01_T2.nii.gz
    fig4_case1,method,Uni-COAL,unicoal/sub-01_T2.nii.gz
    fig4_case1,target,T2 (ground truth),sub-01_T2.nii.gz
    fig6_sweep,source,T1 5 mm,sub-01_T1_5mm.nii.gz
    fig6_sweep,sweep,2x,unicoal/sub-01_T1_x2.nii.gz
    fig6_sweep,sweep,5.33x,unicoal/sub-01_T1_x5.33.nii.gz

* **comparison** (a figure with ``method`` rows; Figs. 4, 5, 7): columns = source, each method,
  ground truth; rows = axial image, axial absolute error, sagittal image, sagittal error.
* **sweep** (a figure with ``sweep`` rows; Figs. 1, 6): columns = source then each output
  (any thickness, non-integer ratios included) and optionally the ground truth; rows = axial and
  sagittal views, each panel titled with its slice thickness.

Windowing is consistent: every volume is mapped to [0, 1] with the metric recipe (its own
0.5/99.5 percentiles, see :mod:`unicoal.evaluate.metrics`) and every image panel is shown with
the same window [0, 1]; error maps share one colour scale ``[0, error_max]`` per figure.
Volumes are shown in RAS orientation, slices picked at one world position and drawn with their
physical aspect. The position is the ground truth's foreground centroid (``centre="foreground"``)
or, with ``centre="label"``, the centroid of the lesion label map given as a ``label`` row (so the
lesion is in the cut; a figure without a label, or with an empty one, falls back to the
foreground and ``figures.json`` says so). Panels on the ground truth's grid
are titled with their whole-volume PSNR / SSIM (published convention).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from unicoal.errors import InputError

__all__ = ["CASE_COLUMNS", "KINDS", "CENTRES", "Case", "Volume", "read_cases", "render_figure", "render_all"]

CASE_COLUMNS: tuple[str, ...] = ("figure", "kind", "label", "path")
KINDS: tuple[str, ...] = ("source", "method", "target", "sweep", "label")
CENTRES: tuple[str, ...] = ("foreground", "label")


@dataclass(frozen=True)
class Case:
    figure: str
    kind: str
    label: str
    path: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.figure or not all(ch.isalnum() or ch in "-_." for ch in self.figure):
            raise ValueError(f"figure name must be non-empty and use letters, digits, '-', '_' or '.', got {self.figure!r}")


def read_cases(path: str | os.PathLike) -> dict[str, list[Case]]:
    """Cases grouped by figure, in file order. Relative paths are resolved against the CSV's folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found", "pass a cases CSV with columns figure,kind,label,path")
    figures: dict[str, list[Case]] = {}
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CASE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(p, f"missing column(s) {', '.join(missing)}", f"the cases CSV needs {','.join(CASE_COLUMNS)}")
        for lineno, rec in enumerate(reader, start=2):
            vol = Path(rec["path"].strip())
            vol = vol if vol.is_absolute() else p.parent / vol
            try:
                case = Case(rec["figure"].strip(), rec["kind"].strip().lower(), rec["label"].strip(), str(vol))
            except ValueError as err:
                raise InputError(p, f"line {lineno}: {err}", "fix the row") from None
            figures.setdefault(case.figure, []).append(case)
    for name, cases in figures.items():
        kinds = [c.kind for c in cases]
        if "method" in kinds and "sweep" in kinds:
            raise InputError(p, f"figure {name!r} mixes 'method' and 'sweep' rows", "use one figure name per kind of figure")
        if "method" not in kinds and "sweep" not in kinds:
            raise InputError(p, f"figure {name!r} has no 'method' or 'sweep' rows", "add the volumes to show")
        if "method" in kinds and "target" not in kinds:
            raise InputError(p, f"figure {name!r} has methods but no 'target' (ground truth) row", "add a target row")
        if kinds.count("target") > 1 or kinds.count("source") > 1 or kinds.count("label") > 1:
            raise InputError(p, f"figure {name!r} has more than one source, target or label row", "keep one of each")
    if not figures:
        raise InputError(p, "no cases", "add rows figure,kind,label,path")
    return figures


@dataclass
class Volume:
    """A volume reoriented to RAS and normalised to [0, 1] for display."""

    label: str
    path: str
    raw: np.ndarray
    data: np.ndarray
    affine: np.ndarray
    spacing: np.ndarray = field(init=False)

    def __post_init__(self):
        self.spacing = np.linalg.norm(self.affine[:3, :3], axis=0)

    @classmethod
    def load(cls, label: str, path: str) -> "Volume":
        import nibabel as nib

        from unicoal.evaluate.metrics import normalize_percentile
        from unicoal.io import load_volume

        _, img = load_volume(path, allow_empty=True)
        ras = nib.as_closest_canonical(img)
        raw = np.asarray(ras.dataobj, dtype=np.float32)
        raw = raw[..., 0] if raw.ndim == 4 else raw
        return cls(label, path, raw, normalize_percentile(raw), np.asarray(ras.affine, dtype=np.float64))

    def index_of(self, world: np.ndarray) -> np.ndarray:
        ijk = np.linalg.inv(self.affine) @ np.append(world, 1.0)
        return np.clip(np.rint(ijk[:3]).astype(int), 0, np.array(self.data.shape) - 1)

    def same_grid(self, other: "Volume") -> bool:
        return self.data.shape == other.data.shape and np.allclose(self.affine, other.affine, atol=1e-3)

    @property
    def thickness(self) -> float:
        return float(self.spacing[2])  # RAS: axis 2 is superior-inferior (axial slices)

    def view(self, arr: np.ndarray, plane: str, world: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """2D slice (rows = up, cols = right) through ``world`` and its extent in mm."""
        i, j, k = self.index_of(world)
        sx, sy, sz = self.spacing
        if plane == "axial":
            sl = arr[:, :, k].T[::-1]  # rows: anterior up; cols: left -> right
            extent = [0, arr.shape[0] * sx, 0, arr.shape[1] * sy]
        elif plane == "sagittal":
            sl = arr[i, :, :].T[::-1]  # rows: superior up; cols: posterior -> anterior
            extent = [0, arr.shape[1] * sy, 0, arr.shape[2] * sz]
        else:
            raise ValueError(f"plane must be axial or sagittal, got {plane!r}")
        return sl, extent


def _world_centre(vol: Volume) -> np.ndarray:
    fg = vol.data > 0.05
    idx = np.argwhere(fg).mean(axis=0) if fg.any() else (np.array(vol.data.shape) - 1) / 2.0
    return (vol.affine @ np.append(idx, 1.0))[:3]


def _label_centre(label: Volume) -> np.ndarray | None:
    """World centroid of the label map's voxels > 0 (``None`` when the map is empty)."""
    fg = label.raw > 0
    if not fg.any():
        return None
    return (label.affine @ np.append(np.argwhere(fg).mean(axis=0), 1.0))[:3]


def _metrics_title(pred: Volume, target: Volume | None) -> str:
    if target is None or not pred.same_grid(target) or pred is target:
        return ""
    from unicoal.evaluate.metrics import get_convention, volume_metrics

    if min(target.raw.shape) < get_convention("published").win_size:
        return ""
    m = volume_metrics(pred.raw, target.raw, "published", axial=2)
    psnr = "inf" if math.isinf(m["PSNR"]) else f"{m['PSNR']:.2f}"
    return f"PSNR {psnr} / SSIM {m['SSIM']:.3f}"


def render_figure(name: str, cases: Sequence[Case], out_path: str | os.PathLike, error_max: float = 0.3, dpi: int = 100,
                  centre: str = "foreground") -> dict:
    """Draw one figure to ``out_path`` (PNG). Returns what was drawn: panel titles, windows and the
    cut position (``centre``: ``foreground`` or ``label``, see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from unicoal.io import atomic_path

    if not error_max > 0:
        raise ValueError(f"error_max must be > 0, got {error_max}")
    if centre not in CENTRES:
        raise ValueError(f"centre must be one of {', '.join(CENTRES)}, got {centre!r}")
    by_kind = {k: [c for c in cases if c.kind == k] for k in KINDS}
    target = Volume.load(by_kind["target"][0].label, by_kind["target"][0].path) if by_kind["target"] else None
    source = Volume.load(by_kind["source"][0].label, by_kind["source"][0].path) if by_kind["source"] else None
    sweep = bool(by_kind["sweep"])
    outputs = [Volume.load(c.label, c.path) for c in (by_kind["sweep"] if sweep else by_kind["method"])]
    columns: list[tuple[str, Volume]] = ([("source", source)] if source else []) + [("output", v) for v in outputs]
    if target is not None:
        columns.append(("target", target))
    centre_how = "foreground"
    world = None
    if centre == "label":
        if by_kind["label"]:
            world = _label_centre(Volume.load(by_kind["label"][0].label, by_kind["label"][0].path))
        centre_how = "label" if world is not None else "foreground (no label map, or an empty one)"
    if world is None:
        world = _world_centre(target or outputs[-1])
    planes = ("axial", "sagittal")
    rows = [(p, "image") for p in planes] if sweep else [(p, kind) for p in planes for kind in ("image", "error")]
    ncol, nrow = len(columns), len(rows)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.3 * ncol + 0.6, 2.5 * nrow), squeeze=False)
    fig.patch.set_facecolor("black")
    info: dict = {"figure": name, "kind": "sweep" if sweep else "comparison", "centre": centre_how,
                  "centre_mm": [round(float(v), 2) for v in world], "panels": []}
    titles = {id(v): _metrics_title(v, target) for role, v in columns if role == "output"}
    err_im = None
    for r, (plane, kind) in enumerate(rows):
        for c, (role, vol) in enumerate(columns):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_facecolor("black")
            for spine in ax.spines.values():
                spine.set_visible(False)
            if kind == "image":
                sl, extent = vol.view(vol.data, plane, world)
                ax.imshow(sl, cmap="gray", vmin=0.0, vmax=1.0, extent=extent, interpolation="nearest")
                title = vol.label
                if sweep:
                    title += f"\n{vol.thickness:.3g} mm"
                if role == "output" and titles.get(id(vol)):
                    title += "\n" + titles[id(vol)]
                if r == 0 or sweep:
                    ax.set_title(title, color="white", fontsize=8)
                info["panels"].append({"row": r, "col": c, "plane": plane, "kind": kind, "title": title,
                                       "vmin": 0.0, "vmax": 1.0, "std": float(np.std(sl))})
            else:
                if role != "output" or target is None or not vol.same_grid(target):
                    ax.axis("off")
                    continue
                err = np.abs(vol.data - target.data)
                sl, extent = vol.view(err, plane, world)
                err_im = ax.imshow(sl, cmap="inferno", vmin=0.0, vmax=error_max, extent=extent, interpolation="nearest")
                info["panels"].append({"row": r, "col": c, "plane": plane, "kind": kind, "title": f"|{vol.label} - GT|",
                                       "vmin": 0.0, "vmax": error_max, "mean_error": float(err.mean())})
        axes[r, 0].set_ylabel(f"{plane}" + ("" if kind == "image" else "\n|error|"), color="white", fontsize=9)
        if kind == "error":
            axes[r, 0].axis("on")
            axes[r, 0].set_xticks([]), axes[r, 0].set_yticks([])
    if err_im is not None:
        cb = fig.colorbar(err_im, ax=axes.ravel().tolist(), fraction=0.015, pad=0.01)
        cb.ax.tick_params(colors="white", labelsize=7)
        cb.set_label("absolute error (normalised intensity)", color="white", fontsize=8)
    dest = Path(out_path)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor=fig.get_facecolor(), format="png")
    plt.close(fig)
    info["path"] = str(dest)
    return info


def render_all(cases_csv: str | os.PathLike, out_dir: str | os.PathLike, error_max: float = 0.3, dpi: int = 100,
               centre: str = "foreground") -> list[dict]:
    """Render every figure of a cases CSV into ``out_dir/<figure>.png``."""
    figures = read_cases(cases_csv)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [render_figure(name, cases, out / f"{name}.png", error_max=error_max, dpi=dpi, centre=centre)
            for name, cases in figures.items()]
