#!/usr/bin/env bash
# Build the pipeline's image, tagged with the code hash the launcher bin/unicoal carries, so that
# `-profile docker` / `-profile apptainer` find it under its default name:
#   scripts/build_images.sh docker      -> docker image unicoal:<version>-<code hash> (+ ...-gpu, the same image)
#   scripts/build_images.sh apptainer   -> unicoal-<code hash>.sif (pass it as --apptainer_image)
# The image installs requirements.lock.txt with --require-hashes (the venv's exact versions).
set -euo pipefail
cd "$(dirname "$0")/.."
hash="$(scripts/stamp_code.sh)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
case "${1:-}" in
    docker)
        docker build -f containers/Dockerfile -t "unicoal:${version}-${hash}" -t "unicoal:${version}-${hash}-gpu" .
        echo "built unicoal:${version}-${hash} (and ...-gpu): nextflow run main.nf -profile docker[,gpu] ..." ;;
    apptainer|singularity)
        "$1" build "unicoal-${hash}.sif" containers/unicoal.def
        echo "built unicoal-${hash}.sif: nextflow run main.nf -profile $1 --apptainer_image unicoal-${hash}.sif ..." ;;
    *) echo "usage: $0 docker|apptainer|singularity" >&2; exit 2 ;;
esac
