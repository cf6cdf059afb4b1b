#!/usr/bin/env bash
# On a GPU machine: train the beta-VAE learning curve's model to every target without evaluating,
# writing OUT_DIR/step_<N>.tar.gz (checkpoint + config + metrics, ~7.4 MiB each) as each target
# is reached; then evaluate on any machine (the evaluation is CPU-bound) with
#   python benchmarks/beta_vae_curve.py --workdir=runs/beta_curve --import_dir=OUT_DIR
#
#   bash benchmarks/gpu_long_runs.sh OUT_DIR [more benchmarks/beta_vae_curve.py flags]
#
# Defaults: --steps=3000,10000,30000,100000 (beta 16, lr 1e-4, seed 0: the curve's own) and a
# checkpoint every 5,000 steps. A stopped run (SIGTERM, or a time limit) keeps its checkpoint in
# WORKDIR (JAXDISENT_CURVE_WORKDIR, default /tmp/jaxdisent_curve): the same command goes on, and a
# target whose archive exists is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "[jaxdisent] error: give the output folder first: bash benchmarks/gpu_long_runs.sh OUT_DIR" >&2
  exit 2
fi
out="$1"
shift
export JAX_PLATFORMS="${JAX_PLATFORMS:-cuda}"
exec python3 benchmarks/beta_vae_curve.py --workdir="${JAXDISENT_CURVE_WORKDIR:-/tmp/jaxdisent_curve}" \
    --train_only --export_dir="$out" --checkpoint_every=5000 "$@"
