#!/usr/bin/env bash
# Set up everything the project needs; re-running when nothing changed takes seconds.
#   - Debian packages for the tests (chromium for the HTML report, slurm-wlm + munge for the
#     SLURM tests, maven for assembling Nextflow, podman + runc + debootstrap for the image
#     tests) when running as root and missing, and podman's /etc/containers/containers.conf;
#   - the Python venv .venv: first the hashed pip of requirements-pip.lock.txt (the images'
#     pip too), then the hashed locks requirements.lock.txt (runtime, also used by the
#     container images) and requirements-dev.lock.txt (pytest, hadolint), all generated from the
#     top-level pins in requirements*.in by scripts/lock.sh. With
#     UNICOAL_VENV_CACHE set (CI), the venv lives in $UNICOAL_VENV_CACHE/<hash of pins> and
#     .venv is a symlink to it, so clean clones reuse it;
#   - a `nextflow` command in .venv/bin (scripts/install_nextflow.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*" >&2; }

# --- Debian packages (only what is missing; only as root) ----------------------------------
APT_PACKAGES=(chromium slurm-wlm munge maven podman runc debootstrap)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "warning: missing Debian packages ${missing[*]} (needed only for the report/SLURM/image tests); install them with your package manager"
    fi
fi

# --- podman's configuration (as root, when there is none: scripts/podman_conf.sh) -------------
if [ "$(id -u)" = 0 ] && command -v podman >/dev/null; then
    scripts/podman_conf.sh
fi

# --- Python venv ----------------------------------------------------------------------------
pins_hash=$( (cat requirements.lock.txt requirements-dev.lock.txt; $PY -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
if [ -n "${UNICOAL_VENV_CACHE:-}" ]; then
    venv="$UNICOAL_VENV_CACHE/$pins_hash"
    mkdir -p "$UNICOAL_VENV_CACHE"
    if [ -e .venv ] && [ ! -L .venv ]; then rm -rf .venv; fi
    ln -sfn "$venv" .venv
else
    venv="$ROOT/.venv"
    if [ -L .venv ]; then rm -f .venv; fi
fi
if [ "$(cat "$venv/.pins-hash" 2>/dev/null)" != "$pins_hash" ]; then
    log "creating Python environment in $venv (a few minutes, ~7 GB)"
    rm -rf "$venv"
    $PY -m venv "$venv"
    "$venv/bin/pip" install -q --require-hashes -r requirements-pip.lock.txt
    "$venv/bin/pip" install -q --require-hashes -r requirements.lock.txt -r requirements-dev.lock.txt
    echo "$pins_hash" > "$venv/.pins-hash"
else
    log "Python environment up to date ($venv)"
fi
# the pinned pip (a venv made before the pin, or a new pin, gets it in seconds)
pip_pin=$(sed -n 's/^pip==\([^ ]*\).*/\1/p' requirements-pip.lock.txt)
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pip"))' 2>/dev/null)" != "$pip_pin" ]; then
    "$venv/bin/pip" install -q --require-hashes -r requirements-pip.lock.txt
fi
# the package itself (editable, no dependency resolution: seconds)
# (-P: do not put the current folder on sys.path, so the check sees the installed package)
if [ ! -x "$venv/bin/unicoal" ] || ! (cd / && "$venv/bin/python" -P -c 'import unicoal, pathlib, sys; sys.exit(0 if pathlib.Path(unicoal.__file__).resolve().parent == pathlib.Path(sys.argv[1]).resolve() else 1)' "$ROOT/unicoal") 2>/dev/null; then
    "$venv/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || "$venv/bin/pip" install -q --no-deps -e .
fi

# --- the code stamp of bin/unicoal (the launcher every pipeline task calls) ------------------
# Nextflow hashes bin/unicoal into each task's cache key: the stamp changes with the code, so
# -resume re-runs what the code change touches (main.nf re-stamps at launch as well).
scripts/stamp_code.sh >/dev/null

# --- Nextflow ------------------------------------------------------------------------------
if [ -x scripts/install_nextflow.sh ]; then
    scripts/install_nextflow.sh
fi
log "done: activate with 'source .venv/bin/activate' or call .venv/bin/unicoal"
