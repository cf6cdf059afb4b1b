"""GEM training step vs the plain beta-VAE step on the same batch (same engine, same device).

Both steps run through jaxdisent's DataParallel on one device with the same 64 correlated-dSprites
images: the beta-VAE method (configs/beta_vae_dsprites.py) and the GEM method
(configs/gem_dsprites.py: DisGraph + directed GNN + graph terms + the image adversarial term, and
the simulated oracle's scores in the batch). Steps are interleaved in rounds so machine load hits
both alike; the report gives the median over rounds of the per-round time ratio (target <= 1.3).

  python benchmarks/bench_gem.py [--steps=20] [--rounds=5] [--batch=64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_stepper(config_name, overrides, batch):
  import jax  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  config = load_config(os.path.join(ROOT, "configs", config_name), overrides)
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), config.seed, devices=jax.devices()[:1])
  params, model_state = method.init(jax.random.key(0))
  holder = [parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                   model_state))]
  placed = parallel.place_batch(batch(method))

  def step():
    holder[0], metrics = parallel.step(holder[0], placed)
    jax.block_until_ready(metrics["loss"])
  return step


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  size = args.batch
  gem_batch = {}

  def gem(method):
    gem_batch.update({k: np.asarray(v) for k, v in method.local_batch(0, 0, 0, size).items()})
    return gem_batch

  def vae(method):
    del method
    return {"image": gem_batch["image"], "index": gem_batch["index"]}  # the same images

  steps = {"gem": make_stepper("gem_dsprites.py", {"train.batch_size": size}, gem)}
  steps["beta_vae"] = make_stepper("beta_vae_dsprites.py", {"train.batch_size": size}, vae)
  for step in steps.values():  # compile + warm up
    for _ in range(3):
      step()
  ratios, times = [], {k: [] for k in steps}
  for _ in range(args.rounds):
    for name, step in steps.items():
      start = time.perf_counter()
      for _ in range(args.steps):
        step()
      times[name].append((time.perf_counter() - start) / args.steps)
    ratios.append(times["gem"][-1] / times["beta_vae"][-1])
  print(f"device: {jax.devices()[0].device_kind} ({jax.devices()[0].platform}), batch {size}, "
        f"{args.rounds} rounds x {args.steps} steps")
  for name in steps:
    print(f"  {name:9s} step: median {1000 * np.median(times[name]):.1f} ms "
          f"(min {1000 * np.min(times[name]):.1f})")
  print(f"  GEM / beta-VAE step time: median ratio {np.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}); target <= 1.3")


if __name__ == "__main__":
  main()
