"""Kernel gradients as explicit matmuls: does it speed up the beta-VAE step on XLA:CPU?

docs/performance.md's profile says most of the step's time is layout copies around the
convolutions' kernel gradients, and suggested computing those gradients as matmuls over patch
matrices in a custom VJP. This benchmark measures that idea side by side with jaxdisent's layers
(issue 25, part 2). Every stride-1 VALID convolution of the model (all of them, with
``layers.SpaceToDepthConv`` / ``layers.SubpixelConvTranspose``) gets a custom VJP whose input
gradient is the usual transposed convolution and whose kernel gradient is, by ``--kernel_grad``:

* ``taps``: one (B*H'*W', C)^T x (B*H'*W', O) matmul per kernel tap (r, s) over the shifted slice;
* ``patches``: the taps' slices concatenated into one (B*H'*W', k*k*C) patch matrix, one matmul;
* ``dot4d``: per tap, a dot_general contracting the (B, H', W') axes in place (no reshape).

It prints each variant's steps/s and CPU ms per step (best of ``--rounds``, alternating), its ratio
to the current layers, and the largest relative gradient difference (float32 rounding, ~1e-7).
Measured on 2 cores (docs/performance.md): 0.96x, 0.80x, 0.98x: not taken.

  python benchmarks/bench_conv_kernel_grads.py [--rounds=4] [--steps=20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("taps", "patches", "dot4d")


def conv_with_matmul_kernel_grad(kernel_grad: str):
  """A stride-1 VALID NHWC/HWIO convolution whose kernel gradient is computed as matmuls."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax import lax  # pylint: disable=g-import-not-at-top
  dims = ("NHWC", "HWIO", "NHWC")

  def conv(x, k):
    return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dims)

  @jax.custom_vjp
  def f(x, k):
    return conv(x, k)

  def fwd(x, k):
    return conv(x, k), (x, k)

  def bwd(res, dy):
    x, k = res
    kh, kw, c, o = k.shape
    b, ho, wo, _ = dy.shape
    dx = lax.conv_general_dilated(dy, jnp.flip(k, (0, 1)).swapaxes(2, 3), (1, 1),
                                  ((kh - 1, kh - 1), (kw - 1, kw - 1)), dimension_numbers=dims)
    n = b * ho * wo
    taps = [x[:, r:r + ho, s:s + wo, :] for r in range(kh) for s in range(kw)]
    over_rows = (((0,), (0,)), ((), ()))
    if kernel_grad == "taps":
      dk = jnp.stack([lax.dot_general(t.reshape(n, c), dy.reshape(n, o), over_rows) for t in taps])
    elif kernel_grad == "patches":
      patches = jnp.concatenate(taps, axis=-1).reshape(n, kh * kw * c)
      dk = lax.dot_general(patches, dy.reshape(n, o), over_rows)
    else:
      dk = jnp.stack([lax.dot_general(t, dy, (((0, 1, 2), (0, 1, 2)), ((), ()))) for t in taps])
    return dx.astype(x.dtype), dk.reshape(kh, kw, c, o).astype(k.dtype)

  f.defvjp(fwd, bwd)
  return f


def make_step(kernel_grad: str | None, batch: int):
  """A jitted Adam step of the quick-start VAE (beta 4) on a fixed batch."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jaxdisent.models import layers  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.vae import VAE  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  images = jnp.asarray((rng.random((batch, 64, 64, 1)) < 0.1).astype(np.float32))
  noise = jnp.asarray(rng.standard_normal((batch, 10)).astype(np.float32))
  model = VAE(latent_dim=10)
  params = model.init(jax.random.key(0), images[:1], noise[:1])
  optimizer = optax.adam(1e-4)
  custom = conv_with_matmul_kernel_grad(kernel_grad) if kernel_grad else None

  def loss(p):
    logits, mean, logvar, _ = model.apply(p, images, noise)
    recon = optax.sigmoid_binary_cross_entropy(logits, images).sum() / batch
    kl = 0.5 * (mean ** 2 + jnp.exp(logvar) - logvar - 1).sum() / batch
    return recon + 4.0 * kl

  def step(p, s):
    value, grads = jax.value_and_grad(loss)(p)
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, value, grads

  from jax import lax as jax_lax  # pylint: disable=g-import-not-at-top
  original = jax_lax.conv_general_dilated

  def routed(x, k, strides, padding, dimension_numbers=None, **kw):
    if custom is not None and tuple(strides) == (1, 1) and padding == "VALID":
      return custom(x, k)
    return original(x, k, strides, padding, dimension_numbers=dimension_numbers, **kw)

  class _Lax:   # layers.py calls lax.conv_general_dilated: route it while tracing this step
    def __getattr__(self, name):
      return routed if name == "conv_general_dilated" else getattr(jax_lax, name)

  saved = layers.lax
  layers.lax = _Lax()
  try:
    compiled = jax.jit(step).lower(params, optimizer.init(params)).compile()
  finally:
    layers.lax = saved
  return compiled, params, optimizer.init(params)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--steps", type=int, default=20, help="steps per round")
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  import jaxdisent  # pylint: disable=g-import-not-at-top,unused-import  (jaxdisent's XLA flags)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  names = ("jaxdisent layers (XLA's kernel gradients)",) + tuple(
      f"kernel gradients as matmuls: {v}" for v in VARIANTS)
  runs = {}
  for name, variant in zip(names, (None,) + VARIANTS):
    print(f"compiling {name} ...", file=sys.stderr, flush=True)
    runs[name] = list(make_step(variant, args.batch))
  reference = None
  for name, (step, p, s) in runs.items():
    grads = jax.tree.leaves(step(p, s)[3])
    if reference is None:
      reference = grads
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(b)) + 1e-30))
               for a, b in zip(grads, reference))
    print(f"  {name:45s} max relative gradient difference {diff:.1e}")
  best = {n: 0.0 for n in runs}
  cpu = {n: float("inf") for n in runs}
  for _ in range(args.rounds):
    for name, run in runs.items():
      step, p, s = run
      wall, clock = time.perf_counter(), time.process_time()
      for _ in range(args.steps):
        p, s, value, _ = step(p, s)
      jax.block_until_ready(value)
      best[name] = max(best[name], args.steps / (time.perf_counter() - wall))
      cpu[name] = min(cpu[name], (time.process_time() - clock) / args.steps * 1e3)
      run[1], run[2] = p, s
  print(f"beta-VAE step, batch {args.batch}, best of {args.rounds} rounds of {args.steps} steps, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}")
  for name in runs:
    print(f"  {name:45s} {best[name]:7.2f} steps/s {cpu[name]:7.1f} CPU ms/step  "
          f"{best[name] / best[names[0]]:.2f}x")


if __name__ == "__main__":
  main()
