"""Disentanglement metrics on precomputed (codes, factors) arrays.

Every function takes ``codes_NxD`` (the encoder *mean*, as in disentanglement_lib) and integer
``factors_NxK`` (ground-truth factor classes) with samples along the first axis, and follows
disentanglement_lib (Locatello et al. 2019, ``evaluation/metrics``); the docstrings name the
exact definition. Defaults (20 bins, classifier settings) are the reference's; every one can be
changed by argument.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats
from sklearn.exceptions import ConvergenceWarning

from jaxdisent.metrics import parallel_fit
from jaxdisent.metrics.information import (discrete_entropy, discrete_mutual_info,
                                           histogram_discretize)


def _check(codes, factors=None):
  codes = np.asarray(codes)
  if codes.ndim != 2:
    raise ValueError(f"codes must have shape (N, D); got {codes.shape}")
  if not np.isfinite(codes).all():
    raise ValueError("codes contain NaN or inf; check the encoder/checkpoint")
  if factors is None:
    return codes
  factors = np.asarray(factors)
  if factors.ndim == 1:
    factors = factors[:, None]
  if factors.ndim != 2 or factors.shape[0] != codes.shape[0]:
    raise ValueError(f"factors must have shape (N, K) with N = {codes.shape[0]} like codes; got "
                     f"{factors.shape}")
  if not np.issubdtype(factors.dtype, np.integer):
    raise TypeError(f"factors must be integer class labels, got {factors.dtype}")
  return codes, factors


def mutual_info_matrix(codes_NxD, factors_NxK, num_bins: int = 20) -> np.ndarray:
  """(D, K) discrete MI (nats) between histogram-discretised codes and factors."""
  codes, factors = _check(codes_NxD, factors_NxK)
  return np.asarray(discrete_mutual_info(histogram_discretize(codes, num_bins), factors))


def mig(codes_NxD, factors_NxK, num_bins: int = 20) -> float:
  """Mutual Information Gap (Chen et al. 2018), as disentanglement_lib ``mig.py``.

  Codes are discretised into ``num_bins`` equal-width bins; for each factor k the gap between the
  largest and second-largest MI(code_j; factor_k) is divided by H(factor_k); MIG is the mean over
  factors. Factors with zero entropy are skipped.
  """
  codes, factors = _check(codes_NxD, factors_NxK)
  if codes.shape[1] < 2:
    raise ValueError("MIG needs at least 2 code dimensions")
  mi = mutual_info_matrix(codes, factors, num_bins)
  entropy = np.asarray(discrete_entropy(factors))
  top2 = -np.sort(-mi, axis=0)[:2]
  keep = entropy > 0
  return float(np.mean((top2[0] - top2[1])[keep] / entropy[keep]))


def modularity(codes_NxD, factors_NxK, num_bins: int = 20) -> float:
  """Modularity (Ridgeway & Mozer 2018), as disentanglement_lib ``modularity_explicitness.py``.

  Per code j with MI row m_j: 1 - (sum_k m_jk^2 - max_k m_jk^2) / (max_k m_jk^2 (K - 1)), and 0
  for a code with no information; the score is the mean over codes.
  """
  mi = mutual_info_matrix(codes_NxD, factors_NxK, num_bins)
  return float(modularity_from_mi(mi))


def modularity_from_mi(mi_DxK) -> float:
  squared = np.square(np.asarray(mi_DxK, dtype=np.float64))
  best = squared.max(axis=1)
  if squared.shape[1] < 2:
    raise ValueError("modularity needs at least 2 factors")
  with np.errstate(divide="ignore", invalid="ignore"):
    delta = (squared.sum(axis=1) - best) / (best * (squared.shape[1] - 1.0))
  score = 1.0 - delta
  score[best == 0] = 0.0
  return float(np.mean(score))


def sap(codes_train, factors_train, codes_test, factors_test, *, C: float = 0.01,
        n_jobs: int | None = None) -> float:
  """Separated Attribute Predictability (Kumar et al. 2018), as disentanglement_lib ``sap_score.py``.

  For each (code j, factor k) a linear SVM (``LinearSVC(C=0.01, class_weight='balanced')``) is
  trained on code j alone and its test accuracy is the score S_jk; SAP is the mean over factors
  of the gap between the two highest S_jk. The D*K fits run in ``n_jobs`` processes
  (metrics.parallel_fit; same models, same values).
  """
  codes_train, factors_train = _check(codes_train, factors_train)
  codes_test, factors_test = _check(codes_test, factors_test)
  scores = np.zeros((codes_train.shape[1], factors_train.shape[1]))
  cells = [(j, k) for j in range(codes_train.shape[1]) for k in range(factors_train.shape[1])
           if np.unique(factors_train[:, k]).size >= 2]
  accuracies = parallel_fit.run_tasks(parallel_fit.sap_cell, [
      (codes_train[:, j], factors_train[:, k], codes_test[:, j], factors_test[:, k], C)
      for j, k in cells], desc="sap", n_jobs=n_jobs)
  for (j, k), accuracy in zip(cells, accuracies):
    scores[j, k] = accuracy
  return float(sap_from_scores(scores))


def sap_from_scores(scores_DxK) -> float:
  top2 = -np.sort(-np.asarray(scores_DxK), axis=0)[:2]
  return float(np.mean(top2[0] - top2[1]))


def dci_from_importance(importance_DxK):
  """(disentanglement, completeness) from an importance matrix (Eastwood & Williams 2018).

  disentanglement = sum_j rho_j (1 - H_K(P_j.)), rho_j = code j's share of total importance,
  P_j. = row j normalised, H_K the entropy with log base K; completeness is the same on columns
  with base D. As disentanglement_lib ``dci.py`` (including its 1e-11 smoothing).
  """
  importance = np.asarray(importance_DxK, dtype=np.float64)
  num_codes, num_factors = importance.shape
  per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=num_factors)
  per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=num_codes)
  weights = importance if importance.sum() > 0 else np.ones_like(importance)
  code_share = weights.sum(axis=1) / weights.sum()
  factor_share = weights.sum(axis=0) / weights.sum()
  return float(np.sum(per_code * code_share)), float(np.sum(per_factor * factor_share))


def dci(codes_train, factors_train, codes_test, factors_test, *, importance: str = "gbt",
        seed: int = 0, n_jobs: int | None = None) -> dict:
  """DCI disentanglement, completeness and informativeness, as disentanglement_lib ``dci.py``.

  ``importance='gbt'`` (reference): one ``GradientBoostingClassifier()`` per factor on all codes;
  the importance matrix is |feature_importances_|; informativeness is the mean test accuracy.
  ``importance='random_forest'`` is a faster alternative (``RandomForestClassifier(100 trees,
  max_features=None, n_jobs=-1)``, impurity importances; with the default sqrt feature sampling
  trees are forced onto irrelevant codes, which spreads importance and deflates disentanglement).
  Its numbers are not comparable with published ones. The per-factor fits run in ``n_jobs``
  processes (metrics.parallel_fit; same models, same values).
  """
  codes_train, factors_train = _check(codes_train, factors_train)
  codes_test, factors_test = _check(codes_test, factors_test)
  if importance not in ("gbt", "random_forest"):
    raise ValueError(f"importance must be 'gbt' or 'random_forest', got {importance!r}")
  num_factors = factors_train.shape[1]
  matrix = np.zeros((codes_train.shape[1], num_factors))
  fits = parallel_fit.run_tasks(parallel_fit.dci_factor, [
      (codes_train, factors_train[:, k], codes_test, factors_test[:, k], importance, seed)
      for k in range(num_factors)], desc="dci", n_jobs=n_jobs,
      cost=lambda task: np.unique(task[1]).size)  # boosting fits one tree per class per stage
  for k, (column, _, _) in enumerate(fits):
    matrix[:, k] = column
  train_acc, test_acc = [fit[1] for fit in fits], [fit[2] for fit in fits]
  disentanglement, completeness = dci_from_importance(matrix)
  return {"dci_disentanglement": disentanglement, "dci_completeness": completeness,
          "dci_informativeness": float(np.mean(test_acc)),
          "dci_informativeness_train": float(np.mean(train_acc)),
          "dci_importance": matrix}


def explicitness(codes_train, factors_train, codes_test, factors_test, *,
                 n_jobs: int | None = None) -> dict:
  """Explicitness (Ridgeway & Mozer 2018), as disentanglement_lib ``modularity_explicitness.py``.

  Codes are standardised with the training mean/std; per factor a ``LogisticRegression()``
  (sklearn defaults) predicts class probabilities; the score is the macro one-vs-rest ROC-AUC, and
  explicitness is the mean over factors (train and test). Classes absent from a split (small
  samples) have no AUC and are left out of the macro mean instead of making it NaN; with every
  class present this is exactly the reference's value.
  """
  codes_train, factors_train = _check(codes_train, factors_train)
  codes_test, factors_test = _check(codes_test, factors_test)
  mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  x_train, x_test = (codes_train - mean) / std, (codes_test - mean) / std
  aucs = parallel_fit.run_tasks(parallel_fit.explicitness_factor, [
      (x_train, factors_train[:, k], x_test, factors_test[:, k], _macro_auc)
      for k in range(factors_train.shape[1])], desc="explicitness", n_jobs=n_jobs,
      cost=lambda task: np.unique(task[1]).size)
  train, test = [auc[0] for auc in aucs], [auc[1] for auc in aucs]
  return {"explicitness": float(np.mean(test)), "explicitness_train": float(np.mean(train))}


def _macro_auc(labels, probabilities, classes) -> float:
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top
  scores = []
  for column, label in enumerate(classes):
    positive = labels == label
    if positive.any() and not positive.all():
      scores.append(roc_auc_score(positive, probabilities[:, column]))
  return float(np.mean(scores)) if scores else float("nan")


def gaussian_total_correlation(codes_NxD) -> float:
  """TC of a Gaussian with the codes' covariance: 0.5 (sum_j log S_jj - log det S) (nats).

  As disentanglement_lib ``unsupervised_metrics.py`` (``gaussian_total_correlation``).
  """
  codes = _check(codes_NxD)
  cov = np.cov(codes, rowvar=False)
  sign, logdet = np.linalg.slogdet(cov)
  if sign <= 0:
    return float("inf")
  return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def mutual_info_between_codes(codes_NxD, num_bins: int = 20) -> float:
  """Mean discrete MI (nats) over pairs of distinct code dimensions after 20-bin discretisation.

  As disentanglement_lib ``unsupervised_metrics.py`` (``mutual_info_score``): the mean of the
  off-diagonal entries of the code-by-code MI matrix.
  """
  codes = _check(codes_NxD)
  discrete = histogram_discretize(codes, num_bins)
  mi = np.asarray(discrete_mutual_info(discrete, discrete))
  d = mi.shape[0]
  if d < 2:
    raise ValueError("needs at least 2 code dimensions")
  return float((mi.sum() - np.trace(mi)) / (d * d - d))


def array_metrics(codes_train, factors_train, codes_test, factors_test, *, num_bins: int = 20,
                  dci_importance: str = "gbt") -> dict:
  """All array-based scores in one flat dict (keys as written to eval.json)."""
  out = {
      "mig": mig(codes_train, factors_train, num_bins),
      "modularity": modularity(codes_train, factors_train, num_bins),
      "sap": sap(codes_train, factors_train, codes_test, factors_test),
      "gaussian_total_correlation": gaussian_total_correlation(codes_train),
      "mutual_info_between_codes": mutual_info_between_codes(codes_train, num_bins),
  }
  out.update(explicitness(codes_train, factors_train, codes_test, factors_test))
  out.update(dci(codes_train, factors_train, codes_test, factors_test, importance=dci_importance))
  return out


__all__ = ["array_metrics", "dci", "dci_from_importance", "explicitness",
           "gaussian_total_correlation", "mig", "modularity", "modularity_from_mi",
           "mutual_info_between_codes", "mutual_info_matrix", "sap", "sap_from_scores"]
