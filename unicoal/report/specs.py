"""The layout of the paper's Tables I-VI as data: which rows, column blocks, metrics and cells.

A table is a grid: body rows (:class:`Line`, grouped under headings like "T1 SR") times column
blocks (:class:`Block`, e.g. "T1-T2" or a method name), each block split into metric
sub-columns. A cell is identified by merging the row's and the block's selector fields
(method, dataset, task, source, target, scale) plus the metric. Adding a table or a baseline
means editing :data:`TABLE_SPECS`, never rendering code.

Method identifiers are what the pipeline writes in the ``method`` column of result rows
(compared case- and punctuation-insensitively); labels are what the paper prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

__all__ = [
    "Line",
    "Block",
    "TableSpec",
    "Selector",
    "TABLE_SPECS",
    "METRIC_DECIMALS",
    "HIGHER_IS_BETTER",
    "get_spec",
    "table_key",
]

#: printed decimals per metric (the paper: PSNR 2, SSIM 3, DSC 3)
METRIC_DECIMALS: dict[str, int] = {"PSNR": 2, "SSIM": 3, "DSC": 3, "MAE": 4}
HIGHER_IS_BETTER: dict[str, bool] = {"PSNR": True, "SSIM": True, "DSC": True, "MAE": False}

_SELECTOR_FIELDS = ("method", "dataset", "task", "source", "target", "scale", "metric")


@dataclass(frozen=True)
class Selector:
    """Identity of one table cell (all fields set once row and block are merged)."""

    method: str
    dataset: str
    task: str
    source: str
    target: str
    scale: float
    metric: str


@dataclass(frozen=True)
class _Fields:
    method: str | None = None
    dataset: str | None = None
    task: str | None = None
    source: str | None = None
    target: str | None = None
    scale: float | None = None
    metric: str | None = None

    def set_fields(self) -> dict:
        return {k: getattr(self, k) for k in _SELECTOR_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Line(_Fields):
    """One body row: its printed ``label``, its heading ``group`` ('' = none) and selector fields."""

    label: str = ""
    group: str = ""

    def __post_init__(self):
        if not self.label:
            raise ValueError("a table row needs a label")


@dataclass(frozen=True)
class Block(_Fields):
    """One column block: printed ``label``, selector fields, and its metric sub-columns.

    ``metrics=()`` means one unnamed sub-column whose metric comes from the row (Table V).
    """

    label: str = ""
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """One paper table. ``best_across``: bold the best value per column ('rows') or per row and
    metric across blocks ('blocks'). ``kind``: 'numeric' (mean +- std) or 'check' (a tick mark).
    ``reference_method``: the method other methods are tested against (Uni-COAL's variant)."""

    name: str
    roman: str
    title: str
    rows: tuple[Line, ...]
    blocks: tuple[Block, ...]
    best_across: str = "rows"
    kind: str = "numeric"
    reference_method: str = "Uni-COAL"
    corner: str = ""
    note: str = ""

    def __post_init__(self):
        if self.best_across not in ("rows", "blocks"):
            raise ValueError(f"{self.name}: best_across must be 'rows' or 'blocks', got {self.best_across!r}")
        if self.kind not in ("numeric", "check"):
            raise ValueError(f"{self.name}: kind must be 'numeric' or 'check', got {self.kind!r}")
        if not self.rows or not self.blocks:
            raise ValueError(f"{self.name}: a table needs rows and blocks")
        for row in self.rows:
            for block in self.blocks:
                for metric in self.metrics_of(block):
                    self.selector(row, block, metric)  # raises on conflicts / missing fields

    @staticmethod
    def metrics_of(block: Block) -> tuple[str | None, ...]:
        return block.metrics or (None,)

    def selector(self, row: Line, block: Block, metric: str | None) -> Selector:
        merged: dict = {}
        for part in (row.set_fields(), block.set_fields(), {} if metric is None else {"metric": metric}):
            for k, v in part.items():
                if k in merged and merged[k] != v:
                    raise ValueError(f"{self.name}: row {row.label!r} and block {block.label!r} disagree on {k}")
                merged[k] = v
        if self.kind == "check":  # capability tables do not use dataset/modality/scale
            merged = {"dataset": "", "source": "", "target": "", "scale": 1.0, **merged}
        missing = [k for k in _SELECTOR_FIELDS if k not in merged]
        if missing:
            raise ValueError(f"{self.name}: cell ({row.label!r}, {block.label!r}, {metric}) lacks {', '.join(missing)}")
        return Selector(**{k: merged[k] for k in _SELECTOR_FIELDS})

    def cells(self) -> Iterator[tuple[Line, Block, str | None, Selector]]:
        for row in self.rows:
            for block in self.blocks:
                for metric in self.metrics_of(block):
                    yield row, block, metric, self.selector(row, block, metric)

    @property
    def groups(self) -> tuple[str, ...]:
        seen: list[str] = []
        for r in self.rows:
            if r.group not in seen:
                seen.append(r.group)
        return tuple(seen)


def table_key(name: str) -> str:
    """Normalise a table name: ``'Table IV'``, ``'table4'``, ``'4'``, ``'IV'`` -> ``'table4'``; '' stays ''."""
    t = name.strip().lower().replace("table", "").replace("_", "").replace(" ", "")
    if not t:
        return ""
    romans = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
    if t in romans:
        return f"table{romans[t]}"
    if t.isdigit():
        return f"table{int(t)}"
    raise ValueError(f"unknown table name {name!r}; expected e.g. table1 .. table6")


# ---------------------------------------------------------------------------------------------
# The paper's tables. Datasets: BraTS, CSDH, ADNI, IXI.

_PSNR_SSIM_DSC = ("PSNR", "SSIM", "DSC")
_PSNR_SSIM = ("PSNR", "SSIM")


def _methods(group: str, *pairs: tuple[str, str]) -> tuple[Line, ...]:
    return tuple(Line(label=label, method=method, group=group) for method, label in pairs)


_TABLE1 = TableSpec(
    name="table1", roman="I",
    title="Quantitative results for cross-modality synthesis on the BRATS dataset.",
    rows=_methods("2D-based Cross-modality Synthesis",
                  ("pix2pix", "pix2pix [49]"), ("AutoGAN", "AutoGAN [17]"), ("ResViT", "ResViT [2]"),
                  ("Uni-COAL_one", "Uni-COAL_one"))
    + _methods("2.5D or 3D-based Cross-modality Synthesis",
               ("pGAN", "pGAN [12]"), ("SC-GAN", "SC-GAN [11]"), ("ProvoGAN", "ProvoGAN [13]"),
               ("Uni-COAL_multi", "Uni-COAL_multi")),
    blocks=tuple(Block(label=f"{s}-{t}", dataset="BraTS", task="CMS", source=s, target=t, scale=1.0, metrics=_PSNR_SSIM_DSC)
                 for s, t in (("T1", "T2"), ("T2", "FLAIR"), ("FLAIR", "T1"))),
    reference_method="Uni-COAL_multi",
)

_SR_BLOCKS = (
    Block(label="CSDH (8x)", dataset="CSDH", scale=8.0, metrics=_PSNR_SSIM_DSC),
    Block(label="ADNI (5x)", dataset="ADNI", scale=5.0, metrics=_PSNR_SSIM),
)

_TABLE2 = TableSpec(
    name="table2", roman="II",
    title="Quantitative results for super-resolution on the CSDH and ADNI datasets.",
    rows=tuple(Line(label=lab, method=m, task="SR", source="T1", target="T1")
               for m, lab in (("DCSRN", "DCSRN [14]"), ("DeepResolve", "DeepResolve [5]"), ("SynthSR", "SynthSR [6]"),
                              ("Uni-COAL_sr", "Uni-COAL_sr"))),
    blocks=_SR_BLOCKS,
    reference_method="Uni-COAL_sr",
)

_TABLE3 = TableSpec(
    name="table3", roman="III",
    title="Quantitative results for cross-modality synthesis and super-resolution on the CSDH and ADNI datasets.",
    rows=tuple(Line(label=lab, method=m, task="CMSR", source="FLAIR", target="T1")
               for m, lab in (("SC-GAN", "SC-GAN [11]"), ("SynthSR", "SynthSR [6]"), ("ProvoGAN", "ProvoGAN [13]"),
                              ("Uni-COAL_cmsr", "Uni-COAL_cmsr"))),
    blocks=_SR_BLOCKS,
    reference_method="Uni-COAL_cmsr",
)


def _ixi_rows() -> tuple[Line, ...]:
    rows: list[Line] = []
    for a, b in (("T1", "T2"), ("T2", "PD"), ("PD", "T1")):
        for scale in (2, 4, 6):
            rows.append(Line(label=f"{scale}x", group=f"{a} SR", dataset="IXI", task="SR", source=a, target=a, scale=float(scale)))
        for scale in (1, 2, 4, 6):
            rows.append(Line(label=f"{scale}x", group=f"{a}-{b} CMS/CMSR", dataset="IXI", task="CMS" if scale == 1 else "CMSR",
                             source=a, target=b, scale=float(scale)))
    return tuple(rows)


_IXI_METHODS = ("ResViT", "ArSSR", "SC-GAN", "ProvoGAN", "SynthSR", "Uni-COAL")

_TABLE4 = TableSpec(
    name="table4", roman="IV",
    title="Quantitative results for arbitrary cross-modality synthesis and super-resolution.",
    rows=_ixi_rows(),
    blocks=tuple(Block(label=m, method=m, metrics=_PSNR_SSIM) for m in _IXI_METHODS),
    best_across="blocks",
    reference_method="Uni-COAL",
    corner="Scale",
    note="The paper also bolds Uni-COAL's 27.13 (T2 SR, 6x, PSNR) although SynthSR's 27.31 is higher.",
)

_TABLE5 = TableSpec(
    name="table5", roman="V",
    title=("The summary of the relevant work for CMS, SR, or CMSR with various input/output combinations. "
           "Spec. stands for \"specific\" that the model is trained for the specific input/output combination. "
           "Arb. stands for \"arbitrary\" that the model can deal with arbitrary input scenarios or produce arbitrary outputs."),
    rows=tuple(Line(label=cap, group=task, task=task, metric=cap)
               for task in ("CMS", "SR", "CMSR") for cap in ("Spec.", "Arb. In", "Arb. Out")),
    blocks=tuple(Block(label=m, method=m) for m in _IXI_METHODS),
    kind="check",
    corner="Tasks",
    note="Capabilities of each method (not a measurement): rendered from the reference CSV.",
)

_TABLE6 = TableSpec(
    name="table6", roman="VI",
    title=("Quantitative results for ablation studies. Experiments are all performed with simultaneous "
           "cross-modality synthesis and super-resolution on the CSDH dataset."),
    rows=tuple(Line(label=lab, method=m)
               for m, lab in (("Uni-COAL_ablation_baseline", "Baseline"),
                              ("Uni-COAL_ablation_afdecoder", "+Alias-free Decoder"),
                              ("Uni-COAL_ablation_afencoder", "+Alias-free Encoder"),
                              ("Uni-COAL_ablation_projection", "+Projection Discriminator"),
                              ("Uni-COAL_cmsr", "+SAM-guided Strategy"))),
    blocks=(Block(label="CSDH (CMSR, 8x)", dataset="CSDH", task="CMSR", source="FLAIR", target="T1", scale=8.0,
                  metrics=_PSNR_SSIM_DSC),),
    reference_method="Uni-COAL_cmsr",
    corner="Configurations",
)

TABLE_SPECS: dict[str, TableSpec] = {s.name: s for s in (_TABLE1, _TABLE2, _TABLE3, _TABLE4, _TABLE5, _TABLE6)}


def get_spec(name: str) -> TableSpec:
    key = table_key(name)
    if key not in TABLE_SPECS:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_SPECS)}")
    return TABLE_SPECS[key]
