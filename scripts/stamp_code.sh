#!/usr/bin/env bash
# Write the package's code hash (scripts/code_hash.sh) into bin/unicoal's UNICOAL_CODE_HASH line,
# only when it changed: Nextflow hashes bin/unicoal into every task that calls `unicoal`, so a
# new stamp re-runs those tasks on -resume and an unchanged one keeps them cached.
# Run by `make setup`; main.nf does the same at launch, so editing code and re-running is enough.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
launcher="$root/bin/unicoal"
new="$("$root/scripts/code_hash.sh" "$root")"
old="$(sed -n 's/^UNICOAL_CODE_HASH=\([0-9a-f]*\).*/\1/p' "$launcher")"
if [ "$old" != "$new" ]; then
    tmp="$(mktemp "$launcher.XXXXXX")"
    sed "s/^UNICOAL_CODE_HASH=[0-9a-f]*/UNICOAL_CODE_HASH=$new/" "$launcher" > "$tmp"
    chmod 755 "$tmp"
    mv "$tmp" "$launcher"
    echo "stamp_code: bin/unicoal code hash ${old:-none} -> $new" >&2
fi
echo "$new"
