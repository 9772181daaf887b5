"""The layout of the paper's Tables I-VI as data: which rows, column blocks, metrics and cells.

A table is a grid: body rows (:class:`Line`, grouped under headings like "T1 SR") times column
blocks (:class:`Block`, e.g. "T1-T2" or a method name), each block split into metric
sub-columns. A cell is identified by merging the row's and the block's selector fields
(method, dataset, task, source, target, scale) plus the metric. Adding a table or a baseline
means editing :data:`TABLE_SPECS`, never rendering code.

Method identifiers are what the pipeline writes in the ``method`` column of result rows
(compared case- and punctuation-insensitively); labels are what the paper prints.

Rows and blocks have a ``role``: ``paper`` (printed in the paper), ``reference`` (a row the paper
does not have but every reader wants: interpolation, "copy the source"; never bold, listed
under "Reference rows (not in the paper)") or ``real`` (the nnU-Net Dice of the *real* target
images, the upper bound of every DSC column; its cell reads the rows of method ``Real``, task
empty, source = target, scale 1, and its image metrics do not apply).

Significance: each row group may name its own reference method (``TableSpec.group_references``;
Table I: Uni-COAL_one for the 2D group, Uni-COAL_multi for the 2.5D/3D group, paper Sec. IV-C1);
:func:`reference_method_for` is the one lookup ``unicoal stats`` and ``unicoal tables`` share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

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
    "reference_method_for",
    "holm_family",
    "reference_methods",
    "ROLES",
    "REFERENCE_GROUP",
    "METHOD_NOTES",
    "METHOD_NOTE_MARK",
]

#: what a method's published code leaves open, noted under every table that has the method (keyed
#: by :func:`unicoal.evaluate.stats.method_key` of the row's method; docs/fidelity.md)
METHOD_NOTES: dict[str, str] = {
    "autogan": "cell sequence not released; ours: pfpfpfpfpfpf (parallel and fusion modules alternating in each "
               "stage of the authors' search space; unicoal/models/baselines/autogan.py)",
}
#: the mark of a row with a :data:`METHOD_NOTES` entry
METHOD_NOTE_MARK = "¶"

#: printed decimals per metric (the paper: PSNR 2, SSIM 3, DSC 3)
METRIC_DECIMALS: dict[str, int] = {"PSNR": 2, "SSIM": 3, "DSC": 3, "MAE": 4}
HIGHER_IS_BETTER: dict[str, bool] = {"PSNR": True, "SSIM": True, "DSC": True, "MAE": False}

_SELECTOR_FIELDS = ("method", "dataset", "task", "source", "target", "scale", "metric")
ROLES: tuple[str, ...] = ("paper", "reference", "real")
REFERENCE_GROUP = "Reference rows (not in the paper)"


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
    role: str = "paper"

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")

    def set_fields(self) -> dict:
        return {k: getattr(self, k) for k in _SELECTOR_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class Line(_Fields):
    """One body row: its printed ``label``, its heading ``group`` ('' = none) and selector fields."""

    label: str = ""
    group: str = ""

    def __post_init__(self):
        super().__post_init__()
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
    group_references: tuple[tuple[str, str], ...] = ()  # (row group, its reference method)
    rows_from: str = ""  # read the result rows of this table (a derived table, e.g. BraTS regions)
    in_paper: bool = True

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
        if "real" in (row.role, block.role) and "target" in merged:  # the real target images themselves
            merged.update(task="", source=merged["target"], scale=1.0)
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
    def source_table(self) -> str:
        """The ``table`` value of the result rows this table shows."""
        return self.rows_from or self.name

    def role_of(self, row: Line, block: Block) -> str:
        return next((r for r in ("real", "reference") if r in (row.role, block.role)), "paper")

    def reference_for(self, method: str) -> str:
        """The method ``method`` is tested against: its row group's reference, else the table's."""
        from unicoal.evaluate.stats import method_key

        refs = dict(self.group_references)
        key = method_key(method)
        for line in self.rows:
            if line.method is not None and method_key(line.method) == key and line.group in refs:
                return refs[line.group]
        return self.reference_method

    @property
    def references(self) -> tuple[str, ...]:
        """Every reference method of the table (the table's and the groups'), in order."""
        out = [r for _, r in self.group_references]
        return tuple(dict.fromkeys(out + [self.reference_method]))

    @property
    def groups(self) -> tuple[str, ...]:
        seen: list[str] = []
        for r in self.rows:
            if r.group not in seen:
                seen.append(r.group)
        return tuple(seen)


def table_key(name: str) -> str:
    """Normalise a table name: ``'Table IV'``, ``'table4'``, ``'4'``, ``'IV'`` -> ``'table4'``; '' stays ''.
    Derived tables keep their name (``'table1_regions'``)."""
    if name.strip().lower() in _DERIVED:
        return name.strip().lower()
    t = name.strip().lower().replace("table", "").replace("_", "").replace(" ", "")
    if not t:
        return ""
    romans = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
    if t in romans:
        return f"table{romans[t]}"
    if t.isdigit():
        return f"table{int(t)}"
    raise ValueError(f"unknown table name {name!r}; expected e.g. table1 .. table6")


_DERIVED = ("table1_regions",)

# ---------------------------------------------------------------------------------------------
# The paper's tables. Datasets: BraTS, CSDH, ADNI, IXI.

_PSNR_SSIM_DSC = ("PSNR", "SSIM", "DSC")
_PSNR_SSIM = ("PSNR", "SSIM")


def _methods(group: str, *pairs: tuple[str, str]) -> tuple[Line, ...]:
    return tuple(Line(label=label, method=method, group=group) for method, label in pairs)


_REAL_LABEL = "Real (upper bound)"


def _reference_rows(*pairs: tuple[str, str], real: bool = True, **fields) -> tuple[Line, ...]:
    """Rows the paper does not have: method rows with role ``reference`` and the ``Real`` row."""
    rows = tuple(Line(label=label, method=method, group=REFERENCE_GROUP, role="reference", **fields) for method, label in pairs)
    if real:
        rows += (Line(label=_REAL_LABEL, method="Real", group=REFERENCE_GROUP, role="real", **fields),)
    return rows


_TABLE1_GROUPS = ("2D-based Cross-modality Synthesis", "2.5D or 3D-based Cross-modality Synthesis")
_TABLE1_ROWS = (
    _methods(_TABLE1_GROUPS[0], ("pix2pix", "pix2pix [49]"), ("AutoGAN", "AutoGAN [17]"), ("ResViT", "ResViT [2]"),
             ("Uni-COAL_one", "Uni-COAL_one"))
    + _methods(_TABLE1_GROUPS[1], ("pGAN", "pGAN [12]"), ("SC-GAN", "SC-GAN [11]"), ("ProvoGAN", "ProvoGAN [13]"),
               ("Uni-COAL_multi", "Uni-COAL_multi"))
)
_TABLE1_PAIRS = (("T1", "T2"), ("T2", "FLAIR"), ("FLAIR", "T1"))
_TABLE1_REFS = ((_TABLE1_GROUPS[0], "Uni-COAL_one"), (_TABLE1_GROUPS[1], "Uni-COAL_multi"))
_TABLE1_NOTE = ("Significance (Sec. IV-C1): the 2D group is tested against Uni-COAL_one, the 2.5D/3D group and "
                "the reference rows against Uni-COAL_multi.")


_TABLE1 = TableSpec(
    name="table1", roman="I",
    title="Quantitative results for cross-modality synthesis on the BRATS dataset.",
    rows=_TABLE1_ROWS + _reference_rows(("Copy", "Copy source")),
    blocks=tuple(Block(label=f"{s}-{t}", dataset="BraTS", task="CMS", source=s, target=t, scale=1.0, metrics=_PSNR_SSIM_DSC)
                 for s, t in _TABLE1_PAIRS),
    reference_method="Uni-COAL_multi",
    group_references=_TABLE1_REFS,
    note=_TABLE1_NOTE,
)

_TABLE1_REGIONS = TableSpec(
    name="table1_regions", roman="I-R",
    title=("BraTS region Dice of Table I's methods: whole tumour (WT), tumour core (TC) and enhancing tumour (ET) "
           "(not in the paper, which prints one DSC column)."),
    rows=_TABLE1_ROWS + _reference_rows(("Copy", "Copy source")),
    blocks=tuple(Block(label=f"{s}-{t}", dataset="BraTS", task="CMS", source=s, target=t, scale=1.0,
                       metrics=("DSC_WT", "DSC_TC", "DSC_ET"))
                 for s, t in _TABLE1_PAIRS),
    reference_method="Uni-COAL_multi",
    group_references=_TABLE1_REFS,
    note=_TABLE1_NOTE + " Table I's DSC column is the whole tumour (WT) unless `unicoal segment dice --summary` says otherwise.",
    rows_from="table1",
    in_paper=False,
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
                              ("Uni-COAL_sr", "Uni-COAL_sr")))
    + _reference_rows(("Linear", "Linear interpolation"), ("Cubic", "Cubic interpolation"), ("Lanczos", "Lanczos interpolation"),
                      task="SR", source="T1", target="T1"),
    blocks=_SR_BLOCKS,
    reference_method="Uni-COAL_sr",
)

_TABLE3 = TableSpec(
    name="table3", roman="III",
    title="Quantitative results for cross-modality synthesis and super-resolution on the CSDH and ADNI datasets.",
    rows=tuple(Line(label=lab, method=m, task="CMSR", source="FLAIR", target="T1")
               for m, lab in (("SC-GAN", "SC-GAN [11]"), ("SynthSR", "SynthSR [6]"), ("ProvoGAN", "ProvoGAN [13]"),
                              ("Uni-COAL_cmsr", "Uni-COAL_cmsr")))
    + _reference_rows(("Copy", "Copy source (linear)"), task="CMSR", source="FLAIR", target="T1"),
    blocks=_SR_BLOCKS,
    reference_method="Uni-COAL_cmsr",
    note="Copy source (linear): the FLAIR input itself, linearly interpolated along the slice axis onto the T1 grid.",
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
_IXI_REFERENCES = (("Linear", "Linear†"), ("Cubic", "Cubic†"), ("Lanczos", "Lanczos†"), ("Copy", "Copy source†"))

_TABLE4 = TableSpec(
    name="table4", roman="IV",
    title="Quantitative results for arbitrary cross-modality synthesis and super-resolution.",
    rows=_ixi_rows(),
    blocks=tuple(Block(label=m, method=m, metrics=_PSNR_SSIM) for m in _IXI_METHODS)
    + tuple(Block(label=lab, method=m, metrics=_PSNR_SSIM, role="reference") for m, lab in _IXI_REFERENCES),
    best_across="blocks",
    reference_method="Uni-COAL",
    corner="Scale",
    note=("The paper also bolds Uni-COAL's 27.13 (T2 SR, 6x, PSNR) although SynthSR's 27.31 is higher. "
          "† reference columns, not in the paper: interpolation along the slice axis (SR rows) and the source contrast "
          "copied onto the target grid, linearly interpolated along the slice axis for CMSR (CMS and CMSR rows)."),
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
                              ("Uni-COAL_cmsr", "+SAM-guided Strategy")))
    + _reference_rows(("Copy", "Copy source (linear)")),
    blocks=(Block(label="CSDH (CMSR, 8x)", dataset="CSDH", task="CMSR", source="FLAIR", target="T1", scale=8.0,
                  metrics=_PSNR_SSIM_DSC),),
    reference_method="Uni-COAL_cmsr",
    corner="Configurations",
    note="Copy source (linear): the FLAIR input itself, linearly interpolated along the slice axis onto the T1 grid "
         "(the trivial reference every rung must beat; not in the paper).",
)

TABLE_SPECS: dict[str, TableSpec] = {s.name: s for s in (_TABLE1, _TABLE2, _TABLE3, _TABLE4, _TABLE5, _TABLE6, _TABLE1_REGIONS)}


def reference_methods() -> set[str]:
    """The :func:`~unicoal.evaluate.stats.method_key` of every row that is not a method of the
    paper (the copy-source and interpolation references, the real-image upper bound), over all tables."""
    from unicoal.evaluate.stats import method_key

    out = {method_key(line.method) for spec in TABLE_SPECS.values() for line in spec.rows if line.role != "paper" and line.method}
    out |= {method_key(b.method) for spec in TABLE_SPECS.values() for b in spec.blocks if b.role != "paper" and b.method}
    return out


def holm_family(table: str, method: str) -> str:
    """``paper`` or ``reference``: the reference rows of a table that the paper does not have are
    Holm-adjusted as a family of their own (``unicoal stats``), so they do not weaken the paper's tests."""
    from unicoal.evaluate.stats import method_key

    key = table_key(table) if table else ""
    spec = TABLE_SPECS.get(key)
    if spec is None:
        return "paper"
    k = method_key(method)
    roles = {line.role for line in spec.rows if line.method and method_key(line.method) == k}
    roles |= {b.role for b in spec.blocks if b.method and method_key(b.method) == k}
    return "reference" if roles and "paper" not in roles else "paper"


def reference_method_for(table: str, method: str, present: Sequence[str] = ()) -> str | None:
    """The method ``method`` is tested against in ``table`` (``unicoal stats --reference-method auto``).

    A known table: its row group's reference (Table I: Uni-COAL_one for the 2D group), else the
    table's. Rows without a table: the first reference method of any table present in the cell.
    """
    from unicoal.evaluate.stats import method_key

    key = table_key(table) if table else ""
    if key in TABLE_SPECS:
        return TABLE_SPECS[key].reference_for(method)
    have = {method_key(m) for m in present}
    candidates = [r for s in TABLE_SPECS.values() for r in s.references] + ["Uni-COAL"]
    return next((c for c in candidates if method_key(c) in have), None)


def get_spec(name: str) -> TableSpec:
    key = table_key(name)
    if key not in TABLE_SPECS:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_SPECS)}")
    return TABLE_SPECS[key]
