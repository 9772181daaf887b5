#!/usr/bin/env bash
# Print the code hash of the unicoal package: 16 hex digits of the SHA-256 of the `sha256sum`
# listing of every file under unicoal/ (no __pycache__ / *.pyc), pyproject.toml and
# requirements.lock.txt, sorted by path (C locale).
#   scripts/code_hash.sh [ROOT]        (default: the repository this script lives in)
# The same recipe runs in main.nf (codeHash(): restamps bin/unicoal at launch) and in the image
# builds (containers/), so the launcher, the images and the task cache agree on one number.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
{
    find unicoal -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print | LC_ALL=C sort
    printf '%s\n' pyproject.toml requirements.lock.txt
} | while IFS= read -r f; do sha256sum "$f"; done | sha256sum | cut -c1-16
