#!/usr/bin/env bash
# On a GPU machine: the long beta-VAE runs of issue 25, trained without evaluating, one archive
# (checkpoint + config + log, ~7.4 MiB) per model or target in OUT_DIR; the evaluation is
# CPU-bound and runs afterwards on any machine:
#
#   bash benchmarks/gpu_long_runs.sh curve OUT_DIR [benchmarks/beta_vae_curve.py flags]
#       the learning curve (beta 16, seed 0, lr 1e-4) to 3k / 10k / 30k / 100k steps, a checkpoint
#       every 5,000; writes OUT_DIR/step_<N>.tar.gz as each target is reached. Then here:
#       python benchmarks/beta_vae_curve.py --workdir=runs/beta_curve --import_dir=OUT_DIR
#   bash benchmarks/gpu_long_runs.sh zoo OUT_DIR [benchmarks/beta_vae_zoo.py flags]
#       the zoo (beta 1, 4, 16 x seeds 0, 1; --num_steps, default 30000), the seeds of each beta
#       as one vmapped program; writes OUT_DIR/beta<b>_seed<s>.tar.gz. Then here:
#       python benchmarks/beta_vae_zoo.py --workdir=runs/zoo --num_steps=30000 --import_dir=OUT_DIR
#
# Stopped (SIGTERM or a time limit), the same command goes on from the checkpoints in WORKDIR
# (JAXDISENT_LONG_RUNS_WORKDIR, default /tmp/jaxdisent_long_runs); the curve skips targets whose
# archive exists. Set JAX_PLATFORMS=cpu to try it on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash benchmarks/gpu_long_runs.sh curve|zoo OUT_DIR [flags]"
if [[ $# -lt 2 || "$2" == -* ]]; then
  echo "[jaxdisent] error: give what to train and the output folder first; $usage" >&2
  exit 2
fi
what="$1"
out="$2"
shift 2
work="${JAXDISENT_LONG_RUNS_WORKDIR:-/tmp/jaxdisent_long_runs}"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cuda}"
case "$what" in
  curve) exec python3 benchmarks/beta_vae_curve.py --workdir="$work/curve" --train_only \
             --export_dir="$out" --checkpoint_every=5000 "$@" ;;
  zoo) exec python3 benchmarks/beta_vae_zoo.py --workdir="$work/zoo" --train_only \
           --export_dir="$out" --num_steps=30000 --vmap_cells "$@" ;;
  *) echo "[jaxdisent] error: '$what' is neither curve nor zoo; $usage" >&2; exit 2 ;;
esac
