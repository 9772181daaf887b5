"""Where subjects come from: the embedded phantom cohort and adapters for IXI, BraTS and manifests.

Every source produces the same samplesheet CSV (``subject,modality,path[,label][,split]``), see
:mod:`unicoal.cohort.samplesheet`. Submodules import their heavy dependencies lazily.
"""
from __future__ import annotations

from unicoal.cohort.samplesheet import (
    MODALITIES,
    SPLITS,
    SampleRow,
    assign_splits,
    read_samplesheet,
    with_splits,
    write_samplesheet,
)

__all__ = [
    "MODALITIES",
    "SPLITS",
    "SampleRow",
    "assign_splits",
    "read_samplesheet",
    "with_splits",
    "write_samplesheet",
]
