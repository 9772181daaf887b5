#!/usr/bin/env bash
# Build the pipeline's image from containers/ (the hashed locks, then the code):
#   scripts/build_images.sh podman      -> unicoal:<version>-<code hash> and unicoal:<version>
#   scripts/build_images.sh docker      -> the same two tags, with docker
#   scripts/build_images.sh apptainer   -> unicoal-<code hash>.sif from containers/unicoal.def
#                                          (or singularity; pass it as --apptainer_image)
# <code hash> is the whole package's hash (scripts/code_hash.sh), also kept in the image as
# /opt/unicoal/CODE_HASH: bin/unicoal refuses an image built from other code than the checkout's,
# whichever tag the pipeline names. The stable tag unicoal:<version> is the pipeline's default
# image, so rebuilding after a code edit keeps the tasks' container name (and their cache keys).
# Environment:
#   BASE=IMAGE          base image (default the Dockerfile's python:3.11-slim-bookworm). With podman,
#                       when the default cannot be pulled (no Docker Hub), a Debian bookworm base is
#                       made once from Debian's packages with debootstrap (as root) and kept as
#                       localhost/unicoal-base:bookworm (DEBIAN_MIRROR: its mirror).
#   TORCH_INDEX=URL     a PyTorch index for another CUDA build of the lock's torch, e.g.
#                       https://download.pytorch.org/whl/cu128 for drivers older than CUDA 13's
#                       (containers/install_deps.sh); tags get the suffix -<last path part of URL>.
# podman builds reuse the dependency layer from the layer cache while the locks, install_deps.sh,
# BASE and TORCH_INDEX are unchanged: a code change rebuilds in seconds. The host's CA
# certificates and /etc/pip.conf (proxy CA, mirror) are mounted into the build, not copied.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    docker|podman|apptainer|singularity) ;;
    *) echo "usage: $0 podman|docker|apptainer|singularity   (env: BASE, TORCH_INDEX)" >&2; exit 2 ;;
esac
hash="$(scripts/code_hash.sh)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
suffix=""
if [ -n "${TORCH_INDEX:-}" ]; then suffix="-$(basename "${TORCH_INDEX%/}")"; fi
tags=("unicoal:${version}-${hash}${suffix}" "unicoal:${version}${suffix}")
default_base="$(sed -n 's/^ARG BASE=//p' containers/Dockerfile)"
local_base=localhost/unicoal-base:bookworm

log() { printf 'build_images: %s\n' "$*" >&2; }

# a Debian bookworm root file system from Debian's packages (python3 is 3.11 there), imported as
# an image: the base when Docker Hub cannot be reached
make_local_base() {
    if podman image exists "$local_base"; then return; fi
    if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
        log "error: cannot pull $default_base and cannot make $local_base (needs root and debootstrap) (fix: set BASE=<reachable python 3.11 image>)"
        exit 1
    fi
    log "making the local base $local_base with debootstrap (once, about 2 minutes)"
    base_root="$(mktemp -d /var/tmp/unicoal-base.XXXXXX)"
    trap 'rm -rf "$base_root"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,procps,ca-certificates \
        bookworm "$base_root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$base_root"/var/cache/apt/archives/*.deb "$base_root"/var/lib/apt/lists/*
    tar -C "$base_root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$local_base" >/dev/null
    rm -rf "$base_root"
    trap - EXIT
}

# image ids the tags point at now: those left without any tag after the build are removed
old_ids() { for t in "${tags[@]}"; do "$1" image inspect --format '{{.Id}}' "$t" 2>/dev/null || true; done | sort -u; }
remove_untagged() {
    local engine="$1" id
    shift
    for id in "$@"; do
        if [ -z "$("$engine" image inspect --format '{{join .RepoTags ""}}' "$id" 2>/dev/null)" ]; then
            "$engine" rmi "$id" >/dev/null 2>&1 || true
        fi
    done
}

build_oci() {
    local engine="$1" base="${BASE:-}" args=() t start
    if [ -z "$base" ] && [ "$engine" = podman ] && ! podman image exists "$default_base" \
        && ! podman pull -q "$default_base" >/dev/null 2>&1; then
        log "cannot pull $default_base: using the local Debian base $local_base"
        make_local_base
        base="$local_base"
    fi
    if [ -n "$base" ]; then args+=(--build-arg "BASE=$base"); fi
    if [ -n "${TORCH_INDEX:-}" ]; then args+=(--build-arg "TORCH_INDEX=$TORCH_INDEX"); fi
    for t in "${tags[@]}"; do args+=(-t "$t"); done
    if [ "$engine" = podman ]; then
        args+=(--layers --network host --ignorefile containers/Dockerfile.dockerignore)
        if [ -d /etc/ssl/certs ]; then args+=(-v /etc/ssl/certs:/etc/ssl/certs:ro); fi
        if [ -f /etc/pip.conf ]; then args+=(-v /etc/pip.conf:/etc/pip.conf:ro); fi
    fi
    mapfile -t previous < <(old_ids "$engine")
    start=$SECONDS
    "$engine" build -f containers/Dockerfile "${args[@]}" .
    remove_untagged "$engine" "${previous[@]}"
    log "built ${tags[*]} in $((SECONDS - start)) s ($("$engine" image inspect --format '{{.Size}}' "${tags[0]}") bytes)"
    echo "nextflow run main.nf -profile $engine[,gpu] ... (image ${tags[1]}; or --container ${tags[0]})"
}

case "$1" in
    docker|podman) build_oci "$1" ;;
    apptainer|singularity)
        "$1" build --build-arg "TORCH_INDEX=${TORCH_INDEX:-lock}" "unicoal-${hash}${suffix}.sif" containers/unicoal.def
        echo "nextflow run main.nf -profile $1[,gpu] --apptainer_image unicoal-${hash}${suffix}.sif ..." ;;
esac
