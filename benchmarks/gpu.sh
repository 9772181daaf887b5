#!/usr/bin/env bash
# GPU measurements of issue #21, in under 10 minutes on one GPU (H100 / H200):
#   1. Uni-COAL generator (paper config, 59 M parameters): seconds per 256 x 256 x 150 volume,
#      fp32 (the default, as the authors) and bf16 autocast (benchmarks/generator_speed.py);
#   2. one training step of every learned method at its published size (its packaged config:
#      paper for Uni-COAL, <method>.yaml for the ten baselines) on batches of its own training
#      dataset, with seconds per step and peak GPU memory (benchmarks/train_speed.py);
#   3. a few hundred steps of Table I's T1 -> T2 cell at the published size (Uni-COAL_multi,
#      config task_cms) through `unicoal train`, validated on the val subject at the end
#      (run.val_every), with its wall time.
# The data are a synthetic BraTS/IXI-like cohort (unicoal.train.synthetic: 2 train + 1 val
# subjects with T1, T2, PD, FLAIR, T1CE on one grid), so the numbers measure cost, not quality.
#
# Usage:
#   benchmarks/gpu.sh [--out DIR] [--cell-steps N]     # on a GPU machine (device cuda)
#   benchmarks/gpu.sh --dry [--out DIR]                 # CPU, tiny sizes: checks the script end to end
# Environment: PYTHON (default .venv/bin/python, else python3); SAM_CHECKPOINT (sam_vit_b_01ec64.pth:
# Uni-COAL's SAM loss with the paper's ViT-B at 1024 px; without it the LiteMedSAM fallback runs);
# VGG16_CHECKPOINT (vgg16-397923af.pth for pGAN / AutoGAN).
# Output: DIR/generator_{fp32,bf16}.json, DIR/train_steps.json, DIR/cell/ (run directory),
# DIR/summary.json and DIR/summary.md (the tables docs/benchmark.md takes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DRY=0
OUT=results/gpu_bench
CELL_STEPS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry) DRY=1 ;;
        --out) OUT=$2; shift ;;
        --cell-steps) CELL_STEPS=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "benchmarks/gpu.sh: unknown argument '$1' (use --dry, --out DIR, --cell-steps N)" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

METHODS="pix2pix pgan resvit autogan provogan scgan dcsrn deepresolve synthsr arssr"
if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    GEN_ARGS=(--config tiny --batch 2 --repeats 1 --volume 4 --threads 1)
    STEP_CONFIGS="tiny"; for m in $METHODS; do STEP_CONFIGS="$STEP_CONFIGS ${m}_tiny"; done
    STEP_ARGS=(--batch 2 --threads 1)
    SHAPE=48,48,40
    CELL_STEPS=${CELL_STEPS:-2}
    LIMITS=(600 600 900)            # seconds for the generator runs (each), the training steps, the cell
    CELL_SET=(--set model.preset=tiny --set model.img_resolution=32 --set model.num_layers=4 --set model.margin_size=4
              --set optim.batch_size=2 --set run.num_workers=0)
    export OMP_NUM_THREADS=1
else
    DEVICE=cuda
    GEN_ARGS=(--config paper --batch 16 --repeats 3 --volume 150)
    STEP_CONFIGS="paper $METHODS"
    STEP_ARGS=()
    SHAPE=160,160,96
    CELL_STEPS=${CELL_STEPS:-200}
    LIMITS=(75 200 210)             # keeps the whole script under 10 minutes (a stage past its limit is
                                    # stopped and reported as FAILED; the cell's log.csv keeps its steps)
    CELL_SET=(--set run.num_workers=4)
fi
EXTRA_SET=()
[ -n "${SAM_CHECKPOINT:-}" ] && EXTRA_SET+=(--set "loss.sam_checkpoint=$SAM_CHECKPOINT")
[ -n "${VGG16_CHECKPOINT:-}" ] && EXTRA_SET+=(--set "loss.perceptual_checkpoint=$VGG16_CHECKPOINT")
log() { printf '[gpu.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
START=$(date +%s)
FAILED=0

log "device $DEVICE, output $OUT"
if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" || true
fi

log "1/3 generator seconds per volume (fp32, bf16)"
for dtype in fp32 bf16; do
    timeout "${LIMITS[0]}" "$PY" benchmarks/generator_speed.py "${GEN_ARGS[@]}" --device "$DEVICE" --dtype "$dtype" \
        --json "$OUT/generator_$dtype.json" > "$OUT/generator_$dtype.log" 2>&1 || { FAILED=1; log "generator $dtype FAILED (see $OUT/generator_$dtype.log)"; }
done

log "cohort: 3 synthetic subjects of $SHAPE voxels"
"$PY" - "$OUT/cohort" "$SHAPE" <<'EOF'
import sys
from unicoal.train.synthetic import make_synthetic_cohort
shape = tuple(int(v) for v in sys.argv[2].split(","))
make_synthetic_cohort(sys.argv[1], subjects=3, shape=shape, modalities=("T1", "T2", "PD", "FLAIR", "T1CE"),
                      splits=["train", "train", "val"])
EOF
SHEET=$OUT/cohort/samplesheet.csv

log "2/3 one training step of every method at its published size"
# shellcheck disable=SC2086
timeout "${LIMITS[1]}" "$PY" benchmarks/train_speed.py --config $STEP_CONFIGS --steps 1 --device "$DEVICE" --samplesheet "$SHEET" \
    --keep-going "${STEP_ARGS[@]}" "${EXTRA_SET[@]}" --json "$OUT/train_steps.json" > "$OUT/train_steps.log" 2>&1 \
    || { FAILED=1; log "some training steps FAILED (see $OUT/train_steps.log)"; }

log "3/3 Table I T1 -> T2 cell (Uni-COAL_multi, task_cms): $CELL_STEPS steps"
rm -rf "$OUT/cell"
CELL_T0=$(date +%s)
timeout "${LIMITS[2]}" "$PY" -m unicoal train --config task_cms --samplesheet "$SHEET" --out "$OUT/cell" --device "$DEVICE" \
    --max-steps "$CELL_STEPS" --set "run.val_every=$CELL_STEPS" --set run.checkpoint_every=100000 \
    "${CELL_SET[@]}" "${EXTRA_SET[@]}" --no-progress > "$OUT/cell.log" 2>&1 \
    || { FAILED=1; log "cell training FAILED (see $OUT/cell.log)"; }
CELL_S=$(( $(date +%s) - CELL_T0 ))

"$PY" - "$OUT" "$CELL_S" "$DRY" "$(( $(date +%s) - START ))" <<'EOF'
"""Collect the JSON files into summary.json and summary.md."""
import csv
import json
import sys
from pathlib import Path

out, cell_s, dry, total_s = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])


def num(value, fmt=".0f"):
    return "-" if value is None else format(value, fmt)


def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None


gen = {d: load(f"generator_{d}.json") for d in ("fp32", "bf16")}
steps = load("train_steps.json") or []
steps = steps if isinstance(steps, list) else [steps]
cell = {"steps": None, "wall_s": cell_s, "s_per_step": None, "val": None}
log = out / "cell" / "log.csv"
if log.exists():
    rows = list(csv.DictReader(open(log)))
    if rows:
        cell["steps"] = int(rows[-1]["step"])
        cell["s_per_step"] = float(rows[-1]["sec_per_step"])
val = out / "cell" / "val.csv"
if val.exists():
    rows = list(csv.DictReader(open(val)))
    cell["val"] = rows[-1] if rows else None
summary = {"dry": dry, "total_s": total_s, "gpu": (out / "gpu.txt").read_text().strip() if (out / "gpu.txt").exists() else None,
           "generator": gen, "train_steps": steps, "cell": cell}
(out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
lines = [f"GPU: {summary['gpu'] or 'none'}{' (CPU, --dry sizes)' if dry else ''}; total {total_s} s", "",
         "| generator | dtype | batch | s per slice | s per volume (slices) | peak GPU MiB |", "|---|---|---|---|---|---|"]
for d, g in gen.items():
    if g:
        lines.append(f"| {g['config']} ({g['params_G'] / 1e6:.1f} M) | {d} | {g['batch']} | {g['s_per_slice']:.4f} | "
                     f"{num(g.get('s_per_volume'), '.2f')} ({g.get('volume_slices', '-')}) | {num(g.get('peak_gpu_mib'))} |")
    else:
        lines.append(f"| - | {d} | - | FAILED | - | - |")
lines += ["", "| config | method | batch | G / D params (M) | s per step | peak GPU MiB | peak RSS MiB |", "|---|---|---|---|---|---|---|"]
for s in steps:
    if "error" in s:
        lines.append(f"| {s['config']} | - | - | - | FAILED: {s['error'][:80]} | - | - |")
    else:
        lines.append(f"| {s['config']} | {s['method']} | {s['batch']} | {s['params_G'] / 1e6:.2f} / {s['params_D'] / 1e6:.2f} | "
                     f"{s['s_per_step_median']:.3f} | {num(s.get('peak_gpu_mib'))} | {s['peak_rss_mib']:.0f} |")
v = cell["val"] or {}
lines += ["", f"Table I T1 -> T2 cell (task_cms): {cell['steps']} steps in {cell_s} s "
          f"({num(cell['s_per_step'], '.3f')} s/step); "
          f"val PSNR in the head {v.get('val_psnr_head', '-')} dB"]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "done in $(( $(date +%s) - START )) s; summary: $OUT/summary.md"
exit $FAILED
