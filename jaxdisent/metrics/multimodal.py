"""Multimodal sentiment metrics (MMSA definitions) and linear-probe recovery of known factors.

Regression metrics follow the MMSA toolkit's MOSI / MOSEI evaluation, which published numbers
(DecAlign included) use:

* ``mae`` mean |pred - label|; ``corr`` Pearson correlation;
* ``acc2`` / ``f1`` on NON-ZERO labels: sign of pred > 0 vs label > 0 over examples with
  label != 0, F1 weighted over the two classes (sklearn ``average='weighted'``);
* ``acc2_has0`` / ``f1_has0``: the same with pred >= 0 vs label >= 0 over all examples;
* ``acc7``: predictions and labels clipped to [-3, 3] and rounded (numpy round-half-to-even)
  to the 7 classes -3..3; accuracy.
"""

from __future__ import annotations

import numpy as np


def _weighted_binary_f1(truth, pred) -> float:
  truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
  total = 0.0
  for cls in (False, True):
    support = np.sum(truth == cls)
    if support == 0:
      continue
    tp = np.sum((pred == cls) & (truth == cls))
    predicted = np.sum(pred == cls)
    precision = tp / predicted if predicted else 0.0
    recall = tp / support
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total += support * f1
  return float(total / truth.size) if truth.size else float("nan")


def sentiment_regression_metrics(pred, label) -> dict:
  """MMSA regression metrics for predictions and labels in (roughly) [-3, 3]."""
  pred = np.asarray(pred, np.float64).reshape(-1)
  label = np.asarray(label, np.float64).reshape(-1)
  if pred.shape != label.shape:
    raise ValueError(f"pred {pred.shape} and label {label.shape} differ in size")
  if not np.all(np.isfinite(pred)):
    raise ValueError("predictions contain NaN/inf")
  out = {"mae": float(np.mean(np.abs(pred - label)))}
  out["corr"] = (float(np.corrcoef(pred, label)[0, 1])
                 if pred.std() > 0 and label.std() > 0 else float("nan"))
  nonzero = label != 0
  truth_nz, pred_nz = label[nonzero] > 0, pred[nonzero] > 0
  out["acc2"] = float(np.mean(truth_nz == pred_nz)) if nonzero.any() else float("nan")
  out["f1"] = _weighted_binary_f1(truth_nz, pred_nz)
  out["acc2_has0"] = float(np.mean((label >= 0) == (pred >= 0)))
  out["f1_has0"] = _weighted_binary_f1(label >= 0, pred >= 0)
  out["acc7"] = float(np.mean(np.round(np.clip(pred, -3, 3)) == np.round(np.clip(label, -3, 3))))
  return out


def linear_probe_r2(train_x, train_y, test_x, test_y, ridge: float = 1e-3) -> float:
  """Held-out R^2 of a ridge regression from features x to targets y (mean over target columns).

  Features are standardised with the training statistics; the ridge penalty is `ridge` times the
  number of training rows. R^2 = 1 - SSE / SST per column on the test rows.
  """
  train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
  train_y = np.asarray(train_y, np.float64).reshape(len(train_x), -1)
  test_y = np.asarray(test_y, np.float64).reshape(len(test_x), -1)
  mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
  a = np.concatenate([(train_x - mu) / sd, np.ones((len(train_x), 1))], 1)
  b = np.concatenate([(test_x - mu) / sd, np.ones((len(test_x), 1))], 1)
  reg = ridge * len(train_x) * np.eye(a.shape[1])
  reg[-1, -1] = 0.0
  coef = np.linalg.solve(a.T @ a + reg, a.T @ train_y)
  residual = test_y - b @ coef
  sst = np.sum(np.square(test_y - test_y.mean(0)), 0)
  return float(np.mean(1.0 - np.sum(np.square(residual), 0) / np.maximum(sst, 1e-12)))
