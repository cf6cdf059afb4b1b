"""beta-VAE training steps/s: jaxdisent's sharded step vs the same model in eager PyTorch.

Same architecture (disentanglement_lib conv encoder with 2x2 last kernels, 4x4/stride-2 transposed
conv decoder), same batch (64 binary 64x64 dSprites images), Adam, beta=4, one optimiser step per
iteration, measured side by side in one process.

  pip install -e '.[bench]'   # torch==2.13.0, CPU
  python benchmarks/bench_beta_vae.py [--steps=50] [--batch=64] [--threads=N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def time_steps(step, steps: int, warmup: int = 3) -> float:
  for _ in range(warmup):
    step()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  return steps / (time.perf_counter() - start)


def jax_steps_per_second(images_np, steps: int, subpixel: bool) -> float:
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
  method.model = VAE(latent_dim=10, subpixel=subpixel)
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

  return time_steps(step, steps)


def torch_steps_per_second(images_np, steps: int) -> float:
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
  optimizer = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=1e-4)
  x = torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy())

  def step():
    h = encoder(x)
    mean, logvar = h[:, :10], h[:, 10:]
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    logits = decoder(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum() / x.shape[0]
    loss = recon + 4.0 * kl
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  return time_steps(step, steps)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=50)
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
  print(f"beta-VAE train step, batch {args.batch}, 64x64x1, {args.steps} timed steps, "
        f"{jax.devices()[0].platform} / torch {torch.__version__} threads={args.threads}")
  results = {
      "jaxdisent (sub-pixel deconv, default)": jax_steps_per_second(images, args.steps, True),
      "jaxdisent (flax ConvTranspose)": jax_steps_per_second(images, args.steps, False),
      "PyTorch eager": torch_steps_per_second(images, args.steps),
  }
  torch_rate = results["PyTorch eager"]
  for name, rate in results.items():
    print(f"  {name:40s} {rate:7.2f} steps/s   ratio vs PyTorch {rate / torch_rate:5.2f}x")


if __name__ == "__main__":
  main()
