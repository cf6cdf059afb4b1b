"""train.compute_dtype: bfloat16 vs float32 steps of the same method, side by side, one device.

For each method (beta-VAE on dSprites at batch 64; the BatchTopK SAE at d 768, 4x, k 32, batch
1,024), both steps are compiled, warmed, then timed in interleaved rounds so machine load hits both
alike; the report gives steps/s and the median per-round ratio bf16 / f32 (> 1: bf16 faster).
On CPU expect bf16 to be *slower* where XLA:CPU has no native bf16 kernels (it converts around
them); the switch is for accelerators (benchmarks/gpu_check.sh has the same row on a GPU).

  python benchmarks/bench_precision.py [--steps=5] [--rounds=3] [--methods=beta_vae,sae]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SETUPS = {
    "beta_vae": ("beta_vae_dsprites.py", {"train.batch_size": 64}),
    "sae": ("sae_vlm_synthetic.py", {"data.synthetic.dim": 768, "model.dict_size": 3072,
                                     "model.k": 32, "train.batch_size": 1024,
                                     "model.init_batch": 1024, "loss.threshold_start_step": 0}),
}


def make_stepper(name, dtype):
  import jax  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  path, overrides = SETUPS[name]
  config = load_config(os.path.join(ROOT, "configs", path),
                       {**overrides, "train.compute_dtype": dtype})
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), 0, devices=jax.devices()[:1])
  params, model_state = method.init(jax.random.key(0))
  holder = [parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                   model_state))]
  size = int(config.train.batch_size)
  batch = parallel.place_batch(jax.tree.map(lambda x: jax.device_get(x),
                                            method.local_batch(0, 0, 0, size)))
  last = {}

  def step():
    holder[0], metrics = parallel.step(holder[0], batch)
    last["loss"] = metrics["loss"]
    jax.block_until_ready(holder[0].params)
  return step, last


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--methods", default="beta_vae,sae")
  args = parser.parse_args(argv)
  import numpy as np  # pylint: disable=g-import-not-at-top
  names = [m for m in args.methods.split(",") if m]
  unknown = [m for m in names if m not in SETUPS]
  if unknown or args.steps < 1 or args.rounds < 1:
    print(f"[jaxdisent] error: --methods from {sorted(SETUPS)}, --steps/--rounds >= 1",
          file=sys.stderr)
    return 2
  lines = ["| method | float32 steps/s | bfloat16 steps/s | bf16 / f32 (median of rounds) | "
           "loss f32 / bf16 after the run |", "|---|---|---|---|---|"]
  for name in names:
    steppers = {d: make_stepper(name, d) for d in ("float32", "bfloat16")}
    for step, _ in steppers.values():
      for _ in range(2):
        step()                                    # compile + warm
    times = {d: [] for d in steppers}
    for _ in range(args.rounds):
      for dtype, (step, _) in steppers.items():
        start = time.perf_counter()
        for _ in range(args.steps):
          step()
        times[dtype].append((time.perf_counter() - start) / args.steps)
    ratio = float(np.median(np.asarray(times["float32"]) / np.asarray(times["bfloat16"])))
    losses = [float(steppers[d][1]["loss"]) for d in ("float32", "bfloat16")]
    lines.append(f"| {name} | {1 / np.median(times['float32']):.2f} | "
                 f"{1 / np.median(times['bfloat16']):.2f} | {ratio:.2f}x | "
                 f"{losses[0]:.4g} / {losses[1]:.4g} |")
    print(lines[-1], file=sys.stderr, flush=True)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
