"""Linear NOTEARS (jaxdisent.oracles.notears) and the reference's count_accuracy."""

import numpy as np
import pytest

from jaxdisent.metrics.graph import count_accuracy, graph_recovery
from jaxdisent.oracles import notears_linear
from jaxdisent.oracles.notears import is_dag, simulate_dag, simulate_linear_sem, simulate_parameter


def _chain(d):
  truth = np.zeros((d, d))
  for i in range(d - 1):
    truth[i, i + 1] = 1.0
  return truth


def test_count_accuracy_known_answers_by_hand():
  truth = _chain(4)                               # 0 -> 1 -> 2 -> 3
  perfect = count_accuracy(truth, 2.5 * truth)    # weights: only the support counts
  assert perfect == {"fdr": 0.0, "tpr": 1.0, "fpr": 0.0, "shd": 0, "nnz": 3}
  est = np.zeros((4, 4))
  est[0, 1] = 1.0    # true positive
  est[2, 1] = -0.7   # reversal of 1 -> 2
  est[0, 3] = 1.0    # false positive (no edge between 0 and 3 either way)
  # 2 -> 3 is missing. fdr = (1 reversed + 1 false) / 3 predicted; tpr = 1 / 3 true edges;
  # fpr = 2 / (4*3/2 - 3 = 3 non-adjacent pairs); shd = 1 extra (0-3) + 1 missing (2-3) + 1 reversal
  got = count_accuracy(truth, est)
  assert got["fdr"] == pytest.approx(2 / 3) and got["tpr"] == pytest.approx(1 / 3)
  assert got["fpr"] == pytest.approx(2 / 3) and got["shd"] == 3 and got["nnz"] == 3
  # every edge reversed: a reversal counts once in shd (not a missing plus an extra edge)
  flipped = count_accuracy(truth, truth.T)
  assert flipped == {"fdr": 1.0, "tpr": 0.0, "fpr": 1.0, "shd": 3, "nnz": 3}
  empty = count_accuracy(truth, np.zeros((4, 4)))
  assert empty == {"fdr": 0.0, "tpr": 0.0, "fpr": 0.0, "shd": 3, "nnz": 0}


def test_count_accuracy_bad_inputs():
  truth = _chain(3)
  cyclic = truth.copy()
  cyclic[2, 0] = 1.0
  with pytest.raises(ValueError, match="estimated graph has a cycle"):
    count_accuracy(truth, cyclic)
  with pytest.raises(ValueError, match="true graph has a cycle"):
    count_accuracy(cyclic, truth)
  with pytest.raises(ValueError, match="equal square"):
    count_accuracy(truth, np.zeros((3, 2)))
  with pytest.raises(ValueError, match="NaN"):
    count_accuracy(truth, np.full((3, 3), np.nan))


def test_graph_recovery_rejects_a_truth_without_both_classes():
  dense = np.ones((3, 3)) - np.eye(3)               # e.g. a soft / probability truth
  with pytest.raises(ValueError, match="6 edges among 6 ordered pairs.*binarised"):
    graph_recovery(np.eye(3)[::-1], dense)
  with pytest.raises(ValueError, match="0 edges"):
    graph_recovery(dense, np.zeros((3, 3)))
  with pytest.raises(ValueError, match="true adjacency has NaN"):
    graph_recovery(dense, np.full((3, 3), np.nan))


def test_simulators_match_the_reference_setting():
  rng = np.random.default_rng(0)
  b = simulate_dag(20, 20, rng)
  assert b.sum() == 20 and is_dag(b) and not np.diag(b).any()
  assert not (b * b.T).any()
  w = simulate_parameter(b, rng)
  magnitudes = np.abs(w[b > 0])
  assert ((w != 0) == (b > 0)).all() and magnitudes.min() >= 0.5 and magnitudes.max() <= 2.0
  assert (w[b > 0] > 0).any() and (w[b > 0] < 0).any()
  x = simulate_linear_sem(w, 20000, rng)
  # population covariance of x = E (I - W)^-1 with E ~ N(0, I): (I - W)^-T (I - W)^-1
  inv = np.linalg.inv(np.eye(20) - w)
  np.testing.assert_allclose(np.cov(x.T), inv.T @ inv, atol=0.15 * np.abs(inv.T @ inv).max())
  with pytest.raises(ValueError, match="cycle"):
    simulate_linear_sem(_chain(3) + _chain(3).T, 10, rng)
  with pytest.raises(ValueError, match="0..3 edges"):
    simulate_dag(3, 4, rng)


def test_notears_recovers_a_small_dag_exactly():
  rng = np.random.default_rng(1)
  truth = np.zeros((5, 5))
  truth[0, 1], truth[0, 2], truth[1, 3], truth[2, 3], truth[3, 4] = 1.5, -1.0, 0.8, -1.2, 1.0
  x = simulate_linear_sem(truth, 500, rng)
  est = notears_linear(x)
  assert isinstance(est, np.ndarray) and est.shape == (5, 5) and is_dag(est)
  assert count_accuracy(truth, est)["shd"] == 0
  assert (np.sign(est) == np.sign(truth)).all()
  # the raw solution is the L1-penalised least squares fit of each column on its support S (at a
  # DAG the gradient of h vanishes on the edges):
  #   X_S^T (x_j - X_S w_S) / n = lambda1 sign(w_S).
  # Tolerance 0.03: L-BFGS-B's stopping rule and the dual term's pull through near-cycles of ~1e-4
  # entries leave ~0.015 here; dropping the L1 term would move these weights by ~0.1.
  raw = notears_linear(x, w_threshold=0.0)
  xc = x - x.mean(axis=0)
  for j in range(5):
    support = np.flatnonzero(np.abs(raw[:, j]) > 1e-3)
    if len(support):
      xs = xc[:, support]
      stationary = np.linalg.solve(xs.T @ xs, xs.T @ xc[:, j]
                                   - len(x) * 0.1 * np.sign(raw[support, j]))
      np.testing.assert_allclose(raw[support, j], stationary, atol=0.03)
  # the threshold drops every entry below it and keeps the others unchanged
  kept = np.abs(raw) >= 0.3
  np.testing.assert_array_equal(est, np.where(kept, raw, 0.0))


def test_notears_bad_inputs():
  x = np.random.default_rng(0).standard_normal((10, 3))
  with pytest.raises(ValueError, match="loss_type"):
    notears_linear(x, loss_type="l1")
  with pytest.raises(ValueError, match="lambda1"):
    notears_linear(x, lambda1=-1.0)
  with pytest.raises(ValueError, match="NaN"):
    notears_linear(np.full((10, 3), np.nan))
  with pytest.raises(ValueError, match="real-valued"):
    notears_linear(np.array([["a", "b"], ["c", "d"]]))
  with pytest.raises(ValueError, match=r"\(N, D\)"):
    notears_linear(x[0])
  with pytest.raises(ValueError, match="binary"):
    notears_linear(x, loss_type="logistic")
  with pytest.raises(ValueError, match="non-negative"):
    notears_linear(x, loss_type="poisson")


@pytest.mark.slow
def test_notears_reference_benchmark_erdos_renyi_d20():
  """The NOTEARS README setting at n=200: ER, d=20, 20 edges, Gaussian equal-variance noise,
  weights uniform in +-[0.5, 2], lambda1=0.1, threshold 0.3 -> shd <= 1 on >= 4 of 5 draws."""
  shds = []
  for seed in range(5):
    rng = np.random.default_rng(seed)
    b = simulate_dag(20, 20, rng)
    x = simulate_linear_sem(simulate_parameter(b, rng), 200, rng)
    est = notears_linear(x, lambda1=0.1, loss_type="l2", w_threshold=0.3)
    assert is_dag(est)
    shds.append(count_accuracy(b, est)["shd"])
  assert sum(s <= 1 for s in shds) >= 4, shds
