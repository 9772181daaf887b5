#!/usr/bin/env bash
# Provide a `nextflow` command in .venv/bin.
#
#   scripts/install_nextflow.sh [VENV_DIR]     (default: <repo>/.venv)
#
# 1. If a `nextflow` is already on PATH (outside the venv), link it into the venv and stop.
# 2. Otherwise resolve io.nextflow:nextflow (version pinned in scripts/nextflow/pom.xml) and its
#    whole dependency tree from Maven Central with `mvn`, and write a launcher script that runs
#    nextflow.cli.Launcher on that classpath with the JVM --add-opens options Nextflow needs,
#    NXF_HOME inside the project (<repo>/.nxf) and NXF_OFFLINE=true.
# Idempotent: a second run with the classpath already resolved takes well under a second.
# Users with internet access should rather install Nextflow the normal way (see docs/pipeline.md).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/.venv}"
BIN="$VENV/bin"
NXF_DIR="$REPO/.nxf"
POM="$REPO/scripts/nextflow/pom.xml"
CLASSPATH_FILE="$NXF_DIR/classpath.txt"
LAUNCHER="$BIN/nextflow"
MARK="# unicoal nextflow launcher"

mkdir -p "$BIN" "$NXF_DIR"

# 1. A nextflow already on PATH (not our own launcher) wins.
existing="$(PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$BIN" | paste -sd: -)" command -v nextflow || true)"
if [[ -n "$existing" ]]; then
    ln -sfn "$existing" "$LAUNCHER"
    echo "install_nextflow: using $existing (linked to $LAUNCHER)" >&2
    exit 0
fi

# 2. Resolve from Maven Central (skipped when the classpath is resolved and every jar exists).
classpath_ok() {
    [[ -s "$CLASSPATH_FILE" ]] || return 1
    [[ "$CLASSPATH_FILE" -nt "$POM" ]] || return 1
    local jar
    IFS=':' read -r -a jars < "$CLASSPATH_FILE"
    for jar in "${jars[@]}"; do [[ -f "$jar" ]] || return 1; done
    return 0
}
if ! classpath_ok; then
    command -v mvn >/dev/null || { echo "install_nextflow: error: neither nextflow nor mvn found (fix: apt-get install maven openjdk-17-jre-headless, or install Nextflow from https://www.nextflow.io)" >&2; exit 1; }
    command -v java >/dev/null || { echo "install_nextflow: error: java not found (fix: apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
    echo "install_nextflow: resolving Nextflow from Maven Central (one-off, about a minute)" >&2
    tmp="$CLASSPATH_FILE.tmp"
    mvn -B -q -f "$POM" dependency:build-classpath -Dmdep.outputFile="$tmp" -Dmdep.includeScope=runtime >&2
    [[ -s "$tmp" ]] || { echo "install_nextflow: error: maven produced no classpath" >&2; exit 1; }
    mv "$tmp" "$CLASSPATH_FILE"
fi

# 3. The launcher (rewritten only when its content changes).
want="$(cat <<LAUNCH
#!/usr/bin/env bash
$MARK (written by scripts/install_nextflow.sh; do not edit)
set -euo pipefail
export NXF_HOME="\${NXF_HOME:-$NXF_DIR/home}"
export NXF_OFFLINE="\${NXF_OFFLINE:-true}"
export NXF_ANSI_LOG="\${NXF_ANSI_LOG:-false}"
export NXF_DISABLE_CHECK_LATEST=true
exec java \${NXF_OPTS:-} \\
  --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED \\
  --add-opens java.base/java.nio=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \\
  --add-opens java.base/java.net=ALL-UNNAMED --add-opens java.base/sun.nio.fs=ALL-UNNAMED \\
  -cp "\$(cat '$CLASSPATH_FILE')" nextflow.cli.Launcher "\$@"
LAUNCH
)"
if [[ -L "$LAUNCHER" ]] || [[ ! -f "$LAUNCHER" ]] || [[ "$(cat "$LAUNCHER")" != "$want" ]]; then
    rm -f "$LAUNCHER"
    printf '%s\n' "$want" > "$LAUNCHER.tmp"
    chmod +x "$LAUNCHER.tmp"
    mv "$LAUNCHER.tmp" "$LAUNCHER"
fi
echo "install_nextflow: $LAUNCHER ready" >&2
