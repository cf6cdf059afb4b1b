"""Graph recovery measures: learned weighted adjacency vs the ground truth (A x A, W[i, j] = i -> j).

Following the reporting of NOTEARS / DAG-GNN (REFERENCES.md section 3) plus ranking measures for
weighted, possibly bidirectional graphs:

* ``auroc`` / ``auprc``: the |learned weights| over the A(A-1) directed off-diagonal entries scored
  against the binary truth (|W_true| > 0). AUROC is the Mann-Whitney probability (ties count 1/2);
  AUPRC is average precision (sum over positives of precision at their rank, ties broken
  pessimistically: among equal scores negatives rank first).
* ``shd`` / ``tpr`` / ``fdr`` / ``fpr`` / ``nnz`` at a threshold (default 0.3, NOTEARS' pruning
  value) applied to |w| / max|w| (deviation: NOTEARS thresholds raw weights; our relation weights
  are dependence strengths whose scale depends on the oracle's noise, so the threshold is relative
  to the strongest edge): a directed entry is predicted when |w| / max|w| > threshold. SHD counts, over unordered
  pairs {i, j}, the pair's predicted edge set {i->j, j->i} differing from the true one (one per
  pair; a reversed edge counts once), as NOTEARS' extra + missing + reversed.
* ``direction_accuracy``: over true pairs with an asymmetric truth (|W_ij| != |W_ji|), the fraction
  where sign(|w_ij| - |w_ji|) equals sign(|W_ij| - |W_ji|).
"""

from __future__ import annotations

import numpy as np


def _check(learned, truth):
  learned = np.abs(np.asarray(learned, np.float64))
  truth = np.abs(np.asarray(truth, np.float64))
  if learned.shape != truth.shape or learned.ndim != 2 or learned.shape[0] != learned.shape[1]:
    raise ValueError(f"learned {learned.shape} and true {truth.shape} adjacencies must be equal "
                     "square matrices")
  if not np.isfinite(learned).all():
    raise ValueError("learned adjacency has NaN/inf entries")
  return learned, truth


def _off_diagonal(m):
  return m[~np.eye(m.shape[0], dtype=bool)]


def auroc(scores, labels) -> float:
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
  pos, neg = scores[labels], scores[~labels]
  if not len(pos) or not len(neg):
    return float("nan")
  greater = (pos[:, None] > neg[None, :]).sum()
  ties = (pos[:, None] == neg[None, :]).sum()
  return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def average_precision(scores, labels) -> float:
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
  if not labels.any():
    return float("nan")
  order = np.lexsort((labels, -scores))  # by score desc; among ties negatives first
  hits = labels[order]
  precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
  return float(precision[hits].mean())


def graph_recovery(learned_AxA, true_AxA, threshold: float = 0.3) -> dict:
  """All measures of the module docstring as a flat dict of floats."""
  learned, truth = _check(learned_AxA, true_AxA)
  scores, labels = _off_diagonal(learned), _off_diagonal(truth) > 0
  relative = learned / max(float(learned.max()), 1e-12)
  predicted = (relative > threshold) & ~np.eye(len(learned), dtype=bool)
  actual = truth > 0
  np.fill_diagonal(actual, False)
  tp = int((predicted & actual).sum())
  fp = int((predicted & ~actual).sum())
  shd = 0
  a = len(learned)
  for i in range(a):
    for j in range(i + 1, a):
      if (predicted[i, j], predicted[j, i]) != (actual[i, j], actual[j, i]):
        shd += 1
  correct, total = 0, 0
  for i in range(a):
    for j in range(i + 1, a):
      if (actual[i, j] or actual[j, i]) and truth[i, j] != truth[j, i]:
        total += 1
        correct += int(np.sign(learned[i, j] - learned[j, i]) == np.sign(truth[i, j] - truth[j, i]))
  num_true = int(actual.sum())
  num_neg = a * (a - 1) - num_true
  return {
      "auroc": auroc(scores, labels),
      "auprc": average_precision(scores, labels),
      "shd": float(shd),
      "tpr": tp / num_true if num_true else float("nan"),
      "fdr": fp / max(tp + fp, 1),
      "fpr": fp / num_neg if num_neg else float("nan"),
      "nnz": float(predicted.sum()),
      "direction_accuracy": correct / total if total else float("nan"),
      "threshold": float(threshold),
  }
