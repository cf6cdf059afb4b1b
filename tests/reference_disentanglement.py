"""Straightforward NumPy / scikit-learn transcriptions of disentanglement_lib's metric definitions.

Written independently of jaxdisent, loop by loop as the reference does them, for agreement tests
and as the side-by-side baseline of benchmarks/bench_metrics.py.
"""

import numpy as np
from sklearn.metrics import mutual_info_score


def discretize(codes, num_bins=20):
  out = np.zeros(codes.shape, np.int64)
  for j in range(codes.shape[1]):
    edges = np.histogram(codes[:, j], num_bins)[1]
    out[:, j] = np.digitize(codes[:, j], edges[:-1])
  return out


def mi_matrix(discrete, factors):
  return np.array([[mutual_info_score(factors[:, k], discrete[:, j])
                    for k in range(factors.shape[1])] for j in range(discrete.shape[1])])


def mig(codes, factors):
  m = mi_matrix(discretize(codes), factors)
  entropy = np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
  top = np.sort(m, axis=0)[::-1]
  return np.mean((top[0] - top[1]) / entropy)


def modularity(codes, factors):
  m = mi_matrix(discretize(codes), factors)
  sq = m ** 2
  best = sq.max(axis=1)
  score = 1 - (sq.sum(axis=1) - best) / (best * (sq.shape[1] - 1))
  score[best == 0] = 0
  return score.mean()


def irs(codes, factors, q=0.99):
  ys = discretize(factors.astype(np.float64))
  lat = codes[:, codes.std(axis=0) > 0]
  max_dev = np.max(np.abs(lat - lat.mean(axis=0)), axis=0)
  cum = np.zeros((lat.shape[1], ys.shape[1]))
  for i in range(ys.shape[1]):
    vals = np.unique(ys[:, i])
    for v in vals:
      g = lat[ys[:, i] == v]
      cum[:, i] += np.percentile(np.abs(g - g.mean(axis=0)), q * 100, axis=0)
    cum[:, i] /= len(vals)
  per_code = (1 - cum / max_dev[:, None]).max(axis=1)
  return np.average(per_code, weights=max_dev)


def factor_vae_score(sample_factors, represent, num_factors, random_state, batch_size=64,
                     num_train=10000, num_eval=5000, num_variance_estimate=10000, threshold=0.05):
  """Point by point, as disentanglement_lib's factor_vae.py loops."""
  reps = represent(sample_factors(num_variance_estimate, random_state))
  global_var = np.var(reps, axis=0, ddof=1)
  active = np.sqrt(global_var) >= threshold

  def votes(n):
    table = np.zeros((num_factors, len(global_var)), np.int64)
    for _ in range(n):
      index = random_state.randint(num_factors)
      factors = sample_factors(batch_size, random_state)
      factors[:, index] = factors[0, index]
      local = np.var(represent(factors), axis=0, ddof=1)
      table[index, np.argmin(local[active] / global_var[active])] += 1
    return table

  train = votes(num_train)
  classifier = np.argmax(train, axis=0)
  other = np.arange(train.shape[1])
  ev = votes(num_eval)
  return ev[classifier, other].sum() / ev.sum()
