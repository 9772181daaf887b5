#!/usr/bin/env bash
# The main job on the embedded cohort: the Nextflow pipeline's `-profile test`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/test}
export PATH="$PWD/.venv/bin:$PATH"
exec nextflow run main.nf -profile test --outdir "$OUT" -resume
