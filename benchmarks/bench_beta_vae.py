"""beta-VAE training steps/s: jaxdisent's sharded step vs the same model in PyTorch.

Same architecture (disentanglement_lib conv encoder with 2x2 last kernels, 4x4/stride-2 transposed
conv decoder), same batch (64 binary 64x64 dSprites images), Adam, beta=4, one optimiser step per
iteration, measured side by side in one process: jaxdisent's default layers (space-to-depth
encoder, phase-conv decoder), the same model with flax's nn.Conv / nn.ConvTranspose, PyTorch eager
and (--compile) torch.compile. Rounds alternate between the contenders and each reports its best
round, so a machine shared with other work disturbs all of them alike; the CPU time per step
(process time, all threads) is printed too.

  pip install -e '.[bench]'   # torch==2.13.0, CPU; any newer torch works the same
  python benchmarks/bench_beta_vae.py [--steps=20] [--rounds=5] [--batch=64] [--threads=N] [--compile]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def warm(step, warmup: int = 3):
  for _ in range(warmup):
    step()
  return step


def time_round(step, steps: int):
  """(steps/s wall, CPU ms per step) over one round of ``steps`` steps."""
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(steps):
    step()
  return steps / (time.perf_counter() - start), (time.process_time() - cpu) / steps * 1e3


def jax_step(images_np, fast_layers: bool):
  import jax  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.vae import VAE  # pylint: disable=g-import-not-at-top

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = load_config(os.path.join(root, "configs", "beta_vae_dsprites.py"),
                       {"train.batch_size": len(images_np)})
  method = make_method(config)
  method.model = VAE(latent_dim=10, subpixel=fast_layers, space_to_depth=fast_layers)
  parallel = DataParallel(method, method.optimizer(), config.seed, devices=jax.devices()[:1])
  params, model_state = method.init(jax.random.key(0))
  state = parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                 model_state))
  batch = parallel.place_batch({"image": images_np,
                                "index": __import__("numpy").arange(len(images_np), dtype="int32")})
  holder = [state]

  def step():
    holder[0], metrics = parallel.step(holder[0], batch)
    jax.block_until_ready(metrics["loss"])

  return warm(step)


def torch_step(images_np, compile_: bool = False, device: str = "cpu"):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  encoder = nn.Sequential(
      nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
      nn.Conv2d(32, 64, 2, 2, 0), nn.ReLU(), nn.Conv2d(64, 64, 2, 2, 0), nn.ReLU(),
      nn.Flatten(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 20))
  decoder = nn.Sequential(
      nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
      nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
      nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
  encoder, decoder = encoder.to(device), decoder.to(device)
  optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-4)
  x = torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy()).to(device)

  def loss_fn():
    h = encoder(x)
    mean, logvar = h[:, :10], h[:, 10:]
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    logits = decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum() / x.shape[0]
    return recon + 4.0 * kl

  forward = torch.compile(loss_fn) if compile_ else loss_fn

  def step():
    loss = forward()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if device != "cpu":   # CUDA runs asynchronously: time finished steps, as JAX's side does
      torch.cuda.synchronize()

  return warm(step, 5 if compile_ else 3)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=20, help="steps per round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--compile", action="store_true", help="also time torch.compile")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  args = parser.parse_args()
  import numpy as np  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from jaxdisent.data import DSprites  # pylint: disable=g-import-not-at-top
  try:
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(args.threads)
  except ImportError:
    sys.exit("this benchmark compares against PyTorch: pip install -e '.[bench]'")

  _, images = DSprites().sample(jax.random.key(0), args.batch)
  images = np.asarray(images, dtype=np.float32)
  print(f"beta-VAE train step, batch {args.batch}, 64x64x1, {args.rounds} rounds of {args.steps} "
        f"steps, jax {jax.__version__} {jax.devices()[0].platform} / torch {torch.__version__} "
        f"threads={args.threads}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  steps = {
      "jaxdisent (default layers)": jax_step(images, True),
      "jaxdisent (flax Conv/ConvTranspose)": jax_step(images, False),
      "PyTorch eager": torch_step(images),
  }
  if args.compile:
    try:
      steps["torch.compile"] = torch_step(images, compile_=True)
    except Exception as error:  # pylint: disable=broad-except
      print(f"  torch.compile failed on this machine: {type(error).__name__}: {error}"[:300])
  rounds = {name: [] for name in steps}
  for _ in range(args.rounds):
    for name, step in steps.items():
      rounds[name].append(time_round(step, args.steps))
  best = {name: max(r[0] for r in runs) for name, runs in rounds.items()}
  cpu = {name: min(r[1] for r in runs) for name, runs in rounds.items()}
  for name in steps:
    ratios = "   ".join(f"{best[name] / best[ref]:5.2f}x vs {ref}" for ref in
                       ("PyTorch eager", "torch.compile") if ref in best and ref != name)
    print(f"  {name:38s} {best[name]:7.2f} steps/s  {cpu[name]:7.1f} CPU ms/step   {ratios}")


if __name__ == "__main__":
  main()
