"""XLA:CPU flags against the beta-VAE training step (issue 25, part 2: "XLA:CPU flags").

Each flag set runs in its own process (XLA reads its flags once, when JAX creates its client):
jaxdisent's sharded beta-VAE step on one device, batch 64, best of ``--rounds`` rounds of
``--steps`` steps, as in ``bench_beta_vae.py``. The default (jaxdisent's own flags) runs first and
last, so drift of the machine during the sweep shows as a difference between those two rows. A
flag this jaxlib does not know is reported as such (XLA aborts on unknown flags).

  python benchmarks/bench_xla_cpu_flags.py [--rounds=4] [--steps=20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAG_SETS = [
    ("jaxdisent defaults", ""),
    ("fast math", "--xla_cpu_enable_fast_math=true"),
    ("512-bit vectors", "--xla_cpu_prefer_vector_width=512"),
    ("concurrency-optimised scheduler", "--xla_cpu_enable_concurrency_optimized_scheduler=true"),
    ("XLA's defaults (YNNPACK convolutions)", "JAXDISENT_XLA_DEFAULTS=1"),
    ("no Eigen multi-threading", "--xla_cpu_multi_thread_eigen=false"),
    ("jaxdisent defaults (again: drift check)", ""),
]

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import jaxdisent, jax, numpy as np
from bench_beta_vae import jax_step, time_round
from jaxdisent.data import DSprites
_, images = DSprites().sample(jax.random.key(0), {batch})
step = jax_step(np.asarray(images, dtype=np.float32), True)
runs = [time_round(step, {steps}) for _ in range({rounds})]
print(json.dumps({{"steps_per_s": max(r[0] for r in runs), "cpu_ms": min(r[1] for r in runs)}}))
"""


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  code = _CHILD.format(root=ROOT, bench=os.path.join(ROOT, "benchmarks"), batch=args.batch,
                       steps=args.steps, rounds=args.rounds)
  base_flags = os.environ.get("XLA_FLAGS", "")
  results = []
  for name, flags in FLAG_SETS:
    print(f"running {name} ...", file=sys.stderr, flush=True)
    if flags.startswith("JAXDISENT_"):   # an environment switch, not an XLA flag
      key, value = flags.split("=", 1)
      env = dict(os.environ, XLA_FLAGS=base_flags, **{key: value})
    else:
      env = dict(os.environ, XLA_FLAGS=f"{base_flags} {flags}".strip())
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
      why = (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]
      results.append((name, flags, None, why))
    else:
      results.append((name, flags, json.loads(lines[-1]), ""))
  base = results[0][2]["steps_per_s"] if results[0][2] else None
  print(f"beta-VAE train step, batch {args.batch}, best of {args.rounds} rounds of {args.steps} "
        "steps, one process per flag set")
  for name, flags, result, why in results:
    if result is None:
      print(f"  {name:45s} failed: {why}")
      continue
    ratio = f"{result['steps_per_s'] / base:.2f}x" if base else "-"
    print(f"  {name:45s} {result['steps_per_s']:7.2f} steps/s {result['cpu_ms']:7.1f} CPU ms/step "
          f" {ratio} vs defaults   {flags}")


if __name__ == "__main__":
  main()
