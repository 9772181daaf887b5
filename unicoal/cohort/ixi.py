"""IXI adapter: a local folder of the official IXI NIfTI files -> samplesheet.

The paper (Sec. IV, "IXI") uses the 309 healthy subjects scanned at Guy's Hospital (Philips 1.5 T,
0.9375 x 0.9375 x 1.25 mm) with T1, T2 and PD images, split 285 / 12 / 12 subjects for training,
validation and testing. Official file names look like ``IXI002-Guys-0828-T1.nii.gz``
(``IXI<id>-<hospital>-<scan>-<modality>``; hospitals ``Guys``, ``HH``, ``IOP``). Files are
matched by subject id (``IXI002``) anywhere below the root; only subjects with every requested
modality are kept.

``download_ixi`` fetches the official tarballs (several GB each) when a user asks for it
(``unicoal cohort ixi --download``); it is never called by tests or by the pipeline.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tarfile
from pathlib import Path
from typing import Sequence

from unicoal.cohort.samplesheet import SampleRow, save_cohort
from unicoal.errors import InputError

__all__ = ["IXI_URL", "IXI_MD5", "IXI_SITES", "PAPER_SPLIT", "parse_ixi_name", "scan_ixi", "ixi_samplesheet", "download_ixi"]

IXI_URL = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/IXI-{modality}.tar"
# md5 of the official tarballs (as published with TorchIO's IXI dataset class).
IXI_MD5 = {
    "T1": "34901a0593b41dd19c1a1f746eac2d58",
    "T2": "e3140d78730ecdd32ba92da48c0a9aaa",
    "PD": "88ecd9d1fa33cb4a2278183b42ffd749",
}
IXI_SITES = ("Guys", "HH", "IOP")
PAPER_SPLIT = (285, 12, 12)  # train / val / test subjects of the 309 Guy's subjects
_NAME_RE = re.compile(r"^(IXI\d+)-([A-Za-z]+)-(\d+)-(T1|T2|PD)\.nii(?:\.gz)?$")


def parse_ixi_name(name: str) -> tuple[str, str, str] | None:
    """``IXI002-Guys-0828-T1.nii.gz`` -> ``("IXI002", "Guys", "T1")``; ``None`` for other files."""
    m = _NAME_RE.match(Path(name).name)
    return (m.group(1), m.group(2), m.group(4)) if m else None


def _site(site: str | None) -> str | None:
    if site is None or site.lower() in ("all", "any", "*", ""):
        return None
    for s in IXI_SITES:
        if s.lower() == site.lower():
            return s
    raise InputError(None, f"unknown IXI site {site!r} (allowed: {', '.join(IXI_SITES)} or all)", "use --site Guys (paper), HH, IOP or all")


def scan_ixi(root: str | os.PathLike, *, site: str | None = "Guys", modalities: Sequence[str] = ("T1", "T2", "PD")) -> list[SampleRow]:
    """Rows for every IXI subject below ``root`` (at ``site``) that has all ``modalities``."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(base, "IXI root folder not found", "give the folder holding the extracted IXI-T1/T2/PD files (or add --download)")
    want_site = _site(site)
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(base.rglob("IXI*.nii*")):
        parsed = parse_ixi_name(path.name)
        if parsed is None:
            continue
        subject, hospital, modality = parsed
        if want_site is not None and hospital != want_site:
            continue
        if modality not in modalities:
            continue
        slot = found.setdefault(subject, {})
        if modality in slot:
            raise InputError(path, f"second {modality} file for {subject} (also {slot[modality]})", "keep one copy of each IXI file below --root")
        slot[modality] = path
    rows = []
    for subject in sorted(found):
        files = found[subject]
        if all(m in files for m in modalities):
            rows.extend(SampleRow(subject, m, files[m].resolve()) for m in modalities)
    return rows


def ixi_samplesheet(root: str | os.PathLike, out: str | os.PathLike, *, site: str | None = "Guys",
                    fractions: Sequence[float] = PAPER_SPLIT, seed: int = 0, download: bool = False) -> Path:
    """Write the IXI samplesheet (paths absolute, splits by subject); optionally download first."""
    if download:
        download_ixi(root)
    rows = scan_ixi(root, site=site)
    if not rows:
        where = f"site {site}" if _site(site) else "any site"
        raise InputError(root, f"no IXI subject with T1, T2 and PD files ({where})", "check --root and --site, or add --download")
    return save_cohort(rows, out, fractions=fractions, seed=seed, source=root, relative=False)


def _md5(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download_ixi(root: str | os.PathLike, modalities: Sequence[str] = ("T1", "T2", "PD")) -> Path:
    """Download and extract the official IXI tarballs into ``root/IXI-<MOD>/`` (md5-checked).

    Skips modalities already extracted (a ``.complete`` marker). Needs internet and ~12 GB.
    """
    # user-initiated download: only reached through `unicoal cohort ixi --download`
    import urllib.request

    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for m in modalities:
        if m not in IXI_MD5:
            raise InputError(None, f"no IXI tarball for modality {m!r}", f"use {', '.join(IXI_MD5)}")
        dest = base / f"IXI-{m}"
        if (dest / ".complete").exists():
            continue
        tar_path = base / f"IXI-{m}.tar"
        if not tar_path.exists() or _md5(tar_path) != IXI_MD5[m]:
            part = tar_path.with_suffix(".tar.part")
            url = IXI_URL.format(modality=m)
            print(f"downloading {url} -> {tar_path}", file=sys.stderr)
            try:
                urllib.request.urlretrieve(url, part)  # user-initiated download
            except OSError as err:
                part.unlink(missing_ok=True)
                raise InputError(url, f"download failed ({err})", "check the internet connection or download the tarball by hand into --root") from None
            got = _md5(part)
            if got != IXI_MD5[m]:
                part.unlink(missing_ok=True)
                raise InputError(url, f"md5 mismatch (got {got}, expected {IXI_MD5[m]})", "retry the download")
            os.replace(part, tar_path)
        dest.mkdir(exist_ok=True)
        with tarfile.open(tar_path) as tf:
            tf.extractall(dest, filter="data")
        (dest / ".complete").write_text(IXI_MD5[m] + "\n")
    return base
