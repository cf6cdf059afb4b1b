"""BatchTopK SAE training steps/s: jaxdisent vs dictionary_learning's BatchTopKTrainer (PyTorch),
same shapes, side by side on this machine.

  pip install -e '.[bench]' && pip install --no-deps dictionary-learning==0.1.0 einops
  python benchmarks/bench_sae.py [--dim=768] [--expansion=16] [--k=32] [--batch=4096] [--steps=5]

dictionary_learning's package __init__ imports nnsight for its activation buffer, which the
trainer does not use; a stub module stands in for it here so the trainer imports without nnsight.
Both sides: Adam, AuxK (1/32), decoder-gradient projection + renormalisation, clip 1.0, the
threshold EMA; batches are the same random unit-norm embeddings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def time_steps(step, steps, warmup=2):
  for i in range(warmup):
    step(i)
  start = time.perf_counter()
  for i in range(steps):
    step(warmup + i)
  return steps / (time.perf_counter() - start)


def ours(x_np, dim, dict_size, k, steps):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  config = load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), {
      "data.synthetic.dim": dim, "model.dict_size": dict_size, "model.k": k,
      "train.batch_size": len(x_np), "model.init_batch": 1024, "loss.threshold_start_step": 0})
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), 0)
  params, model_state = method.init(jax.random.key(0))
  holder = [parallel.place_state(TrainState.create(params, method.optimizer().init(params), model_state))]
  batch = parallel.place_batch({"x": x_np, "index": np.arange(len(x_np), dtype=np.int32)})

  def step(_):
    holder[0], metrics = parallel.step(holder[0], batch)
    jax.block_until_ready(metrics["loss"])

  return time_steps(step, steps)


def dictionary_learning_trainer(x_np, dim, dict_size, k, steps):
  sys.modules.setdefault("nnsight", types.SimpleNamespace(LanguageModel=object))
  import torch  # pylint: disable=g-import-not-at-top
  from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer  # pylint: disable=g-import-not-at-top
  trainer = BatchTopKTrainer(steps=1000, activation_dim=dim, dict_size=dict_size, k=k, layer=0,
                             lm_name="none", device="cpu", seed=0, warmup_steps=10,
                             threshold_start_step=0)
  x = torch.from_numpy(x_np)
  return time_steps(lambda i: trainer.update(i, x), steps)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--dim", type=int, default=768)
  parser.add_argument("--expansion", type=int, default=16)
  parser.add_argument("--k", type=int, default=32)
  parser.add_argument("--batch", type=int, default=4096)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  import numpy as np  # pylint: disable=g-import-not-at-top
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import einops  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    sys.exit("needs torch, einops and dictionary-learning: see the docstring")
  x = np.random.default_rng(0).normal(size=(args.batch, args.dim)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  dict_size = args.dim * args.expansion
  print(f"BatchTopK SAE step: d={args.dim}, dict={dict_size}, k={args.k}, batch={args.batch}, "
        f"CPU threads={torch.get_num_threads()}")
  rate_ours = ours(x, args.dim, dict_size, args.k, args.steps)
  print(f"  jaxdisent                      {rate_ours:7.3f} steps/s", flush=True)
  rate_ref = dictionary_learning_trainer(x, args.dim, dict_size, args.k, args.steps)
  print(f"  dictionary_learning (PyTorch)  {rate_ref:7.3f} steps/s")
  print(f"  ratio jaxdisent / dictionary_learning = {rate_ours / rate_ref:.2f}x")


if __name__ == "__main__":
  main()
