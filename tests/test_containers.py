"""The pipeline's image (containers/): what it installs and how (fast checks of the recipes and
scripts), and, with podman (slow), the real thing: scripts/build_images.sh podman builds it from a
copy of the project, a code change rebuilds only the code layers, `unicoal --version` runs inside,
bin/unicoal refuses an image of other code with its one-line error, and
`-profile test,podman --experiment table4 --methods Uni-COAL,Linear` runs every task in it.

podman comes from scripts/setup.sh (as root on Debian: podman, runc, debootstrap and
scripts/podman_conf.sh); the slow tests skip only when podman is not installed. Each slow step
prints its wall time (seconds) to stderr.
"""
from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_nextflow_run import TEST_METHODS, _fail, _project_copy, processes, run_nf, trace

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "containers" / "Dockerfile"
DEF = ROOT / "containers" / "unicoal.def"
INSTALL_DEPS = ROOT / "containers" / "install_deps.sh"
PODMAN = shutil.which("podman")
needs_podman = pytest.mark.skipif(
    PODMAN is None, reason="podman is not installed (scripts/setup.sh installs it as root on Debian: podman, runc, debootstrap)")


def _blocks(text: str) -> dict[str, str]:
    """name -> its whole block (``name==version \\`` and the hash / comment lines under it) of a lock."""
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text):
        m = re.match(r"([A-Za-z0-9_.-]+)==", block)
        if m:
            out[m.group(1).lower()] = block.rstrip("\n")
    return out


def _pip_pin() -> str:
    return re.search(r"^pip==(\S+) \\$", (ROOT / "requirements-pip.lock.txt").read_text(), re.M).group(1)


# --- the recipes (fast) ----------------------------------------------------------------------


def test_pip_is_pinned_with_hashes_and_installed_first_in_the_venv_and_the_images():
    from importlib import metadata

    blocks = _blocks((ROOT / "requirements-pip.lock.txt").read_text())
    assert list(blocks) == ["pip"] and blocks["pip"].count("--hash=sha256:") >= 1
    assert metadata.version("pip") == _pip_pin(), "the venv runs the pinned pip (make setup)"
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pin_install = setup.index("--require-hashes -r requirements-pip.lock.txt")
    assert pin_install < setup.index("--require-hashes -r requirements.lock.txt -r requirements-dev.lock.txt")
    assert "--upgrade pip" not in setup
    deps = INSTALL_DEPS.read_text()
    assert deps.index('--requirement "$locks/requirements-pip.lock.txt"') < deps.index('--requirement "$locks/requirements.lock.txt"')
    assert "lock.txt" in (ROOT / "scripts" / "lock.sh").read_text().split("requirements-pip.in", 1)[1]


@pytest.mark.parametrize("path", [DOCKERFILE, DEF], ids=lambda p: p.name)
def test_images_install_the_locks_through_one_script_then_the_code(path):
    text = path.read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    # the dependencies: containers/install_deps.sh (hashed pip, then the hashed lock), before the code
    assert re.search(r"\bsh (\./|/opt/unicoal/)install_deps\.sh /opt/venv /opt/unicoal ", code)
    if path == DOCKERFILE:  # the dependency layer does not depend on the code: a code change reuses it
        assert code.index("install_deps.sh /opt/venv") < code.index("COPY pyproject.toml") < code.index("COPY unicoal ")
    for lock in ("requirements-pip.lock.txt", "requirements.lock.txt"):
        assert lock in code
    installs = [line.strip() for line in code.splitlines() if re.search(r"\bpip\d? install\b", line)]
    assert len(installs) == 1 and "--no-deps --no-build-isolation" in installs[0], installs  # then only the project
    assert not re.search(r"[A-Za-z0-9_.-]+==\d", text), "no pins outside the locks"
    for tool in ("pytest", "hadolint", "requirements-dev"):
        assert tool not in code, f"{path.name}: {tool} belongs to the dev lock, not the runtime image"
    assert "nvidia/cuda" not in text  # the torch wheels bring the CUDA user-space libraries
    assert "procps" in text  # Nextflow's task metrics need ps
    assert "code_hash.sh /opt/unicoal > /opt/unicoal/CODE_HASH" in code and "UNICOAL_IMAGE=" in code
    assert "rm -rf build ./*.egg-info" in code  # no build leftovers of the project install
    if path == DOCKERFILE:
        # one Python for venv and images: 3.11; the base is a build argument (a mirror, the local Debian base)
        assert re.search(r"^ARG BASE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.M)
        assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
        assert re.search(r'^ARG TORCH_INDEX=""$', text, re.M) and '"${TORCH_INDEX}"' in code
        assert "PIP_NO_CACHE_DIR=1" in code and "PYTHONDONTWRITEBYTECODE=1" in code
    else:
        assert re.search(r"^From: python:3\.11-slim-bookworm$", text, re.M)
        assert "TORCH_INDEX=lock" in text and "{{ TORCH_INDEX }}" in code


def test_build_context_sends_only_what_the_image_needs():
    ignore = (ROOT / "containers" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*")] == "*" and "!requirements-dev.lock.txt" not in ignore and "!tests/" not in ignore
    assert {"!requirements.lock.txt", "!requirements-pip.lock.txt", "!containers/install_deps.sh", "!unicoal/",
            "!scripts/code_hash.sh"} <= set(ignore)
    assert "--ignorefile containers/Dockerfile.dockerignore" in (ROOT / "scripts" / "build_images.sh").read_text()


def test_cuda12_variant_installs_the_lock_without_torch_and_its_cuda_packages_with_hashes():
    """TORCH_INDEX: the lock minus torch, torchvision, triton, cuda-* and nvidia-* (hash-checked,
    block for block as locked), then torch and torchvision of the lock's versions from the index."""
    lock = _blocks((ROOT / "requirements.lock.txt").read_text())
    res = subprocess.run(["sh", str(INSTALL_DEPS), "--lock-without-torch", str(ROOT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rest = _blocks(res.stdout)
    dropped = set(lock) - set(rest)
    assert {"torch", "torchvision", "triton"} <= dropped and any(n.startswith("nvidia-") for n in dropped)
    assert all(n in ("torch", "torchvision", "triton") or n.startswith(("nvidia-", "cuda-")) for n in dropped), dropped
    assert set(rest) <= set(lock) and len(rest) > 100
    assert all(rest[n] == lock[n] and "--hash=sha256:" in rest[n] for n in rest), "every other pin kept with its hashes"
    deps = INSTALL_DEPS.read_text()
    assert '--require-hashes --no-deps --requirement "$rest"' in deps
    assert '--index-url "$torch_index" "torch==$torch" "torchvision==$vision"' in deps and "pip\" check" in deps


def test_podman_conf_is_written_once_within_host_limits_and_a_foreign_one_is_left_alone(tmp_path):
    script = ROOT / "scripts" / "podman_conf.sh"
    conf = tmp_path / "containers" / "containers.conf"
    first = subprocess.run(["bash", str(script), str(conf)], capture_output=True, text=True)
    assert first.returncode == 0 and "wrote" in first.stderr, first.stderr
    text = conf.read_text()
    assert 'runtime = "runc"' in text and 'cgroup_manager = "cgroupfs"' in text
    nofile, nproc = (int(m) for m in re.search(r'default_ulimits = \["nofile=(\d+):\1", "nproc=(\d+):\2"\]', text).groups())
    for value, limit, cap in ((nofile, resource.RLIMIT_NOFILE, 1024), (nproc, resource.RLIMIT_NPROC, 1000)):
        hard = resource.getrlimit(limit)[1]
        assert 0 < value == min(cap, hard if hard != resource.RLIM_INFINITY else cap)
    mtime = conf.stat().st_mtime_ns
    again = subprocess.run(["bash", str(script), str(conf)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr == "" and conf.stat().st_mtime_ns == mtime  # idempotent
    foreign = "[engine]\nruntime = \"crun\"\n"
    conf.write_text(foreign)
    res = subprocess.run(["bash", str(script), str(conf)], capture_output=True, text=True)
    assert res.returncode == 0 and conf.read_text() == foreign
    assert res.stderr.count("\n") == 1 and "not ours" in res.stderr and 'runtime = "runc"' in res.stderr
    assert "scripts/podman_conf.sh" in (ROOT / "scripts" / "setup.sh").read_text()


def test_build_images_refuses_an_unknown_engine_with_its_usage():
    res = subprocess.run(["bash", str(ROOT / "scripts" / "build_images.sh"), "kubernetes"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("usage:") and res.stderr.count("\n") == 1 and "podman" in res.stderr


# --- the image with podman (slow) ------------------------------------------------------------


def _podman(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f"podman {' '.join(args)}: {res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res


def _build(project: Path) -> tuple[str, float]:
    """scripts/build_images.sh podman in ``project``; returns its code hash and the wall time."""
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(project / "scripts" / "build_images.sh"), "podman"], cwd=project,
                         capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    code = subprocess.run(["bash", str(project / "scripts" / "code_hash.sh")], capture_output=True, text=True, check=True).stdout.strip()
    print(f"\n[build_images.sh podman] {code} in {wall:.0f} s", file=sys.stderr)
    return code, wall


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two builds from a copy of the project: first of other code (a comment added to the package:
    the dependency layer is built, or reused from podman's cache), then of the checkout's code
    (a code change: the dependency layer must come from the cache)."""
    if PODMAN is None:
        pytest.skip(needs_podman.kwargs["reason"])
    project = _project_copy(tmp_path_factory.mktemp("containers") / "project")
    version = re.search(r'^version = "(.*)"', (project / "pyproject.toml").read_text(), re.M).group(1)
    init = project / "unicoal" / "__init__.py"
    original = init.read_text()
    init.write_text(original + "# other code (tests/test_containers.py)\n")
    other, first_wall = _build(project)
    init.write_text(original)
    code, second_wall = _build(project)
    assert other != code
    yield {"project": project, "version": version, "code": code, "other": other,
           "first_wall": first_wall, "second_wall": second_wall}
    _podman("rmi", f"unicoal:{version}-{other}", check=False)  # the image of other code: its code layer only


@pytest.mark.slow
@needs_podman
def test_image_is_tagged_by_code_and_version_and_a_code_change_reuses_the_dependency_layer(images):
    version, code, other = images["version"], images["code"], images["other"]
    stable, exact, old = f"unicoal:{version}", f"unicoal:{version}-{code}", f"unicoal:{version}-{other}"
    ids = {t: _podman("image", "inspect", "--format", "{{.Id}}", t).stdout.strip() for t in (stable, exact, old)}
    assert ids[stable] == ids[exact] != ids[old]
    layers = {t: json.loads(_podman("image", "inspect", "--format", "{{json .RootFS.Layers}}", t).stdout) for t in (exact, old)}
    assert len(layers[exact]) == len(layers[old]) >= 3
    # the package's files and its install are the last two layers, and the only ones that differ
    assert layers[exact][:-2] == layers[old][:-2] and layers[exact][-2] != layers[old][-2], "only the code layers differ"
    deps = {t: [line.split("|") for line in _podman("history", "--no-trunc", "--format", "{{.ID}}|{{.Size}}|{{.CreatedBy}}", t).stdout.splitlines()
                if "install_deps.sh /opt/venv" in line] for t in (exact, old)}
    assert len(deps[exact]) == 1 and deps[exact] == deps[old], deps  # the same cached dependency layer
    assert deps[exact][0][1].endswith("GB"), deps  # (the locked packages: gigabytes)
    assert images["second_wall"] < 180, f"a code change rebuilt for {images['second_wall']:.0f} s"
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", exact).stdout)
    print(f"\nimage {exact}: {size / 1e9:.2f} GB; builds {images['first_wall']:.0f} s, after a code change "
          f"{images['second_wall']:.0f} s", file=sys.stderr)


@pytest.mark.slow
@needs_podman
def test_image_runs_unicoal_with_the_locked_pip_and_nothing_of_the_build(images):
    version, code = images["version"], images["code"]
    res = _podman("run", "--rm", f"unicoal:{version}", "/opt/venv/bin/unicoal", "--version")
    assert version in res.stdout + res.stderr
    check = (
        'set -e; cat /opt/unicoal/CODE_HASH; /opt/venv/bin/pip --version; /opt/venv/bin/pip check >&2; '
        'test ! -e /root/.cache/pip; ! command -v gcc; ! command -v cc; '
        'test ! -e /opt/unicoal/build; ! ls -d /opt/unicoal/*.egg-info 2>/dev/null; '
        'test -z "$(find /opt/unicoal -name __pycache__)"; '
        '! /opt/venv/bin/python -c "import pytest" 2>/dev/null; command -v ps; echo "UNICOAL_IMAGE=$UNICOAL_IMAGE"'
    )
    res = _podman("run", "--rm", f"unicoal:{version}", "bash", "-c", check)
    lines = res.stdout.splitlines()
    assert lines[0] == code
    assert lines[1].startswith(f"pip {_pip_pin()} ")
    assert lines[-1] == "UNICOAL_IMAGE=unicoal"


@pytest.mark.slow
@needs_podman
def test_launcher_refuses_an_image_of_other_code_with_one_line(images):
    version, code, other = images["version"], images["code"], images["other"]
    # the pipeline's launcher, with the checkout's code hash as the pipeline gives it to every task
    args = ("-v", f"{images['project'] / 'bin'}:/pipeline/bin:ro", "-e", f"UNICOAL_CODE_HASH={code}")
    ok = _podman("run", "--rm", *args, f"unicoal:{version}", "/pipeline/bin/unicoal", "--version", check=False)
    assert ok.returncode == 0 and version in ok.stdout + ok.stderr, ok.stderr
    res = _podman("run", "--rm", *args, f"unicoal:{version}-{other}", "/pipeline/bin/unicoal", "--version", check=False)
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"unicoal: error: image unicoal: built from code {other}, this checkout is {code} (fix: ")
    assert "scripts/build_images.sh" in lines[0]


@pytest.mark.slow
@needs_podman
def test_profile_test_podman_runs_every_task_in_the_image(images):
    project, version = images["project"], images["version"]
    cwd = project.parent / "run"
    proc, wall = run_nf(cwd, "-profile", "test,podman", *TEST_METHODS, "--outdir", "results", main=project / "main.nf")
    assert proc.returncode == 0, _fail(proc, cwd)
    rows = trace(cwd / "results")
    done = processes(rows, "COMPLETED")
    assert done.get("TRAIN") == 1 and done.get("SYNTHESIZE") == 2 and len(rows) == sum(done.values()), processes(rows)
    image = re.compile(rf"\bpodman run\b.*\s(localhost/)?unicoal:{re.escape(version)}(-[0-9a-f]{{16}})?\s")
    for r in rows:
        run = (Path(r["workdir"]) / ".command.run").read_text()
        assert image.search(run), f"{r['name']}: not run in the podman image ({r['workdir']}/.command.run)"
        assert re.fullmatch(rf"(localhost/)?unicoal:{re.escape(version)}(-[0-9a-f]{{16}})?", r["container"]), r
    assert (cwd / "results" / "report.html").is_file()
    print(f"-profile test,podman: {len(rows)} tasks in the image in {wall:.0f} s", file=sys.stderr)

