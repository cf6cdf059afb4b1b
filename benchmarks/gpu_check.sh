#!/usr/bin/env bash
# The accelerator check: each method's sharded step (1 device vs all devices), pmap == shard_map,
# resume, the BatchTopK SAE step's TFLOP/s against the device's peak, bf16 vs f32 where it exists,
# the beta-VAE step against PyTorch eager on the same device (needs torch);
# prints one table. Exit 0 when every check passes.
#
#   benchmarks/gpu_check.sh                    # NVIDIA GPU(s): needs jax[cuda12]
#   benchmarks/gpu_check.sh --platform=cpu     # 4 forced CPU devices, a smaller SAE step
#   benchmarks/gpu_check.sh --help             # every flag (benchmarks/gpu_check.py)
set -euo pipefail
cd "$(dirname "$0")/.."
platform=gpu
args=()
for arg in "$@"; do
  case "$arg" in
    --platform=gpu|--platform=cuda) platform=gpu ;;
    --platform=cpu) platform=cpu ;;
    --platform=*) echo "[jaxdisent] error: $arg: use --platform=gpu or --platform=cpu" >&2; exit 2 ;;
    *) args+=("$arg") ;;
  esac
done
if [[ "$platform" == cpu ]]; then
  export JAX_PLATFORMS=cpu
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=4"
  # the d768 x16 B4096 step takes seconds per step on a small CPU: a smaller SAE unless given
  exec python3 benchmarks/gpu_check.py --platform=cpu --sae_batch=1024 --sae_expansion=4 \
      --steps=3 ${args[@]+"${args[@]}"}
fi
export JAX_PLATFORMS=cuda
exec python3 benchmarks/gpu_check.py --platform=gpu ${args[@]+"${args[@]}"}
