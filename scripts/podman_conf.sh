#!/usr/bin/env bash
# Write podman's configuration for this project's machines, when there is none (scripts/setup.sh
# runs it as root once podman is installed):
#   scripts/podman_conf.sh [CONF]     (default /etc/containers/containers.conf)
# runc, not crun (crun refuses hybrid cgroup layouts such as this project's CI machines),
# cgroupfs, and default ulimits no higher than the host's hard limits (podman's defaults are
# higher, and a container then fails to start). A configuration this script did not write is
# left alone (a note says what it lacks); one it wrote is rewritten only when it changed.
set -euo pipefail
conf_path="${1:-/etc/containers/containers.conf}"
marker='# written by unicoal scripts/podman_conf.sh'
if [ -e "$conf_path" ] && ! grep -qxF "$marker" "$conf_path"; then
    if ! grep -q '^ *runtime *= *"runc"' "$conf_path"; then
        echo "podman_conf: note: $conf_path is not ours and does not set runtime = \"runc\"; left as it is (if podman fails with crun, add it under [engine])" >&2
    fi
    exit 0
fi
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
if [ "$nofile" = unlimited ] || [ "$nofile" -gt 1024 ]; then nofile=1024; fi
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 1000 ]; then nproc=1000; fi
conf="$marker
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\""
if [ "$(cat "$conf_path" 2>/dev/null)" != "$conf" ]; then
    mkdir -p "$(dirname "$conf_path")"
    printf '%s\n' "$conf" > "$conf_path.tmp"
    mv "$conf_path.tmp" "$conf_path"
    echo "podman_conf: wrote $conf_path (runc, cgroupfs, ulimits nofile=$nofile nproc=$nproc)" >&2
fi
