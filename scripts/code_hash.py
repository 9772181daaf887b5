#!/usr/bin/env python3
"""Code hashes of the unicoal package: the whole package, each pipeline step, each method.

    python3 scripts/code_hash.py [--root DIR] --json

prints ``{"all": H, "steps": {step: H}, "train": {method: H}, "synthesize": {method: H},
"orphans": [...]}`` where every ``H`` is 16 hex digits computed as ``scripts/code_hash.sh`` does
(SHA-256 of the ``sha256sum`` listing ``<hex>  <path>`` of the files, sorted by path in byte
order, then ``pyproject.toml`` and ``requirements.lock.txt``), over a smaller set of files:

* ``all``: every file under ``unicoal/`` (identical to ``scripts/code_hash.sh``).
* ``steps``: one per ``unicoal`` subcommand (``unicoal/commands/<step>.py``): the modules that
  the command imports, found statically with :mod:`ast` (imports inside functions included,
  relative imports resolved, ``from pkg import submodule`` followed), the CLI entry
  (``unicoal/__main__.py``, ``unicoal/cli.py``), the ``__init__.py`` of every package on the
  way (their module-level imports followed), and the non-Python files the reached modules read
  (:data:`DATA`: configs, experiment tables, reference tables).
* ``train`` / ``synthesize``: one per method of the registry (``unicoal/methods.py``): the
  step's modules plus that method's own modules only. The registry and the predictor registry
  (``unicoal/predictors/__init__.py``) import each method's code inside builder functions; those
  imports are attributed to the method whose ``MethodSpec`` names the builder (also through
  helpers such as ``_slice_baseline("pix2pix", ...)`` whose ``importlib.import_module`` f-string
  is rendered with the helper's arguments), together with its predictor kind (``PREDICTORS``),
  its dataset kind (``unicoal.train.loop.DATASETS``) and its configs (``configs/<method>*.yaml``
  and their ``base:`` chain). So an edit to one network changes that method's hashes only.
  ``steps["train"]`` and ``steps["synthesize"]`` cover every method.
* ``orphans``: files under ``unicoal/`` that no step reaches statically (e.g. imported by a
  string at run time) and that are not declared test/benchmark helpers (:data:`HELPERS`). They
  are added to *every* step and method hash, so a new module can never escape the cache key;
  the list should stay empty.

Standard library only (Python >= 3.7), so the launch node's system ``python3`` runs it.
Exit status 1 with one ``code_hash.py: error: ...`` line when the package cannot be analysed
(a syntax error, an import of a unicoal module that does not exist, a registry entry whose
code cannot be found).
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import hashlib
import json
import os
import re
import sys
from pathlib import Path

COMMON = ("pyproject.toml", "requirements.lock.txt")
ENTRY = ("unicoal.__main__", "unicoal.cli")
#: modules whose function-level imports are per method / per predictor kind, not the step's
REGISTRIES = ("unicoal.methods", "unicoal.predictors")
#: module -> non-Python files it reads (globs relative to the repository root)
DATA = {
    "unicoal.train.config": ("unicoal/configs/*.yaml",),
    "unicoal.plan": ("unicoal/experiments/*.yaml",),
    "unicoal.report.reference": ("reports/reference/*.csv",),
    "unicoal.commands.params": ("nextflow_schema.json",),
}
#: configs of a method beyond ``configs/<method>.yaml`` and ``configs/<method>_*.yaml``
METHOD_CONFIGS = {"unicoal": ("paper.yaml", "tiny.yaml", "task_*.yaml")}
CONFIGS = "unicoal/configs/*.yaml"
#: modules that no step uses (test and benchmark helpers): in ``all`` only, not orphans
HELPERS = ("unicoal/models/equivariance.py", "unicoal/train/synthetic.py")


class HashError(Exception):
    """The package cannot be analysed: one line for the user."""


def digest(root: Path, files) -> str:
    """``scripts/code_hash.sh``'s recipe over ``files`` (paths relative to ``root``)."""
    lines = []
    for rel in sorted(set(files), key=lambda p: p.encode()) + list(COMMON):
        lines.append(f"{hashlib.sha256((root / rel).read_bytes()).hexdigest()}  {rel}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def package_files(root: Path) -> list:
    """Every file under ``unicoal/`` as code_hash.sh lists it (no __pycache__, no .pyc)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root / "unicoal"):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if not name.endswith(".pyc"):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return out


class Package:
    """The modules of ``unicoal`` and their imports (module-level and inside functions)."""

    def __init__(self, root: Path):
        self.root = root
        self.modules = {}  # dotted name -> path relative to root
        for rel in package_files(root):
            if rel.endswith(".py"):
                parts = rel[:-3].split("/")
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                self.modules[".".join(parts)] = rel
        self._parsed = {}

    def tree(self, module: str) -> ast.Module:
        if module not in self._parsed:
            path = self.root / self.modules[module]
            try:
                self._parsed[module] = ast.parse(path.read_text(encoding="utf-8"), str(path))
            except SyntaxError as err:
                raise HashError(f"{self.modules[module]}:{err.lineno}: cannot parse ({err.msg})") from None
        return self._parsed[module]

    def resolve(self, level: int, name: str, alias, where: str) -> str | None:
        """The unicoal module an import statement names (None: not unicoal)."""
        if level:
            pkg = where if self.modules[where].endswith("__init__.py") else where.rpartition(".")[0]
            for _ in range(level - 1):
                pkg = pkg.rpartition(".")[0]
            name = f"{pkg}.{name}" if name else pkg
        if not name or not (name == "unicoal" or name.startswith("unicoal.")):
            return None
        if alias is not None and f"{name}.{alias}" in self.modules:
            return f"{name}.{alias}"
        if name in self.modules:
            return name
        raise HashError(f"{self.modules[where]}: imports {name!r}, which is no module of the package")

    def imports(self, module: str, node=None) -> tuple:
        """``(module-level imports, imports inside functions)`` of ``module`` (or of ``node`` in it)."""
        top, inner = set(), set()

        def visit(n, in_function: bool) -> None:
            for child in ast.iter_child_nodes(n):
                nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, ast.Import):
                    for a in child.names:
                        m = self.resolve(0, a.name, None, module)
                        if m:
                            (inner if in_function else top).add(m)
                elif isinstance(child, ast.ImportFrom):
                    for a in child.names:
                        m = self.resolve(child.level, child.module or "", a.name, module)
                        if m:
                            (inner if in_function else top).add(m)
                visit(child, nested)

        visit(self.tree(module) if node is None else node, node is not None)
        return top, inner

    def closure(self, starts) -> set:
        """Files of ``starts`` and everything they import (see the module docstring)."""
        files, full, light = set(), set(), set()

        def visit(module: str, explicit: bool) -> None:
            if module in full or (not explicit and module in light):
                return
            (full if explicit else light).add(module)
            files.add(self.modules[module])
            parts = module.split(".")
            for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
                visit(".".join(parts[:i]), False)
            top, inner = self.imports(module)
            for m in top | (inner if explicit and module not in REGISTRIES else set()):
                visit(m, True)
            for pattern in DATA.get(module, ()):
                files.update(self.glob(pattern))

        for s in starts:
            visit(s, True)
        return files

    def glob(self, pattern: str) -> set:
        base, _, pat = pattern.rpartition("/")
        folder = self.root / base
        prefix = f"{base}/" if base else ""
        return {prefix + p.name for p in folder.iterdir() if p.is_file() and fnmatch.fnmatch(p.name, pat)} if folder.is_dir() else set()

    # --- the registries ------------------------------------------------------------------------
    def toplevel(self, module: str) -> dict:
        """Top-level function definitions and assignments of ``module`` by name."""
        out = {}
        for node in self.tree(module).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                out[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                out[node.target.id] = node.value
        return out

    def dict_literal(self, module: str, name: str) -> dict:
        value = self.toplevel(module).get(name)
        if not isinstance(value, ast.Dict) or not all(isinstance(_constant(k), str) for k in value.keys):
            raise HashError(f"{self.modules[module]}: {name} is not a literal dict with string keys (scripts/code_hash.py reads it)")
        return {_constant(k): v for k, v in zip(value.keys, value.values)}

    def function_modules(self, module: str, fn, binding: dict) -> set:
        """unicoal modules a function imports (also ``import_module(f"...{param}")`` with ``binding``)."""
        top, inner = self.imports(module, fn)
        found = top | inner
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module" and node.args:
                text = _render(node.args[0], binding)
                if text is None:
                    raise HashError(f"{self.modules[module]}:{node.lineno}: import_module of a name scripts/code_hash.py cannot resolve")
                found.add(self.resolve(0, text, None, module) or text)
        return found


def _constant(node):
    """The value of a constant node (``ast.Constant``; Python 3.7 parses ``ast.Str`` / ``ast.NameConstant``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if type(node).__name__ == "Str":
        return node.s
    if type(node).__name__ == "NameConstant":
        return node.value
    return None


def _render(node, binding: dict) -> str | None:
    """A string constant or an f-string whose fields are names bound in ``binding``."""
    if isinstance(_constant(node), str):
        return _constant(node)
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(_constant(part), str):
                out.append(_constant(part))
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.value.id in binding:
                out.append(binding[part.value.id])
            else:
                return None
        return "".join(out)
    return None


def method_parts(pkg: Package) -> dict:
    """``{method: (builder modules, predictor kind, dataset kind, trainable)}`` from unicoal/methods.py."""
    reg = "unicoal.methods"
    defs = pkg.toplevel(reg)
    out = {}
    for name, call in pkg.dict_literal(reg, "METHODS").items():
        if not isinstance(call, ast.Call):
            raise HashError(f"{pkg.modules[reg]}: METHODS[{name!r}] is not a MethodSpec(...) call")
        info = {"modules": set(), "predictor": "slice", "dataset": "slice", "trainable": True}

        def keywords(kws, binding, where) -> None:
            for kw in kws:
                value = kw.value
                if kw.arg is None:  # **_INTERP or **_helper("module", ...)
                    if isinstance(value, ast.Name) and isinstance(defs.get(value.id), ast.Call):
                        keywords(defs[value.id].keywords, binding, value.id)
                    elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and isinstance(defs.get(value.func.id), ast.FunctionDef):
                        helper = defs[value.func.id]
                        params = [a.arg for a in helper.args.args]
                        bound = {p: _render(a, {}) for p, a in zip(params, value.args)}
                        bound.update({k.arg: _render(k.value, {}) for k in value.keywords if k.arg})
                        bound = {k: v for k, v in bound.items() if v is not None}
                        info["modules"] |= pkg.function_modules(reg, helper, bound)
                        for ret in (n for n in ast.walk(helper) if isinstance(n, ast.Return) and isinstance(n.value, ast.Call)):
                            keywords([k for k in ret.value.keywords if k.arg in ("predictor", "dataset", "trainable")], bound, helper.name)
                    else:
                        raise HashError(f"{pkg.modules[reg]}: METHODS[{name!r}]: cannot follow **{type(value).__name__}")
                elif kw.arg in ("model_config", "build_models"):
                    if not (isinstance(value, ast.Name) and isinstance(defs.get(value.id), ast.FunctionDef)):
                        raise HashError(f"{pkg.modules[reg]}: METHODS[{name!r}].{kw.arg} is not a function of the module")
                    info["modules"] |= pkg.function_modules(reg, defs[value.id], {})
                elif kw.arg in ("predictor", "dataset"):
                    text = _render(value, binding)
                    if text is None:
                        raise HashError(f"{pkg.modules[reg]}: METHODS[{name!r}].{kw.arg} is not a string")
                    info[kw.arg] = text
                elif kw.arg == "trainable" and isinstance(_constant(value), bool):
                    info["trainable"] = _constant(value)

        keywords(call.keywords, {}, name)
        if info["trainable"] and not info["modules"]:
            raise HashError(f"{pkg.modules[reg]}: found no modules of the trainable method {name!r}")
        out[name] = info
    return out


def method_configs(pkg: Package, method: str) -> set:
    """``configs/<method>.yaml``, ``configs/<method>_*.yaml`` (+ :data:`METHOD_CONFIGS`) and their bases."""
    names = [p.rpartition("/")[2] for p in pkg.glob(CONFIGS)]
    patterns = (f"{method}.yaml", f"{method}_*.yaml", *METHOD_CONFIGS.get(method, ()))
    todo = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
    out = set()
    while todo:
        n = todo.pop()
        rel = f"unicoal/configs/{n}"
        if rel in out or n not in names:
            continue
        out.add(rel)
        m = re.search(r"^base:\s*['\"]?([A-Za-z0-9_.-]+?)(\.ya?ml)?['\"]?\s*(#.*)?$", (pkg.root / rel).read_text(encoding="utf-8"), re.M)
        if m:
            todo.append(f"{m.group(1)}.yaml")
    return out


def compute(root: Path) -> dict:
    root = root.resolve()
    if not (root / "unicoal" / "__init__.py").is_file():
        raise HashError(f"{root}: no unicoal package here (pass --root of a unicoal checkout)")
    for name in COMMON:
        if not (root / name).is_file():
            raise HashError(f"{root / name}: missing")
    pkg = Package(root)
    everything = package_files(root)
    steps = sorted(m.rpartition(".")[2] for m in pkg.modules
                   if m.startswith("unicoal.commands.") and not m.rpartition(".")[2].startswith("_"))
    step_files = {s: pkg.closure(ENTRY + (f"unicoal.commands.{s}",)) for s in steps}

    predictors = {k: pkg.function_modules("unicoal.predictors", pkg.toplevel("unicoal.predictors").get(getattr(v, "id", "")), {})
                  for k, v in pkg.dict_literal("unicoal.predictors", "PREDICTORS").items()
                  if isinstance(pkg.toplevel("unicoal.predictors").get(getattr(v, "id", "")), ast.FunctionDef)}
    datasets = {k: _render(v, {}).partition(":")[0] for k, v in pkg.dict_literal("unicoal.train.loop", "DATASETS").items()}
    all_configs = pkg.glob(CONFIGS)
    per_method = {"train": {}, "synthesize": {}}
    for name, info in method_parts(pkg).items():
        if info["predictor"] not in predictors:
            raise HashError(f"unicoal/methods.py: method {name!r} names predictor {info['predictor']!r}, not in PREDICTORS")
        configs = method_configs(pkg, name)
        synth = pkg.closure(tuple(info["modules"] | predictors[info["predictor"]]))
        per_method["synthesize"][name] = (step_files["synthesize"] - all_configs) | synth - all_configs
        if info["trainable"]:
            if info["dataset"] not in datasets:
                raise HashError(f"unicoal/methods.py: method {name!r} names dataset {info['dataset']!r}, not in unicoal.train.loop.DATASETS")
            train = pkg.closure(tuple(info["modules"]) + (datasets[info["dataset"]],))
            per_method["train"][name] = ((step_files["train"] | train) - all_configs) | configs
    for step in ("train", "synthesize"):  # the step's own hash covers every method
        step_files[step] = set().union(step_files[step], *per_method[step].values())

    covered = set().union(*step_files.values(), *per_method["train"].values(), *per_method["synthesize"].values())
    orphans = sorted(set(everything) - covered - set(HELPERS), key=lambda p: p.encode())
    return {
        "all": digest(root, everything),
        "steps": {s: digest(root, f | set(orphans)) for s, f in step_files.items()},
        "train": {m: digest(root, f | set(orphans)) for m, f in sorted(per_method["train"].items())},
        "synthesize": {m: digest(root, f | set(orphans)) for m, f in sorted(per_method["synthesize"].items())},
        "orphans": orphans,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="code_hash.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="unicoal checkout (default: this script's)")
    parser.add_argument("--json", action="store_true", help="print every hash as JSON (default: only the whole package's)")
    args = parser.parse_args(argv)
    try:
        result = compute(Path(args.root))
    except (HashError, OSError, UnicodeDecodeError) as err:
        print(f"code_hash.py: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1, sort_keys=True) if args.json else result["all"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
