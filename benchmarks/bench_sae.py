"""BatchTopK SAE training steps/s: jaxdisent (sparse and dense formulations) vs
dictionary_learning's BatchTopKTrainer (PyTorch), same shapes, side by side on this machine,
with peak memory and the time of the encoder matmul alone (the floor of any SAE step).

  pip install -e '.[bench]' && pip install --no-deps dictionary-learning==0.1.0 einops
  python benchmarks/bench_sae.py [--dims=768] [--expansions=16] [--k=32] [--batch=4096] \
      [--steps=10] [--sides=sparse,dense,dictionary_learning,floor] [--repeats=1] [--threads=1]

Every (shape, side) runs in its own subprocess, so its peak resident memory (ru_maxrss) is its
own; sides alternate within a repeat so a busy machine disturbs them alike. The floor is
``relu((x - b_dec) @ W_enc + b_enc)`` alone, jitted. dictionary_learning's package __init__
imports nnsight for its activation buffer, which the trainer does not use; a stub module stands
in for it. Both trainers: Adam, AuxK (1/32), decoder-gradient projection + renormalisation, clip
1.0, the threshold EMA; batches are the same random unit-norm embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SIDES = ("sparse", "dense", "dictionary_learning", "floor")


def time_steps(step, steps, warmup=2):
  for i in range(warmup):
    step(i)
  start = time.perf_counter()
  for i in range(steps):
    step(warmup + i)
  return steps / (time.perf_counter() - start)


def batch(dim, size):
  import numpy as np  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).normal(size=(size, dim)).astype(np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def ours(x_np, dim, dict_size, k, steps, formulation):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  config = load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), {
      "data.synthetic.dim": dim, "model.dict_size": dict_size, "model.k": k,
      "train.batch_size": len(x_np), "model.init_batch": 1024, "loss.threshold_start_step": 0,
      "model.formulation": formulation})
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), 0)
  params, model_state = method.init(jax.random.key(0))
  holder = [parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                   model_state))]
  placed = parallel.place_batch({"x": x_np, "index": np.arange(len(x_np), dtype=np.int32)})

  def step(_):
    holder[0], metrics = parallel.step(holder[0], placed)
    jax.block_until_ready(metrics["loss"])

  rate = time_steps(step, steps)
  # XLA's own account of the step's buffers (temp) besides its arguments (params, Adam, batch)
  analysis = parallel._step.lower(holder[0], placed).compile().memory_analysis()  # pylint: disable=protected-access
  return rate, {"xla_temp_mib": analysis.temp_size_in_bytes / 2 ** 20,
                "xla_args_mib": analysis.argument_size_in_bytes / 2 ** 20}


def floor(x_np, dim, dict_size, steps):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  w = jax.random.normal(jax.random.key(0), (dim, dict_size)) / jnp.sqrt(dim)
  b_enc, b_dec = jnp.zeros((dict_size,)), jnp.zeros((dim,))
  encode = jax.jit(lambda x, w, b_enc, b_dec: jax.nn.relu((x - b_dec) @ w + b_enc))
  x = jnp.asarray(x_np)
  return time_steps(lambda _: jax.block_until_ready(encode(x, w, b_enc, b_dec)), steps)


def dictionary_learning_trainer(x_np, dim, dict_size, k, steps, device="cpu"):
  """dictionary_learning's BatchTopKTrainer steps/s on `device` ('cpu' or 'cuda'; CUDA work is
  asynchronous, so the timed loop ends with a synchronisation)."""
  sys.modules.setdefault("nnsight", types.SimpleNamespace(LanguageModel=object))
  import torch  # pylint: disable=g-import-not-at-top
  from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer  # pylint: disable=g-import-not-at-top
  trainer = BatchTopKTrainer(steps=1000, activation_dim=dim, dict_size=dict_size, k=k, layer=0,
                             lm_name="none", device=device, seed=0, warmup_steps=10,
                             threshold_start_step=0)
  x = torch.from_numpy(x_np).to(device)
  if device == "cpu":
    return time_steps(lambda i: trainer.update(i, x), steps)

  def step(i):
    trainer.update(i, x)
    if i == 1 or i == steps + 1:   # the last warm-up step and the last timed step
      torch.cuda.synchronize()
  return time_steps(step, steps)


def run_one(side, dim, expansion, k, size, steps, threads=0):
  """In this process: one side at one shape; prints a JSON line."""
  if threads == 1:   # one compute thread on both sides (steadier on a busy machine)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(1)
  elif threads:
    raise SystemExit("--threads must be 0 (all cores) or 1")
  x = batch(dim, size)
  dict_size = dim * expansion
  extra = {}
  if side == "dictionary_learning":
    rate = dictionary_learning_trainer(x, dim, dict_size, k, steps)
  elif side == "floor":
    rate = floor(x, dim, dict_size, steps)
  else:
    rate, extra = ours(x, dim, dict_size, k, steps, side)
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps({"side": side, "steps_per_s": rate, "peak_mib": peak_mib, **extra}))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--dims", default="768")
  parser.add_argument("--expansions", default="16")
  parser.add_argument("--k", type=int, default=32)
  parser.add_argument("--batch", type=int, default=4096)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--sides", default=",".join(SIDES))
  parser.add_argument("--threads", type=int, default=0, help="0: all cores; 1: one thread per side")
  parser.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: side,dim,expansion
  args = parser.parse_args()
  if args.one:
    side, dim, expansion = args.one.split(",")
    run_one(side, int(dim), int(expansion), args.k, args.batch, args.steps, args.threads)
    return
  sides = [s for s in args.sides.split(",") if s]
  unknown = set(sides) - set(SIDES)
  if unknown:
    sys.exit(f"unknown --sides {sorted(unknown)}; choose from {SIDES}")
  if "dictionary_learning" in sides:
    sys.modules.setdefault("nnsight", types.SimpleNamespace(LanguageModel=object))
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import einops  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
      import dictionary_learning  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      sys.exit("needs torch, einops and dictionary-learning (see the docstring), or leave "
               "dictionary_learning out of --sides")
    print(f"torch {torch.__version__}, CPU threads={torch.get_num_threads()}")
  print(f"BatchTopK SAE step, k={args.k}, batch={args.batch}, {args.steps} timed steps, "
        f"{os.cpu_count()} CPUs, " + ("1 thread per side" if args.threads == 1 else "all cores"))
  for dim in (int(d) for d in args.dims.split(",")):
    for expansion in (int(e) for e in args.expansions.split(",")):
      rates = {s: [] for s in sides}
      peaks = {s: 0.0 for s in sides}
      xla = {}
      for _ in range(args.repeats):
        for side in sides:
          out = subprocess.run(
              [sys.executable, os.path.abspath(__file__), f"--one={side},{dim},{expansion}",
               f"--k={args.k}", f"--batch={args.batch}", f"--steps={args.steps}",
               f"--threads={args.threads}"],
              capture_output=True, text=True, check=False)
          if out.returncode:
            sys.exit(f"{side} at d={dim} x{expansion} failed:\n{out.stderr[-3000:]}")
          result = json.loads(out.stdout.strip().splitlines()[-1])
          rates[side].append(result["steps_per_s"])
          peaks[side] = max(peaks[side], result["peak_mib"])
          if "xla_temp_mib" in result:
            xla[side] = (result["xla_temp_mib"], result["xla_args_mib"])
      best = {s: max(r) for s, r in rates.items()}
      print(f"d={dim}, {expansion}x = {dim * expansion} latents")
      for side in sides:
        label = {"sparse": "jaxdisent sparse", "dense": "jaxdisent dense",
                 "dictionary_learning": "dictionary_learning", "floor": "encoder matmul alone"}[side]
        print(f"  {label:24s} {best[side]:7.3f} steps/s  {1000 / best[side]:8.1f} ms/step  "
              f"peak RSS {peaks[side]:7.0f} MiB   (runs: "
              + ", ".join(f"{r:.3f}" for r in rates[side]) + ")"
              + (f"  XLA temp {xla[side][0]:.0f} MiB + args {xla[side][1]:.0f} MiB"
                 if side in xla else ""))
      if "dictionary_learning" in best:
        for side in ("sparse", "dense"):
          if side in best:
            print(f"  ratio jaxdisent {side} / dictionary_learning = "
                  f"{best[side] / best['dictionary_learning']:.2f}x")
      if "floor" in best and "sparse" in best:
        print(f"  encoder matmul share of the sparse step = {best['sparse'] / best['floor']:.2f}")
      sys.stdout.flush()


if __name__ == "__main__":
  main()
