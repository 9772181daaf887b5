#!/usr/bin/env bash
# Print the package's code hash (scripts/code_hash.sh): the tag suffix of the images
# (scripts/build_images.sh) and what bin/unicoal checks an image against. It no longer writes into
# bin/unicoal: a stamp there entered every task's cache key, so any edit re-ran the whole pipeline.
# The pipeline hashes each step's own modules instead (scripts/code_hash.py, conf/modules.config).
set -euo pipefail
exec "$(cd "$(dirname "$0")" && pwd)/code_hash.sh" "$@"
