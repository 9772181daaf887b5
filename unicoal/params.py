"""Validate the pipeline's parameters against ``nextflow_schema.json``, in Python and offline.

The schema follows the nf-core layout (JSON Schema draft 2020-12: parameter groups under
``$defs``, joined with ``allOf``), so nf-core tooling can read it too; this module implements the
subset the pipeline uses (``type`` incl. unions with ``null``, ``enum``, ``pattern``,
``minimum``/``maximum``, ``format: file-path|directory-path`` with ``exists``) plus the rules
that span several parameters. No plugin is needed, so validation runs without internet.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from unicoal.errors import InputError

__all__ = ["ParamSpec", "load_schema", "validate_params", "validate_file", "camel_to_snake"]

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of the schema."""

    name: str
    types: tuple[str, ...]
    enum: tuple | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    format: str | None = None
    exists: bool = False
    description: str = ""

    def check(self, value: Any) -> str | None:
        """The problem with ``value`` (one phrase), or ``None`` when it is valid."""
        if not any(_TYPES[t](value) for t in self.types):
            # Nextflow passes numbers given on the command line as numbers, but a number given
            # in a params file for a string parameter is a string mistake worth reporting.
            return f"must be {' or '.join(self.types)}, got {type(value).__name__} {value!r}"
        if value is None:
            return None
        if self.enum is not None and value not in self.enum:
            return f"must be one of {', '.join(map(str, self.enum))}, got {value!r}"
        if self.pattern is not None and isinstance(value, str) and not re.search(self.pattern, value):
            return f"{value!r} does not match the pattern {self.pattern}"
        if self.minimum is not None and isinstance(value, (int, float)) and value < self.minimum:
            return f"must be >= {self.minimum:g}, got {value}"
        if self.maximum is not None and isinstance(value, (int, float)) and value > self.maximum:
            return f"must be <= {self.maximum:g}, got {value}"
        if self.exists and isinstance(value, str) and value:
            p = Path(os.path.expanduser(value))
            if self.format == "directory-path" and not p.is_dir():
                return f"folder not found: {value}"
            if self.format == "file-path" and not p.is_file():
                return f"file not found: {value}"
        return None


def _spec(name: str, prop: Mapping[str, Any]) -> ParamSpec:
    t = prop.get("type", "string")
    types = tuple(t) if isinstance(t, list) else (t,)
    bad = [x for x in types if x not in _TYPES]
    if bad:
        raise ValueError(f"parameter {name}: unsupported type(s) {bad}")
    return ParamSpec(
        name=name, types=types, enum=tuple(prop["enum"]) if "enum" in prop else None, pattern=prop.get("pattern"),
        minimum=prop.get("minimum"), maximum=prop.get("maximum"), format=prop.get("format"),
        exists=bool(prop.get("exists", False)), description=prop.get("description", ""),
    )


def load_schema(path: str | os.PathLike) -> dict[str, ParamSpec]:
    """Parameters of an nf-core style schema (``$defs`` groups and/or top-level ``properties``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "schema not found", "pass nextflow_schema.json of the pipeline")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise InputError(p, f"not valid JSON ({err})", "fix the schema") from None
    props: dict[str, Any] = dict(doc.get("properties", {}))
    for group in (doc.get("$defs") or doc.get("definitions") or {}).values():
        props.update(group.get("properties", {}))
    return {name: _spec(name, prop) for name, prop in props.items()}


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _cross_checks(params: Mapping[str, Any]) -> list[str]:
    """Rules that span several parameters."""
    problems = []
    if not params.get("input") and params.get("dataset") in ("ixi", "brats") and not params.get("data_root"):
        problems.append(f"--dataset {params['dataset']} needs --data_root (the folder of the download) or --input SHEET")
    if params.get("skullstrip") == "none" and params.get("convention") == "brainmask":
        problems.append("--convention brainmask needs a brain mask: set --skullstrip deepbet|threshold")
    return problems


def validate_params(params: Mapping[str, Any], schema: Mapping[str, ParamSpec]) -> list[str]:
    """All problems of ``params`` (empty when valid), each one line naming the parameter."""
    problems: list[str] = []
    known = set(schema)
    for name, value in params.items():
        if name in schema:
            msg = schema[name].check(value)
            if msg:
                problems.append(f"--{name} {msg}")
            continue
        # Nextflow adds camelCase copies of kebab-case names; those are not new parameters
        alias = camel_to_snake(name).replace("-", "_")
        if alias in known or name.replace("-", "_") in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean --{close[0]}?)" if close else ""
        problems.append(f"--{name} is not a parameter of this pipeline{hint}")
    problems += _cross_checks(params)
    return problems


def validate_file(params_json: str | os.PathLike, schema_path: str | os.PathLike) -> dict:
    """Validate a params JSON file; raise :class:`InputError` listing every problem."""
    p = Path(params_json)
    if not p.is_file():
        raise InputError(p, "params file not found", "check the path")
    try:
        params = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise InputError(p, f"not valid JSON ({err})", "write the parameters as a JSON object") from None
    if not isinstance(params, dict):
        raise InputError(p, "parameters must be a JSON object", "write {\"name\": value, ...}")
    problems = validate_params(params, load_schema(schema_path))
    if problems:
        raise InputError(None, "invalid pipeline parameters: " + "; ".join(problems), "see `nextflow run main.nf --help` or docs/pipeline.md")
    return params
