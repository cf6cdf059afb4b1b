"""Graph recovery measures: learned weighted adjacency vs the ground truth (A x A, W[i, j] = i -> j).

Following the reporting of NOTEARS / DAG-GNN ([zheng2018], [yu2019]) plus ranking measures for
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

The truth must hold both edges and non-edges off the diagonal (|W| > 0 is an edge): otherwise the
ranking measures are undefined and ``graph_recovery`` raises (a dense / soft truth, e.g. a
correlation or probability matrix, has no non-edges: binarise it first).

:func:`count_accuracy` is the NOTEARS reference's scorer of a DAG estimate (xunzheng/notears,
``utils.count_accuracy``), for structure learners whose output is a thresholded DAG (e.g.
``jaxdisent.oracles.notears_linear``); see its docstring.
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


def _check_truth_has_both_classes(truth):
  if not np.isfinite(truth).all():
    raise ValueError("true adjacency has NaN/inf entries; the truth must be a finite (weighted) "
                     "adjacency, nonzero = edge")
  a = len(truth)
  edges = int((_off_diagonal(truth) > 0).sum())
  if edges == 0 or edges == a * (a - 1):
    raise ValueError(f"true adjacency has {edges} edges among {a * (a - 1)} ordered pairs: AUROC / "
                     "AUPRC need both edges and non-edges (nonzero = edge; a dense or soft truth "
                     "such as a correlation or probability matrix must be binarised first)")


def _off_diagonal(m):
  return m[~np.eye(m.shape[0], dtype=bool)]


def auroc(scores, labels) -> float:
  """Area under the ROC curve (ties count half): P(score of a positive > score of a negative).

  The Mann-Whitney statistic over all positive x negative pairs (O(P x N) memory).

  Args:
    scores: (N,) real array-like, the scores.
    labels: (N,) array-like, truthy = positive.

  Returns:
    Python float in [0, 1].

  Raises:
    ValueError: the shapes differ or are not 1-D, a score is NaN/inf, or the labels hold only one
      class (AUROC is undefined there: every caller that wants a number must decide what it means).
  """
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
  if scores.shape != labels.shape or scores.ndim != 1:
    raise ValueError(f"auroc needs 1-D scores and labels of one length; got {scores.shape} and "
                     f"{labels.shape}")
  if not np.isfinite(scores).all():
    raise ValueError("auroc: scores contain NaN/inf")
  labels = labels.astype(bool)
  pos, neg = scores[labels], scores[~labels]
  if not len(pos) or not len(neg):
    raise ValueError(f"auroc is undefined with {len(pos)} positive and {len(neg)} negative "
                     "labels: it needs both classes")
  greater = (pos[:, None] > neg[None, :]).sum()
  ties = (pos[:, None] == neg[None, :]).sum()
  return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def average_precision(scores, labels) -> float:
  """Mean precision at the rank of each positive (ties ranked pessimistically).

  Among equal scores negatives rank first, so ties never inflate the value.

  Args:
    scores: (N,) real array-like, the scores.
    labels: (N,) array-like, truthy = positive.

  Returns:
    Python float in (0, 1].

  Raises:
    ValueError: mismatched or non-1-D shapes, NaN/inf scores, or no positive label (undefined).
  """
  scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
  if scores.shape != labels.shape or scores.ndim != 1:
    raise ValueError(f"average_precision needs 1-D scores and labels of one length; got "
                     f"{scores.shape} and {labels.shape}")
  if not np.isfinite(scores).all():
    raise ValueError("average_precision: scores contain NaN/inf")
  labels = labels.astype(bool)
  if not labels.any():
    raise ValueError("average_precision is undefined without a positive label")
  order = np.lexsort((labels, -scores))  # by score desc; among ties negatives first
  hits = labels[order]
  precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
  return float(precision[hits].mean())


def graph_recovery(learned_AxA, true_AxA, threshold: float = 0.3) -> dict:
  """All measures of the module docstring as a flat dict of floats.

  The reporting of NOTEARS [zheng2018] / DAG-GNN [yu2019] plus the ranking measures, with the
  relative threshold described in the module docstring (a deviation from NOTEARS' raw-weight
  threshold).

  Args:
    learned_AxA: (A, A) real array, the learned weighted adjacency (W[i, j]: i -> j; signs
      ignored, diagonal ignored).
    true_AxA: (A, A) real array, the truth (|W| > 0 = edge) with both edges and non-edges off the
      diagonal.
    threshold: float, the edge threshold on |w| / max|w|.

  Returns:
    dict of Python floats: "auroc", "auprc", "shd", "tpr", "fdr", "fpr", "nnz",
    "direction_accuracy" and "threshold" (tpr / fpr / direction_accuracy NaN when undefined).

  Raises:
    ValueError: the matrices are not equal square shapes, hold NaN/inf, or the truth has no edge
      or no non-edge.
  """
  learned, truth = _check(learned_AxA, true_AxA)
  _check_truth_has_both_classes(truth)
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


def _dag_edges(m, name):
  edges = np.asarray(m) != 0
  a = len(edges)
  alive = np.ones(a, bool)
  while alive.any():
    roots = np.flatnonzero(alive)[edges[np.ix_(alive, alive)].sum(axis=0) == 0]
    if not len(roots):
      raise ValueError(f"count_accuracy: the {name} graph has a cycle (or a self-loop); it scores "
                       "DAGs (raise the estimate's threshold, or use graph_recovery for cyclic / "
                       "weighted graphs)")
    alive[roots] = False
  return edges


def count_accuracy(true_DxD, est_DxD) -> dict:
  """NOTEARS' accuracy of an estimated DAG against the true DAG (xunzheng/notears' count_accuracy).

  [zheng2018]. Nonzero entries are directed edges, ``W[i, j] != 0`` meaning i -> j (weights are
  allowed; only their support counts). With pred / cond the predicted / true edge sets:

  * true positive: a predicted edge present in the truth with the same direction;
  * reverse: a predicted edge whose reverse is a true edge; false positive: a predicted edge with
    no true edge between the pair in either direction;
  * ``fdr`` = (reverse + false positive) / max(nnz, 1), ``tpr`` = true positive / max(|cond|, 1),
    ``fpr`` = (reverse + false positive) / max(D(D-1)/2 - |cond|, 1) (the reference's negatives:
    unordered non-adjacent pairs), ``nnz`` = number of predicted edges;
  * ``shd`` = extra + missing pairs of the undirected skeletons + reversed edges (a reversal counts
    once, not as a missing plus an extra edge).

  Both graphs must be DAGs (the reference requires it of the estimate; a 2-cycle makes reverse and
  true positive overlap). Deviation: the reference's CPDAG input (-1 = undirected edge) is not
  supported, since here -1 is an edge weight.

  Args:
    true_DxD: (D, D) numeric or bool array, the true DAG.
    est_DxD: (D, D) numeric or bool array, the estimated DAG.

  Returns:
    dict: "fdr", "tpr", "fpr" Python floats; "shd", "nnz" Python ints.

  Raises:
    ValueError: shapes differ or are not square, a non-numeric dtype, NaN/inf entries, or a graph
      with a cycle or self-loop.
  """
  truth = np.asarray(true_DxD)
  est = np.asarray(est_DxD)
  if truth.shape != est.shape or truth.ndim != 2 or truth.shape[0] != truth.shape[1]:
    raise ValueError(f"count_accuracy: true {truth.shape} and estimated {est.shape} graphs must be "
                     "equal square (D, D) matrices")
  for name, m in (("true", truth), ("estimated", est)):
    if not np.issubdtype(m.dtype, np.number) and m.dtype != bool:
      raise ValueError(f"count_accuracy: the {name} graph must be numeric; got dtype {m.dtype}")
    if not np.isfinite(m.astype(np.float64)).all():
      raise ValueError(f"count_accuracy: the {name} graph has NaN/inf entries")
  cond, pred = _dag_edges(truth, "true"), _dag_edges(est, "estimated")
  d = len(truth)
  cond_skeleton = cond | cond.T
  true_pos = int((pred & cond).sum())
  false_pos = int((pred & ~cond_skeleton).sum())
  reverse = int((pred & ~cond & cond.T).sum())
  nnz, num_cond = int(pred.sum()), int(cond.sum())
  lower = np.tril(np.ones((d, d), bool), k=-1)
  pred_skeleton = (pred | pred.T) & lower
  cond_lower = cond_skeleton & lower
  extra = int((pred_skeleton & ~cond_lower).sum())
  missing = int((cond_lower & ~pred_skeleton).sum())
  return {
      "fdr": (reverse + false_pos) / max(nnz, 1),
      "tpr": true_pos / max(num_cond, 1),
      "fpr": (reverse + false_pos) / max(0.5 * d * (d - 1) - num_cond, 1),
      "shd": extra + missing + reverse,
      "nnz": nnz,
  }


# ---- interventions scored against the known graph (issue 22 part 6) ---------------------------

def ancestor_matrix(true_DxD) -> np.ndarray:
  """anc[i, j] = 1 when there is a directed path i -> ... -> j (i != j).

  The pairs an intervention on i can move j along (the transitive closure of |W| > 0); the
  diagonal is 0 even on a cycle.

  Args:
    true_DxD: (D, D) real array, the (weighted) adjacency, W[i, j]: i -> j.

  Returns:
    (D, D) float64 NumPy array of 0/1.
  """
  reach = (np.abs(np.asarray(true_DxD, np.float64)) > 0).astype(np.int64)
  d = len(reach)
  for _ in range(d):
    reach = ((reach + reach @ reach) > 0).astype(np.int64)
  np.fill_diagonal(reach, 0)
  return reach.astype(np.float64)


def scm_do(codes_BxD, adjacency_DxD, node: int, value, propagate: bool = True) -> np.ndarray:
  """do(z_node = value) on the linear SCM z = A^T z + eps (A[i, j] = weight of i -> j).

  Abduction: each example's exogenous noise is eps = (I - A^T) z from its codes; action: node's
  parents are cut and its value set; prediction: z' = (I - A'^T)^-1 eps' with column ``node`` of
  A zeroed and eps'_node = value, so descendants move through A and non-descendants keep their
  values. ``propagate=False`` only sets the coordinate (for models whose graph acts elsewhere,
  e.g. GEM's GNN before the decoder). Host NumPy, not jittable.

  Args:
    codes_BxD: (B, D) real array, the codes z.
    adjacency_DxD: (D, D) real array A (needs I - A with column ``node`` zeroed invertible).
    node: Python int in [0, D), the intervened coordinate.
    value: float (or (B,) array), the value set.
    propagate: move the descendants through A (True) or only set the coordinate (False).

  Returns:
    (B, D) float64 NumPy array, the intervened codes.
  """
  z = np.asarray(codes_BxD, np.float64)
  a = np.asarray(adjacency_DxD, np.float64)
  out = z.copy()
  if not propagate:
    out[:, node] = value
    return out
  d = a.shape[0]
  eps = z - z @ a                                   # rows: (I - A^T) z
  cut = a.copy()
  cut[:, node] = 0.0                                # node has no parents under do()
  eps[:, node] = value
  return np.linalg.solve((np.eye(d) - cut.T)[None], eps[..., None])[..., 0]


def interventional_effects(read_factors, codes_BxD, adjacency_DxD, nodes, values_per_node,
                           propagate: bool = True, scale=None) -> np.ndarray:
  """Mean absolute change of the read-back factors under do(z_{nodes[i]} = v).

  E[i, j] = mean over examples and intervention values of |factor j read from the decoded
  do(z_{nodes[i]} = v)  -  factor j read from the decoded codes themselves|, divided by
  ``scale[j]`` (e.g. the factors' standard deviations; floored at 1e-12). Interventions are
  :func:`scm_do`.

  Args:
    read_factors: callable, ``read_factors(codes_BxD) -> (B, F)``: decodes codes and reads the F
      factors back from the images.
    codes_BxD: (B, D) real array, the codes.
    adjacency_DxD: (D, D) real array A of the SCM.
    nodes: sequence of A ints, the intervened nodes.
    values_per_node: sequence of A sequences; ``values_per_node[i]`` lists the values of node
      ``nodes[i]`` to set.
    propagate: passed to :func:`scm_do`.
    scale: None or (F,) real array, the per-factor divisor.

  Returns:
    (A, F) float64 NumPy array, A = len(nodes) (F = A when each node has its own factor).
  """
  baseline = np.asarray(read_factors(np.asarray(codes_BxD)), np.float64)
  effects = np.zeros((len(nodes), baseline.shape[1]))
  for i, node in enumerate(nodes):
    moved = [np.abs(np.asarray(read_factors(scm_do(codes_BxD, adjacency_DxD, int(node), v,
                                                   propagate)), np.float64) - baseline).mean(0)
             for v in values_per_node[i]]
    effects[i] = np.mean(moved, axis=0)
  if scale is not None:
    effects = effects / np.maximum(np.asarray(scale, np.float64), 1e-12)
  return effects


def intervention_scores(effects_AxA, true_AxA) -> dict:
  """How the off-diagonal interventional effects rank the true ancestor pairs.

  ``auroc`` and ``auprc`` (the |effect| of intervening on i on factor j as the score of "i is an
  ancestor of j", :func:`ancestor_matrix`), the mean effect on descendants / on non-descendants,
  and ``self_effect`` (the diagonal: does setting a node move its own factor at all).

  Args:
    effects_AxA: (A, A) real array, :func:`interventional_effects`' output.
    true_AxA: (A, A) real array, the true adjacency (|W| > 0 = edge).

  Returns:
    dict of Python floats: "auroc", "auprc", "effect_on_descendants",
    "effect_on_non_descendants", "self_effect".

  Raises:
    ValueError: the ancestor relation has no positive or no negative off-diagonal pair.
  """
  effects = np.asarray(effects_AxA, np.float64)
  anc = ancestor_matrix(true_AxA)
  _check_truth_has_both_classes(anc)
  scores, labels = _off_diagonal(effects), _off_diagonal(anc)
  return {"auroc": auroc(scores, labels), "auprc": average_precision(scores, labels),
          "effect_on_descendants": float(scores[labels > 0].mean()),
          "effect_on_non_descendants": float(scores[labels == 0].mean()),
          "self_effect": float(np.mean(np.diagonal(effects)))}
