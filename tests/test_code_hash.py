"""scripts/code_hash.py: per-step and per-method hashes move only with the code each one runs."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SCRIPT = PROJECT / "scripts" / "code_hash.py"


def _hashes(root: Path) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _changed(a: dict, b: dict) -> dict:
    out = {"all": a["all"] != b["all"]}
    for group in ("steps", "train", "synthesize"):
        assert a[group].keys() == b[group].keys()
        out[group] = {k for k in a[group] if a[group][k] != b[group][k]}
    return out


@pytest.fixture(scope="module")
def base_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(PROJECT / "unicoal", root / "unicoal", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(PROJECT / "reports" / "reference", root / "reports" / "reference")
    for name in ("pyproject.toml", "requirements.lock.txt"):
        shutil.copy2(PROJECT / name, root / name)
    return root


@pytest.fixture
def checkout(base_copy, tmp_path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(base_copy, root)
    return root


@pytest.fixture(scope="module")
def base(base_copy) -> dict:
    return _hashes(base_copy)


def _edit(path: Path, text: str = "\n# a comment\n") -> None:
    path.write_text(path.read_text() + text)


def test_all_is_the_shell_recipe_and_every_step_and_method_is_listed(base_copy, base):
    sh = subprocess.run(["bash", str(PROJECT / "scripts" / "code_hash.sh"), str(base_copy)], capture_output=True, text=True, check=True)
    assert base["all"] == sh.stdout.strip()
    commands = {p.stem for p in (PROJECT / "unicoal" / "commands").glob("*.py") if not p.stem.startswith("_")}
    assert set(base["steps"]) == commands and {"preprocess", "train", "synthesize", "report", "segment"} <= commands
    sys.path.insert(0, str(PROJECT))
    from unicoal.methods import METHODS

    assert set(base["synthesize"]) == set(METHODS)
    assert set(base["train"]) == {m for m, spec in METHODS.items() if spec.trainable}
    assert base["orphans"] == []
    assert all(len(h) == 16 and int(h, 16) >= 0 for g in ("steps", "train", "synthesize") for h in base[g].values())
    # the plain call prints the whole package's hash only
    plain = subprocess.run([sys.executable, str(SCRIPT), "--root", str(base_copy)], capture_output=True, text=True, check=True)
    assert plain.stdout.strip() == base["all"]


def test_report_comment_changes_only_the_report(checkout, base):
    _edit(checkout / "unicoal" / "report" / "html.py")
    c = _changed(base, _hashes(checkout))
    assert c == {"all": True, "steps": {"report"}, "train": set(), "synthesize": set()}


def test_one_network_changes_only_its_method(checkout, base):
    _edit(checkout / "unicoal" / "models" / "baselines" / "pix2pix.py")
    c = _changed(base, _hashes(checkout))
    assert c == {"all": True, "steps": {"train", "synthesize"}, "train": {"pix2pix"}, "synthesize": {"pix2pix"}}


def test_shared_network_code_changes_the_methods_that_import_it(checkout, base):
    # the Uni-COAL generator: Uni-COAL's own method (nothing else imports it)
    _edit(checkout / "unicoal" / "models" / "generator.py")
    c = _changed(base, _hashes(checkout))
    assert c["train"] == c["synthesize"] == {"unicoal"} and c["steps"] == {"train", "synthesize"}


def test_common_training_code_changes_every_training(checkout, base):
    _edit(checkout / "unicoal" / "train" / "losses.py")
    c = _changed(base, _hashes(checkout))
    assert c["train"] == set(base["train"]) and "train" in c["steps"] and "report" not in c["steps"]


def test_config_of_one_method_and_the_paper_base(checkout, base):
    _edit(checkout / "unicoal" / "configs" / "pix2pix_tiny.yaml")
    c = _changed(base, _hashes(checkout))
    assert c["train"] == {"pix2pix"} and c["synthesize"] == set() and "report" not in c["steps"]
    _edit(checkout / "unicoal" / "configs" / "paper.yaml")  # every config inherits from paper.yaml
    c = _changed(base, _hashes(checkout))
    assert c["train"] == set(base["train"]) and c["synthesize"] == set()


def test_preprocessing_edit_changes_preprocessing_only(checkout, base):
    _edit(checkout / "unicoal" / "preprocess" / "skullstrip.py")
    c = _changed(base, _hashes(checkout))
    assert c["steps"] == {"skullstrip", "preprocess"} and c["train"] == c["synthesize"] == set()


def test_a_new_module_cannot_slip_through(checkout, base):
    # imported by nothing: an orphan, in every hash
    (checkout / "unicoal" / "report" / "newthing.py").write_text("X = 1\n")
    h = _hashes(checkout)
    assert h["orphans"] == ["unicoal/report/newthing.py"]
    c = _changed(base, h)
    assert c["steps"] == set(base["steps"]) and c["train"] == set(base["train"])
    # imported (relatively, inside a function) by the report: then in the report's hash only
    _edit(checkout / "unicoal" / "report" / "html.py", "\n\ndef _late():\n    from .newthing import X\n    return X\n")
    base2 = _hashes(checkout)
    assert base2["orphans"] == []
    _edit(checkout / "unicoal" / "report" / "newthing.py")
    assert _changed(base2, _hashes(checkout))["steps"] == {"report"}


def test_unanalysable_package_is_one_line_error(checkout):
    _edit(checkout / "unicoal" / "report" / "html.py", "\nfrom unicoal.no_such_module import X\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--root", str(checkout), "--json"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "unicoal/report/html.py: imports 'unicoal.no_such_module'" in proc.stderr


def test_standard_library_only():
    import ast

    tree = ast.parse(SCRIPT.read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}
