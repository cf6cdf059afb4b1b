"""Where a beta-VAE training step spends its time on XLA:CPU (the tables of docs/performance.md).

Runs the step (batch 64, Adam) under jax.profiler with XLA's per-op trace events, then sums each
compiled op's time over all threads and groups it by kind of op and by model layer (from the ops'
metadata). Op times are wall time per thread, so on a busy machine they include time spent
descheduled: compare shares, not absolute numbers, between runs.

  python benchmarks/profile_beta_vae_step.py [--steps=5] [--flax_layers]
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--flax_layers", action="store_true",
                      help="profile the model with flax nn.Conv / nn.ConvTranspose layers")
  args = parser.parse_args()
  workdir = tempfile.mkdtemp(prefix="jaxdisent-profile-")
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
                             f" --xla_dump_to={workdir}/hlo --xla_dump_hlo_as_text").strip()
  import jaxdisent  # pylint: disable=g-import-not-at-top,unused-import  (sets jaxdisent's XLA flags)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from jax._src.lib import _profile_data  # pylint: disable=g-import-not-at-top
  from jaxdisent.losses import vae as losses  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.vae import VAE  # pylint: disable=g-import-not-at-top

  fast = not args.flax_layers
  model = VAE(subpixel=fast, space_to_depth=fast)
  images = jnp.asarray(np.random.RandomState(0).rand(64, 64, 64, 1) > 0.8, jnp.float32)
  params = model.init(jax.random.key(0), images, jnp.zeros((64, 10)))["params"]
  optimizer = optax.adam(1e-4)
  opt_state = optimizer.init(params)

  def loss_fn(p, noise):
    logits, mean, logvar, _ = model.apply({"params": p}, images, noise)
    return jnp.mean(losses.bernoulli_reconstruction(logits, images)
                    + 4.0 * losses.gaussian_kl(mean, logvar).sum(-1))

  @jax.jit
  def step(p, s, key):
    loss, grads = jax.value_and_grad(loss_fn)(p, jax.random.normal(key, (64, 10)))
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  key = jax.random.key(0)
  for _ in range(3):
    params, opt_state, loss = step(params, opt_state, key)
  jax.block_until_ready(loss)
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(args.steps):
    params, opt_state, loss = step(params, opt_state, key)
  jax.block_until_ready(loss)
  print(f"layers: {'jaxdisent default' if fast else 'flax'}; XLA_FLAGS={os.environ['XLA_FLAGS']!r}")
  print(f"{(time.perf_counter() - start) / args.steps * 1e3:.1f} ms/step wall, "
        f"{(time.process_time() - cpu) / args.steps * 1e3:.1f} ms/step CPU (no profiler)")
  with jax.profiler.trace(os.path.join(workdir, "trace")):
    for _ in range(args.steps):
      params, opt_state, loss = step(params, opt_state, key)
    jax.block_until_ready(loss)

  op_ms = collections.Counter()
  trace = glob.glob(os.path.join(workdir, "trace", "**", "*.xplane.pb"), recursive=True)[0]
  for plane in _profile_data.ProfileData.from_file(trace).planes:
    for line in plane.lines:
      if "Eigen" not in line.name and "PjRtCpuClient" not in line.name:
        continue
      for event in line.events:
        if "ThunkExecutor" not in event.name:
          op_ms[event.name] += event.duration_ns / args.steps / 1e6
  hlo = open(sorted(glob.glob(os.path.join(workdir, "hlo", "*jit_step*after_optimizations.txt")))[-1]).read()
  bodies = {m.group(1): m.group(2) for m in
            re.finditer(r"^%?([\w.\-]+) \(.*?\) -> .*?\{\n(.*?)\n\}", hlo, re.S | re.M)}
  lines = {}
  for text in hlo.splitlines():
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", text)
    if m:
      lines.setdefault(m.group(1), text)
  by_kind, by_layer = collections.Counter(), collections.Counter()
  for name, ms in op_ms.items():
    text = lines.get(name, "")
    called = re.search(r"calls=%?([\w.\-]+)", text)
    full = text + (bodies.get(called.group(1), "") if called else "")
    if "lhs_dilate" in full:
      kind = "convolution with dilated input (strided-conv input grad)"
    elif "convolution(" in full:
      kind = "other convolutions (forward, kernel grads, stride-1 input grads)"
    elif " dot(" in full:
      kind = "matmuls (dense layers)"
    elif "transpose(" in full or "copy(" in full:
      kind = "layout transposes / copies"
    elif "pad(" in full or "concatenate(" in full or "slice(" in full:
      kind = "pad / slice / concatenate"
    else:
      kind = "element-wise / reductions (ReLU, loss, Adam) and waits"
    by_kind[kind] += ms
    op = re.search(r'op_name="([^"]+)"', full)
    layer = re.search(r"(encoder|decoder)/(\w+)", op.group(1)) if op else None
    direction = "backward" if op and "transpose(" in op.group(1) else "forward"
    by_layer[f"{layer.group(1)}/{layer.group(2)} {direction}" if layer else
             "(no layer: layout copies, optimizer)"] += ms
  total = sum(op_ms.values())
  print(f"summed op time {total:.1f} ms/step over all threads")
  for title, table in (("by kind of op", by_kind), ("by layer", by_layer)):
    print(f"\n{title}:")
    for name, ms in table.most_common(12):
      print(f"  {100 * ms / total:5.1f}%  {name}")


if __name__ == "__main__":
  main()
