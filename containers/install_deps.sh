#!/bin/sh
# Install the pipeline's Python dependencies into a new venv, for containers/Dockerfile and
# containers/unicoal.def alike (one recipe for every image):
#   containers/install_deps.sh VENV LOCK_DIR [TORCH_INDEX]
# First the hashed pip of LOCK_DIR/requirements-pip.lock.txt (the one scripts/setup.sh puts in the
# venv: a base image's own pip may be too old for the lock), then LOCK_DIR/requirements.lock.txt
# with --require-hashes. No pip cache is kept.
#
# TORCH_INDEX (empty: the lock as it is) selects another build of the lock's torch and
# torchvision versions, for clusters whose NVIDIA driver is too old for the lock's wheels (PyPI's
# torch wheels are CUDA 13 builds, driver >= 580), e.g. https://download.pytorch.org/whl/cu128
# (CUDA 12.8, driver >= 525 with CUDA minor-version compatibility). Then the lock is installed
# without torch, torchvision, triton and the CUDA packages (cuda-*, nvidia-*), hash-checked and
# with --no-deps, and torch==<lock version> and torchvision==<lock version> come from TORCH_INDEX
# with the CUDA libraries of that build; that index is trusted by TLS only (no hashes: the lock
# cannot hold hashes of an index this project cannot reach), and `pip check` must pass.
#   containers/install_deps.sh --lock-without-torch LOCK_DIR   prints that reduced lock (tests)
set -eu
# the lock without the blocks (`name==version \` and the indented hash/comment lines under it) of
# torch, torchvision, triton and the CUDA user-space packages
lock_without_torch() {
    awk '/^[A-Za-z0-9]/ { skip = ($1 ~ /^(torch|torchvision|triton|cuda-[A-Za-z0-9.-]+|nvidia-[A-Za-z0-9.-]+)==/) } !skip' \
        "$1/requirements.lock.txt"
}
if [ "${1:-}" = --lock-without-torch ]; then
    lock_without_torch "$2"
    exit 0
fi
venv="$1"
locks="$2"
torch_index="${3:-}"
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

python3 -m venv "$venv"
"$venv/bin/pip" install --require-hashes --requirement "$locks/requirements-pip.lock.txt"

if [ -z "$torch_index" ]; then
    "$venv/bin/pip" install --require-hashes --requirement "$locks/requirements.lock.txt"
else
    pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$locks/requirements.lock.txt"; }
    torch="$(pin torch)"
    vision="$(pin torchvision)"
    [ -n "$torch" ] && [ -n "$vision" ] || { echo "install_deps: torch/torchvision not pinned in $locks/requirements.lock.txt" >&2; exit 1; }
    rest="$(mktemp)"
    lock_without_torch "$locks" > "$rest"
    "$venv/bin/pip" install --require-hashes --no-deps --requirement "$rest"
    rm -f "$rest"
    "$venv/bin/pip" install --index-url "$torch_index" "torch==$torch" "torchvision==$vision"
    "$venv/bin/pip" check
fi
