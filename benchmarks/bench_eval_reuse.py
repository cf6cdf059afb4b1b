"""Evaluating a new checkpoint: programs with the parameters as arguments (jaxdisent) vs a jit of a
closure over the parameters (what the evaluators did before, and what one writes first).

  python benchmarks/bench_eval_reuse.py [--checkpoints=3] [--sae_dim=768] [--sae_dict=16384]
      [--images=2048] [--rows=1024]

Two workloads, each timed per checkpoint (fresh random parameters, as a run's checkpoints are):

* beta-VAE: render-and-encode ``--images`` dSprites images (``metrics.sample_codes_and_factors``,
  one fused program) with the quick-start model;
* SAE: encode ``--rows`` embeddings with a BatchTopK SAE of ``--sae_dim`` x ``--sae_dict``
  (CLIP ViT-L/14 size by default), batches of 4,096 (``evals.dictionary.encode_batched``).

The closure side compiles its program at every checkpoint (the parameters are constants of it);
ours compiles at the first and reuses the program after. The sides alternate per checkpoint, in one
process, after a warm-up of both on a quarter of the size (other shapes: the measured programs still
compile at the first checkpoint, but the data's own programs are warm); each side's first checkpoint
is reported apart (both compile there). The persistent compilation cache is off, as in a fresh
process. Prints seconds per checkpoint and the ratio of the later checkpoints' medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoints", type=int, default=3)
  parser.add_argument("--sae_dim", type=int, default=768)
  parser.add_argument("--sae_dict", type=int, default=16384)
  parser.add_argument("--images", type=int, default=2048)
  parser.add_argument("--rows", type=int, default=1024)
  args = parser.parse_args(argv)
  if args.checkpoints < 2:
    parser.error("--checkpoints must be >= 2 (the first compiles on both sides)")

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_enable_compilation_cache", False)
  from jaxdisent import metrics  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals.dictionary import encode_batched  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.models.vae import VAE  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top

  vae = make_method(load_config(os.path.join(ROOT, "configs", "beta_vae_dsprites.py")))
  sae = make_method(load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), {
      "data.synthetic.dim": args.sae_dim, "model.dict_size": args.sae_dict, "model.k": 32,
      "model.init_batch": 1024}))
  all_rows = np.asarray(sae.data.batch(0, 0, 0, args.rows)["x"])
  key = jax.random.key(0)
  size = {"images": args.images, "rows": args.rows}

  def vae_ours(params):
    return metrics.sample_codes_and_factors(vae.data, vae.representation_fn(params),
                                            size["images"], key)[0]

  def vae_closure(params):
    model = vae._forward_model()  # pylint: disable=protected-access
    represent = jax.jit(lambda x: model.apply({"params": params}, x, method=VAE.encode)[0])
    return metrics.sample_codes_and_factors(vae.data, represent, size["images"], key)[0]

  def sae_ours(state):
    return encode_batched(sae, state, all_rows[:size["rows"]])

  def sae_closure(state):
    rows = all_rows[:size["rows"]]
    run = jax.jit(lambda x: sae.encode(state.params, state.model_state, x))
    return np.concatenate([np.asarray(run(rows[i:i + 4096])) for i in range(0, len(rows), 4096)])

  class State:
    def __init__(self, params, model_state):
      self.params, self.model_state = params, model_state

  workloads = {
      "beta-VAE render+encode": (lambda c: vae.init(jax.random.key(c))[0], vae_ours, vae_closure),
      "SAE encode": (lambda c: State(*sae.init(jax.random.key(c))), sae_ours, sae_closure),
  }
  for name, (make, ours, closure) in workloads.items():
    size.update(images=max(args.images // 4, 1), rows=max(args.rows // 4, 1))
    warm = make(-1)
    np.asarray(ours(warm))
    np.asarray(closure(warm))
    size.update(images=args.images, rows=args.rows)
    times = {"jaxdisent": [], "closure": []}
    for c in range(args.checkpoints):
      checkpoint = make(c)
      for side, fn in (("jaxdisent", ours), ("closure", closure)):
        start = time.perf_counter()
        out = fn(checkpoint)
        np.asarray(out)
        times[side].append(time.perf_counter() - start)
      print(f"[bench] {name}, checkpoint {c}: jaxdisent {times['jaxdisent'][-1]:.2f} s, "
            f"closure {times['closure'][-1]:.2f} s", flush=True)
    ours_later = statistics.median(times["jaxdisent"][1:])
    closure_later = statistics.median(times["closure"][1:])
    print(f"[bench] {name}: first checkpoint jaxdisent {times['jaxdisent'][0]:.2f} s vs closure "
          f"{times['closure'][0]:.2f} s; later checkpoints (median of {args.checkpoints - 1}) "
          f"jaxdisent {ours_later:.2f} s vs closure {closure_later:.2f} s = "
          f"{closure_later / ours_later:.2f}x", flush=True)


if __name__ == "__main__":
  main()
