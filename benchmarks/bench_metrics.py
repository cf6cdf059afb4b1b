"""Disentanglement metrics at disentanglement_lib's default sizes: jaxdisent vs straightforward
reference loops (NumPy + scikit-learn, as disentanglement_lib computes them), side by side.

Codes come from a cheap synthetic representation of the dSprites factor grid (a fixed random
linear map of the factors plus noise), so the timings measure the metric machinery, not an encoder.

  python benchmarks/bench_metrics.py [--num_train=10000] [--num_eval=5000] [--with_dci]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


def timed(fn, repeat=1):
  fn()  # warm-up (compilation for JAX)
  start = time.perf_counter()
  for _ in range(repeat):
    out = fn()
  return out, (time.perf_counter() - start) / repeat


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--num_train", type=int, default=10_000)
  parser.add_argument("--num_eval", type=int, default=5_000)
  parser.add_argument("--with_dci", action="store_true", help="also time DCI (GBT, minutes)")
  args = parser.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent import metrics as M  # pylint: disable=g-import-not-at-top
  from jaxdisent.data.ground_truth import GroundTruthData  # pylint: disable=g-import-not-at-top
  import reference_disentanglement as ref  # pylint: disable=g-import-not-at-top

  sizes = (3, 6, 40, 32, 32)
  mixing = np.random.default_rng(0).normal(size=(5, 10)) * 0.3 + np.eye(5, 10)

  def represent_np(factors):
    x = factors / (np.array(sizes) - 1.0)
    return x @ mixing + 0.05 * np.random.default_rng(int(factors.sum()) % 1000).normal(size=(len(x), 10))

  class Grid(GroundTruthData):
    name = "grid"
    factor_names = ("shape", "scale", "orientation", "posX", "posY")
    factor_sizes = sizes
    observation_shape = (1, 1, 5)

    def images_from_factors(self, factors):
      return np.asarray(factors, np.float32)[:, None, None, :]

  data = Grid()
  represent_images = lambda images: represent_np(np.asarray(images).reshape(len(images), -1))
  rng = np.random.default_rng(1)
  factors_train = np.stack([rng.integers(0, s, args.num_train) for s in sizes], 1)
  factors_test = np.stack([rng.integers(0, s, args.num_eval) for s in sizes], 1)
  codes_train = represent_np(factors_train).astype(np.float32)
  codes_test = represent_np(factors_test).astype(np.float32)

  rows = []

  def compare(name, ours, reference, repeat=1):
    value_ours, t_ours = timed(ours, repeat)
    value_ref, t_ref = timed(reference, repeat)
    rows.append((name, t_ours, t_ref, value_ours, value_ref))
    print(f"  {name:22s} ours {t_ours * 1e3:9.1f} ms  reference {t_ref * 1e3:9.1f} ms  "
          f"speed-up {t_ref / t_ours:7.1f}x   values {value_ours:.4f} / {value_ref:.4f}", flush=True)

  print(f"disentanglement metrics, {args.num_train} train / {args.num_eval} eval points, 10 codes, "
        f"dSprites factor sizes, {jax.devices()[0].platform}")
  compare("MIG", lambda: M.mig(codes_train, factors_train), lambda: ref.mig(codes_train, factors_train), 3)
  compare("modularity", lambda: M.modularity(codes_train, factors_train),
          lambda: ref.modularity(codes_train, factors_train), 3)
  compare("IRS", lambda: M.irs(codes_train, factors_train)["irs"],
          lambda: ref.irs(codes_train.astype(np.float64), factors_train))
  state = np.random.RandomState(0)
  sample = lambda n, rs: np.stack([rs.randint(0, s, n) for s in sizes], 1)
  compare("FactorVAE score", lambda: M.factor_vae_score(
      data, represent_images, jax.random.key(0), num_train=args.num_train,
      num_eval=args.num_eval, num_variance_estimate=args.num_train)["factor_vae_score"],
          lambda: ref.factor_vae_score(sample, represent_np, 5, state, num_train=args.num_train,
                                       num_eval=args.num_eval, num_variance_estimate=args.num_train))
  # Both sides call the same scikit-learn models here (the reference-compatible default).
  _, t_sap = timed(lambda: M.sap(codes_train, factors_train, codes_test, factors_test))
  _, t_exp = timed(lambda: M.explicitness(codes_train, factors_train, codes_test, factors_test))
  print(f"  {'SAP (sklearn SVMs)':22s} {t_sap * 1e3:9.1f} ms   (same scikit-learn calls as the reference)")
  print(f"  {'explicitness (sklearn)':22s} {t_exp * 1e3:9.1f} ms   (same scikit-learn calls as the reference)")
  if args.with_dci:
    _, t_dci = timed(lambda: M.dci(codes_train, factors_train, codes_test, factors_test))
    print(f"  {'DCI (sklearn GBT)':22s} {t_dci * 1e3:9.1f} ms   (same scikit-learn calls as the reference)")
  total_ours = sum(r[1] for r in rows)
  total_ref = sum(r[2] for r in rows)
  print(f"  {'total (compared rows)':22s} ours {total_ours:7.2f} s  reference {total_ref:7.2f} s  "
        f"speed-up {total_ref / total_ours:.1f}x")


if __name__ == "__main__":
  main()
