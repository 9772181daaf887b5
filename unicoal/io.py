"""NIfTI and file I/O: validation with one-line errors, atomic writes, JSON sidecars.

Every writer goes through :func:`atomic_path`: the file appears complete or not at all.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from unicoal.errors import InputError

__all__ = [
    "atomic_path",
    "staged_outputs",
    "check_writable",
    "check_output_names",
    "load_volume",
    "save_volume",
    "read_json",
    "write_json",
    "write_csv",
    "read_csv",
    "sidecar_path",
    "nifti_stem",
    "software_versions",
]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: str | os.PathLike) -> str:
    """File name without ``.nii.gz`` / ``.nii`` (``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``)."""
    name = Path(path).name
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar next to a NIfTI file (``x.nii.gz`` -> ``x.json``)."""
    p = Path(path)
    return p.with_name(nifti_stem(p) + ".json")


def check_writable(path: str | os.PathLike) -> Path:
    """Create the parent folder of ``path`` if needed and check it is writable."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(p, f"cannot create output folder {parent} ({err.strerror})", "choose a writable output path") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(p, f"output folder {parent} is not writable", "choose a writable output path")
    if p.is_dir():
        raise InputError(p, "output path is a directory", "give a file name")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; rename it onto ``path`` on success.

    The temporary name keeps the full suffix (``.nii.gz``, ``.csv``) so writers that pick a
    format from the extension work. On any exception the temporary file is removed.
    """
    dest = check_writable(path)
    name = dest.name
    suffix = next((s for s in _NIFTI_SUFFIXES if name.endswith(s)), dest.suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{suffix}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staged_outputs(out_dir: str | os.PathLike) -> Iterator[Path]:
    """All-or-nothing outputs of one step: yield a hidden staging folder inside ``out_dir``.

    Write every output file into the yielded folder (under its final name). When the block
    succeeds, each file is moved onto ``out_dir`` (an atomic rename on one file system); on any
    exception nothing is moved and the staging folder is removed.
    """
    out = Path(out_dir)
    check_writable(out / ".probe")
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield stage
        for f in sorted(stage.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def load_volume(path: str | os.PathLike, *, allow_empty: bool = False):
    """Load a 3D NIfTI volume and validate it.

    Returns ``(data, img)``: ``data`` is float32 ``[X, Y, Z]`` and ``img`` the nibabel image
    (for its affine and header). A trailing singleton 4th dimension is dropped.

    Raises:
        InputError: missing or unreadable file, not 3D, NaN/inf values, or an empty volume.
    """
    import nibabel as nib

    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found", "check the path or the samplesheet")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a NIfTI file", "give a .nii or .nii.gz file")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(p, f"not a readable NIfTI file ({type(err).__name__}: {err})", "re-export or re-download the file") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(p, f"expected a 3D volume, got shape {tuple(data.shape)}", "split 4D series and pass one 3D volume")
    if data.size == 0 or min(data.shape) == 0:
        raise InputError(p, f"volume has no voxels (shape {tuple(data.shape)})", "check the file")
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise InputError(p, f"contains {bad} NaN or infinite voxels", "replace non-finite values (e.g. with 0) before running")
    if not allow_empty and not np.any(data):
        raise InputError(p, "volume is empty (all voxels are zero)", "check the file or the preceding step")
    affine = img.affine
    if affine is None or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(p, "has a singular or invalid affine", "fix the header (qform/sform)")
    return data, img


def save_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, *, dtype=np.float32, header=None) -> Path:
    """Write a 3D NIfTI atomically with the given affine (sform and qform both set)."""
    import nibabel as nib

    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"save_volume expects a 3D array, got shape {arr.shape}")
    img = nib.Nifti1Image(arr.astype(dtype, copy=False), np.asarray(affine, dtype=np.float64), header=header)
    img.set_sform(np.asarray(affine, dtype=np.float64), code=1)
    img.set_qform(np.asarray(affine, dtype=np.float64), code=1)
    img.header.set_data_dtype(dtype)
    dest = Path(path)
    with atomic_path(dest) as tmp:
        nib.save(img, str(tmp))
    return dest


def read_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found", "check the path")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(p, f"not valid JSON ({err})", "regenerate the file") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON atomically (sorted keys, indented); numpy values become plain numbers."""
    dest = Path(path)
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")
    return dest


def read_csv(path: str | os.PathLike, what: str = "file") -> tuple[list[str], list[dict]]:
    """Header (stripped, lower-case) and rows of the CSV ``path`` (UTF-8, a BOM allowed).

    ``what`` names the file in the fix of the one-line error an unreadable CSV raises
    (``samplesheet``, ``jobs file``)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            return header, list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(path, f"not a readable CSV ({err})", f"save the {what} as UTF-8 CSV") from None


def write_csv(path: str | os.PathLike, columns, records) -> Path:
    """Write dict ``records`` as CSV with header ``columns`` atomically."""
    import csv

    dest = Path(path)
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(columns))
            w.writeheader()
            w.writerows(records)
    return dest


def check_output_names(inputs, out_dir: str | os.PathLike) -> None:
    """Refuse inputs whose outputs ``out_dir/<stem>.nii.gz`` would collide or overwrite an input."""
    out = Path(out_dir)
    seen: dict[str, Path] = {}
    for p in map(Path, inputs):
        stem = nifti_stem(p)
        if stem in seen:
            raise InputError(p, f"has the same file name stem {stem!r} as {seen[stem]}", "rename one of the inputs so outputs do not collide")
        seen[stem] = p
        if (out / f"{stem}.nii.gz").resolve() == p.resolve():
            raise InputError(p, "the output would overwrite this input", "choose another --out-dir")


def software_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``unicoal`` and the named distributions (missing ones omitted)."""
    out = {}
    for name in ("unicoal", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name == "unicoal":
                import unicoal

                out[name] = unicoal.__version__
    return out
