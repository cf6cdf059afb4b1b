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


def histogram_discretize_dl(target_DxN, num_bins=20):
  """disentanglement_lib's ``utils._histogram_discretize`` verbatim in spirit: (D, N) in, classes
  1..num_bins out, edges from ``np.histogram`` on each row in the row's own dtype."""
  out = np.zeros_like(target_DxN, dtype=np.int64)
  for i in range(target_DxN.shape[0]):
    out[i, :] = np.digitize(target_DxN[i, :], np.histogram(target_DxN[i, :], num_bins)[1][:-1])
  return out


def mig_dl(codes, factors, num_bins=20):
  """disentanglement_lib ``mig._compute_mig`` on (N, D) codes / (N, K) integer factors."""
  discretized = histogram_discretize_dl(codes.T, num_bins)
  m = np.array([[mutual_info_score(factors[:, k], discretized[j]) for k in range(factors.shape[1])]
                for j in range(discretized.shape[0])])
  entropy = np.array([mutual_info_score(f, f) for f in factors.T])
  sorted_m = np.sort(m, axis=0)[::-1]
  return np.mean((sorted_m[0] - sorted_m[1]) / entropy)


def modularity_dl(codes, factors, num_bins=20):
  """disentanglement_lib ``modularity_explicitness.modularity`` on the discretised MI matrix."""
  discretized = histogram_discretize_dl(codes.T, num_bins)
  mi = np.array([[mutual_info_score(factors[:, k], discretized[j]) for k in range(factors.shape[1])]
                 for j in range(discretized.shape[0])])
  squared = np.square(mi)
  max_sq = np.max(squared, axis=1)
  numerator = np.sum(squared, axis=1) - max_sq
  denominator = max_sq * (squared.shape[1] - 1.)
  with np.errstate(divide="ignore", invalid="ignore"):
    delta = numerator / denominator
  score = 1. - delta
  score[max_sq == 0.] = 0.
  return np.mean(score)
