"""Deliberately wrong relation priors, to measure what training adds over its prior (issue 22).

``corrupt_prior(relations_AxA, truth_AxA, kind, k=1, seed=0)`` returns a corrupted copy of the
oracle's relation matrix (max-normalised, zero diagonal), selected by ``model.prior_corruption``:

* ``none``: unchanged;
* ``reversed``: the transpose (every relation points the other way);
* ``uniform``: every off-diagonal entry 1 (no information: AUROC 0.5);
* ``random``: the off-diagonal entries randomly permuted (same weights, random places);
* ``drop_k``: the prior's entries on the k true edges it ranks highest set to 0 (k true edges
  removed; needs the true graph);
* ``spurious_k``: k entries on pairs with no true edge in either direction set to the prior's
  maximum (k false edges added; needs the true graph).

``random`` / ``spurious_k`` draw with ``numpy.random.default_rng(seed)``
(``model.prior_corruption_seed``).
"""

from __future__ import annotations

import numpy as np

CORRUPTIONS = ("none", "reversed", "uniform", "random", "drop_k", "spurious_k")


def corrupt_prior(relations_AxA, truth_AxA=None, kind: str = "none", k: int = 1, seed: int = 0):
  """The corrupted prior (float32, zero diagonal); see the module docstring."""
  if kind not in CORRUPTIONS:
    raise ValueError(f"unknown model.prior_corruption {kind!r}; use one of {CORRUPTIONS}")
  prior = np.array(relations_AxA, np.float64)
  a = len(prior)
  off = ~np.eye(a, dtype=bool)
  top = float(prior[off].max()) if a > 1 else 0.0
  if kind in ("drop_k", "spurious_k"):
    if truth_AxA is None:
      raise ValueError(f"model.prior_corruption={kind!r} needs a dataset with a known graph "
                       "(Pendulum, correlated dSprites); use reversed, uniform or random")
    truth = np.abs(np.asarray(truth_AxA)) > 0
    if truth.shape != prior.shape:
      raise ValueError(f"true graph {truth.shape} and prior {prior.shape} differ in shape")
    edges = np.argwhere(truth & off) if kind == "drop_k" else np.argwhere(~(truth | truth.T) & off)
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= len(edges):
      what = "true edges" if kind == "drop_k" else "pairs without a true edge"
      raise ValueError(f"model.prior_corruption_k={k!r} must be an integer in 1..{len(edges)} (the "
                       f"{what} of this graph)")
    k = int(k)
  if kind == "reversed":
    prior = prior.T.copy()
  elif kind == "uniform":
    prior = off.astype(np.float64)
  elif kind == "random":
    values = prior[off]
    prior[off] = np.random.default_rng(seed).permutation(values)
  elif kind == "drop_k":
    order = np.argsort(-prior[edges[:, 0], edges[:, 1]], kind="stable")
    chosen = edges[order[:k]]
    prior[chosen[:, 0], chosen[:, 1]] = 0.0
  elif kind == "spurious_k":
    chosen = edges[np.random.default_rng(seed).choice(len(edges), size=k, replace=False)]
    prior[chosen[:, 0], chosen[:, 1]] = top if top > 0 else 1.0
  prior[~off] = 0.0
  return prior.astype(np.float32)
