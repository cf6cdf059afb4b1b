"""Where jaxdisent's SVCCA differs from the platonic-representation code's, and why.

The reference reduces each standardised feature set to its top ``cca_dim`` left singular vectors
with ``torch.svd_lowrank`` (randomised) and fits scikit-learn's iterative ``CCA`` on them; we
take an exact eigendecomposition and exact canonical correlations. This prints, per setting, the
reference as published (three seeds of the randomised SVD), the reference with an exact SVD
(``torch.linalg.svd``) and ours. Needs torch (``pip install torch``).

  python benchmarks/svcca_vs_platonic.py [--cca_tol=1e-6]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def reference_svcca(feats_a, feats_b, cca_dim=10, exact_svd=False, cca_tol=1e-6):
  """The platonic code's svcca (centre, scale, top-q SVD, sklearn CCA, mean per-component
  correlation), with the SVD optionally exact and without its 1e-10 jitter."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from sklearn.cross_decomposition import CCA  # pylint: disable=g-import-not-at-top

  def top_left_vectors(x):
    x = x - x.mean(dim=0)
    x = x / (x.std(dim=0) + 1e-8)
    if exact_svd:
      return torch.linalg.svd(x, full_matrices=False)[0][:, :cca_dim].numpy()
    return torch.svd_lowrank(x, q=cca_dim)[0].numpy()

  u_a, u_b = top_left_vectors(feats_a), top_left_vectors(feats_b)
  cca = CCA(n_components=cca_dim, tol=cca_tol, max_iter=5000).fit(u_a, u_b)
  c_a, c_b = cca.transform(u_a, u_b)
  return float(np.mean([np.corrcoef(c_a[:, i], c_b[:, i])[0, 1] for i in range(cca_dim)]))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--cca_tol", type=float, default=1e-6, help="sklearn CCA tol (its default)")
  args = parser.parse_args()
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import alignment as A  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  torch.manual_seed(0)
  print("| n | d | noise | reference (svd_lowrank, 3 seeds) | reference, exact SVD | jaxdisent | "
        "exact-SVD reference - jaxdisent |\n|---|---|---|---|---|---|---|")
  for n, d, noise in ((1000, 64, 0.5), (2000, 128, 1.0), (1000, 32, 2.0)):
    a = rng.normal(size=(n, d))
    b = np.tanh(a @ rng.normal(size=(d, d)) / np.sqrt(d)) + noise * rng.normal(size=(n, d))
    ta, tb = torch.tensor(a), torch.tensor(b)
    low = [reference_svcca(ta, tb, cca_tol=args.cca_tol) for _ in range(3)]
    exact = reference_svcca(ta, tb, exact_svd=True, cca_tol=args.cca_tol)
    ours = A.svcca(a, b)
    print(f"| {n} | {d} | {noise} | {', '.join(f'{v:.4f}' for v in low)} | {exact:.6f} | "
          f"{ours:.6f} | {exact - ours:.1e} |")


if __name__ == "__main__":
  main()
