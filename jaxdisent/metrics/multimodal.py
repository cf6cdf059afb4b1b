"""Multimodal sentiment metrics (MMSA definitions) and linear-probe recovery of known factors.

Regression metrics follow the MMSA toolkit's MOSI / MOSEI evaluation, which published numbers
(DecAlign included) use:

* ``mae`` mean |pred - label|; ``corr`` Pearson correlation;
* ``acc2`` / ``f1`` on NON-ZERO labels: sign of pred > 0 vs label > 0 over examples with
  label != 0, F1 weighted over the two classes (sklearn ``average='weighted'``);
* ``acc2_has0`` / ``f1_has0``: the same with pred >= 0 vs label >= 0 over all examples;
* ``acc7``: predictions and labels clipped to [-3, 3] and rounded (numpy round-half-to-even)
  to the 7 classes -3..3; accuracy.

``sentiment_regression_metrics_core`` and ``linear_probe_r2_core`` are pure JAX (jit / vmap);
the plain names validate and run them in float64, as the NumPy code they replace did, returning
a dict of floats / a float. Undefined entries (corr with a constant pred or label, acc2/f1 with
no non-zero label) are NaN, as before, and the host wrapper warns (RuntimeWarning) naming them.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.metrics import _host


def _weighted_binary_f1(truth, pred):
  """sklearn's f1_score(average='weighted') for two classes on bool arrays ``truth``/``pred``."""
  return _masked_weighted_f1(truth, pred, jnp.ones(truth.shape, bool))


def _masked_weighted_f1(truth, pred, mask):
  """The same over the entries where ``mask`` is true (NaN when there are none)."""
  total = jnp.zeros((), jnp.result_type(float))
  for cls in (False, True):
    is_truth = mask & (truth == cls)
    is_pred = mask & (pred == cls)
    support = jnp.sum(is_truth)
    tp = jnp.sum(is_truth & is_pred)
    predicted = jnp.sum(is_pred)
    precision = jnp.where(predicted > 0, tp / jnp.maximum(predicted, 1), 0.0)
    recall = tp / jnp.maximum(support, 1)
    f1 = jnp.where(precision + recall > 0,
                   2 * precision * recall / jnp.where(precision + recall > 0, precision + recall, 1.0),
                   0.0)
    total = total + jnp.where(support > 0, support * f1, 0.0)
  size = jnp.sum(mask)
  return jnp.where(size > 0, total / jnp.maximum(size, 1), jnp.nan)


@jax.jit
def sentiment_regression_metrics_core(pred, label):
  """MMSA regression metrics as 0-d arrays (see ``sentiment_regression_metrics``). Pure JAX.

  The MOSI / MOSEI definitions of [mmsa] (module docstring); undefined entries are NaN.

  Args:
    pred: float array of N predictions (any shape; flattened).
    label: float array of N labels (flattened).

  Returns:
    dict of scalar float arrays in JAX's default float dtype (float64 under x64, else float32):
    "mae", "corr", "acc2", "f1", "acc2_has0", "f1_has0", "acc7".
  """
  dtype = jnp.result_type(float)
  pred = jnp.asarray(pred, dtype).reshape(-1)
  label = jnp.asarray(label, dtype).reshape(-1)
  out = {"mae": jnp.mean(jnp.abs(pred - label))}
  pc, lc = pred - pred.mean(), label - label.mean()
  p_std, l_std = pred.std(), label.std()
  corr = jnp.sum(pc * lc) / jnp.sqrt(jnp.sum(pc * pc) * jnp.sum(lc * lc))
  out["corr"] = jnp.where((p_std > 0) & (l_std > 0), corr, jnp.nan)
  nonzero = label != 0
  truth_nz, pred_nz = label > 0, pred > 0
  hits = jnp.sum(nonzero & (truth_nz == pred_nz))
  out["acc2"] = jnp.where(nonzero.any(), hits / jnp.maximum(nonzero.sum(), 1), jnp.nan)
  out["f1"] = _masked_weighted_f1(truth_nz, pred_nz, nonzero)
  out["acc2_has0"] = jnp.mean((label >= 0) == (pred >= 0), dtype=dtype)
  out["f1_has0"] = _weighted_binary_f1(label >= 0, pred >= 0)
  out["acc7"] = jnp.mean(jnp.round(jnp.clip(pred, -3, 3)) == jnp.round(jnp.clip(label, -3, 3)),
                         dtype=dtype)
  return out


def _one_value_per_sample(x, name):
  x = _host.as_host_array(x, name, ndim=(1, 2))
  if x.ndim == 2 and x.shape[1] != 1:
    raise ValueError(f"{name} must hold one value per sample, shape (N,) or (N, 1); got shape "
                     f"{x.shape}")
  return x.reshape(-1)


def sentiment_regression_metrics(pred, label) -> dict:
  """MMSA regression metrics for predictions and labels in (roughly) [-3, 3].

  The definitions of [mmsa] (module docstring), as published MOSI / MOSEI numbers (DecAlign
  [qian2026] included) use. Validating host wrapper of the core, run in float64; undefined entries
  (corr with a constant pred or label, acc2 / f1 with no non-zero label) are NaN, with a
  RuntimeWarning naming them.

  Args:
    pred: (N,) or (N, 1) real array-like, one prediction per sample.
    label: (N,) or (N, 1) real array-like, one label per sample.

  Returns:
    dict of Python floats: "mae", "corr", "acc2", "f1", "acc2_has0", "f1_has0", "acc7".

  Raises:
    ValueError: empty, NaN/inf or wrongly shaped input, or different sizes.
  """
  pred = _one_value_per_sample(pred, "pred")
  label = _one_value_per_sample(label, "label")
  if pred.shape != label.shape:
    raise ValueError(f"pred {pred.shape} and label {label.shape} differ in size")
  with _host.float64():
    out = _host.to_host(sentiment_regression_metrics_core(np.asarray(pred, np.float64),
                                                          np.asarray(label, np.float64)))
  undefined = sorted(key for key, value in out.items() if np.isnan(value))
  if undefined:
    warnings.warn(f"sentiment_regression_metrics: {', '.join(undefined)} undefined on these "
                  f"{pred.size} sample(s) (corr: a constant pred or label; acc2/f1: no non-zero "
                  f"label): reported as NaN", RuntimeWarning, stacklevel=2)
  return out


@jax.jit
def linear_probe_r2_core(train_x, train_y, test_x, test_y, ridge=1e-3):
  """Held-out R^2 of a ridge probe as a pure JAX function (see ``linear_probe_r2``).

  Args:
    train_x: (N, F) float array, training features.
    train_y: (N,) or (N, T) float array, training targets.
    test_x: (N_test, F) float array, test features.
    test_y: (N_test,) or (N_test, T) float array, test targets.
    ridge: float >= 0, the penalty per training row.

  Returns:
    scalar float array in JAX's default float dtype: the mean R^2 over the T target columns (NaN
    when a column is constant on the test rows).
  """
  dtype = jnp.result_type(float)
  train_x, test_x = jnp.asarray(train_x, dtype), jnp.asarray(test_x, dtype)
  train_y = jnp.asarray(train_y, dtype).reshape(train_x.shape[0], -1)
  test_y = jnp.asarray(test_y, dtype).reshape(test_x.shape[0], -1)
  mu, sd = train_x.mean(0), train_x.std(0) + 1e-8
  a = jnp.concatenate([(train_x - mu) / sd, jnp.ones((train_x.shape[0], 1), dtype)], 1)
  b = jnp.concatenate([(test_x - mu) / sd, jnp.ones((test_x.shape[0], 1), dtype)], 1)
  reg = ridge * train_x.shape[0] * jnp.eye(a.shape[1], dtype=dtype)
  reg = reg.at[-1, -1].set(0.0)
  hi = jax.lax.Precision.HIGHEST
  coef = jnp.linalg.solve(jnp.dot(a.T, a, precision=hi) + reg, jnp.dot(a.T, train_y, precision=hi))
  residual = test_y - jnp.dot(b, coef, precision=hi)
  sst = jnp.sum(jnp.square(test_y - test_y.mean(0)), 0)
  r2 = 1.0 - jnp.sum(jnp.square(residual), 0) / jnp.where(sst > 0, sst, 1.0)
  return jnp.mean(jnp.where(sst > 0, r2, jnp.nan))   # R^2 of a constant target is undefined


def linear_probe_r2(train_x, train_y, test_x, test_y, ridge: float = 1e-3) -> float:
  """Held-out R^2 of a ridge regression from features x to targets y (mean over target columns).

  Features are standardised with the training statistics; the ridge penalty is `ridge` times the
  number of training rows (the intercept is not penalised). R^2 = 1 - SSE / SST per column on the
  test rows. Runs the core in float64.

  A target column that is constant on the test rows (SST = 0, e.g. a single test row) has no
  R^2: the result is then NaN, with a RuntimeWarning naming the column (the core returns NaN too).
  Training needs >= 2 rows; ``ridge=0`` on collinear or constant features (a singular system)
  raises instead of returning NaN.

  Args:
    train_x: (N, F) or (N,) real array-like, training features (N >= 2).
    train_y: (N, T) or (N,) real array-like, training targets.
    test_x: (N_test, F) or (N_test,) real array-like, test features.
    test_y: (N_test, T) or (N_test,) real array-like, test targets.
    ridge: float >= 0.

  Returns:
    Python float (<= 1; NaN as above).

  Raises:
    ValueError: bad shapes or widths, NaN/inf, ``ridge < 0``, or a singular system.
  """
  train_x = _host.as_host_array(train_x, "train_x", ndim=(1, 2), allow_1d_as_column=True,
                                min_rows=2)
  test_x = _host.as_host_array(test_x, "test_x", ndim=(1, 2), allow_1d_as_column=True)
  train_y = _host.as_host_array(train_y, "train_y", ndim=(1, 2), allow_1d_as_column=True)
  test_y = _host.as_host_array(test_y, "test_y", ndim=(1, 2), allow_1d_as_column=True)
  _host.same_rows(train_x, train_y, "train_x", "train_y")
  _host.same_rows(test_x, test_y, "test_x", "test_y")
  if train_x.shape[1] != test_x.shape[1] or train_y.shape[1] != test_y.shape[1]:
    raise ValueError(f"train and test widths differ: x {train_x.shape[1]} vs {test_x.shape[1]}, "
                     f"y {train_y.shape[1]} vs {test_y.shape[1]}")
  ridge = _host.check_float(ridge, "ridge", 0.0, hint="1e-3 is the default")
  constant = np.nonzero(np.ptp(test_y, axis=0) == 0)[0].tolist()
  if constant:
    warnings.warn(f"linear_probe_r2: target column(s) {constant} are constant on the "
                  f"{test_y.shape[0]} test row(s), so R^2 (1 - SSE / SST with SST = 0) is undefined: "
                  f"returning NaN; use more test rows or drop constant targets", RuntimeWarning,
                  stacklevel=2)
  with _host.float64():
    value = _host.to_float(linear_probe_r2_core(train_x, train_y, test_x, test_y, ridge))
  if not constant and not np.isfinite(value):
    raise ValueError(f"the ridge probe's normal equations are singular (ridge={ridge:g} with "
                     f"constant or collinear features in train_x): use ridge > 0 (e.g. 1e-3)")
  return value


# ---- emotion recognition (IEMOCAP): WAcc / WAF1 ------------------------------------------------
#
# The usual emotion-recognition definitions, as DecAlign's official evaluation computes them
# (utils/metrices.py: accuracy_score and f1_score(average='weighted')):
# * WAcc (weighted accuracy) = overall accuracy, every example weighted equally (not the
#   "unweighted accuracy" UA, which is the mean per-class recall);
# * WAF1 (weighted F1) = per-class F1 averaged with class-support weights (support = the number of
#   true examples of the class), as scikit-learn's f1_score(average='weighted'). A class that never
#   occurs in y_true has weight 0; a class with support but no correct prediction has F1 0.


def _class_labels(y_true, y_pred):
  """Validated 1-D integer label arrays of equal length (floats allowed when integral)."""
  out = []
  for value, name in ((y_true, "y_true"), (y_pred, "y_pred")):
    x = _host.as_host_array(value, name, ndim=(1,))
    if x.dtype == bool:
      x = x.astype(np.int64)
    if not np.issubdtype(x.dtype, np.integer):
      if not np.all(x == np.round(x)):
        raise ValueError(f"{name} must hold integer class ids; got non-integer values such as "
                         f"{x[x != np.round(x)][0].item()!r} (pass argmax of the logits, not the logits)")
      x = x.astype(np.int64)
    if x.min() < 0:
      raise ValueError(f"{name} must hold class ids >= 0; got {int(x.min())}")
    out.append(x.astype(np.int64))
  _host.same_rows(out[0], out[1], "y_true", "y_pred")
  return out


def weighted_f1_core(y_true, y_pred, num_classes: int):
  """Support-weighted mean of per-class F1 over classes 0..num_classes-1 (WAF1). Pure JAX.

  scikit-learn's ``f1_score(average='weighted')`` with zero_division=0; jittable with
  ``num_classes`` static. Labels >= num_classes count as no class (they never match).

  Args:
    y_true: (N,) integer array of true class ids.
    y_pred: (N,) integer array of predicted class ids.
    num_classes: Python int C (static under jit).

  Returns:
    scalar float array in JAX's default float dtype, in [0, 1] (0 without any support).
  """
  dtype = jnp.result_type(float)
  classes = jnp.arange(num_classes)
  truth = jnp.asarray(y_true)[:, None] == classes[None]     # (N, C)
  pred = jnp.asarray(y_pred)[:, None] == classes[None]
  tp = jnp.sum(truth & pred, 0).astype(dtype)
  support = jnp.sum(truth, 0).astype(dtype)
  predicted = jnp.sum(pred, 0).astype(dtype)
  # F1 = 2 tp / (support + predicted); 0 where both are 0 (sklearn's zero_division=0)
  denom = support + predicted
  f1 = jnp.where(denom > 0, 2 * tp / jnp.where(denom > 0, denom, 1.0), 0.0)
  return jnp.sum(support * f1) / jnp.maximum(jnp.sum(support), 1.0)


def weighted_accuracy(y_true, y_pred) -> float:
  """WAcc: the fraction of examples whose predicted class equals the true class.

  Overall accuracy, every example weighted equally, as DecAlign's official evaluation
  ([qian2026]) computes it.

  Args:
    y_true: (N,) array-like of non-negative integer class ids (integral floats allowed).
    y_pred: (N,) array-like of non-negative integer class ids.

  Returns:
    Python float in [0, 1].

  Raises:
    ValueError: bad shapes, different lengths, non-integer or negative ids.
  """
  y_true, y_pred = _class_labels(y_true, y_pred)
  return float(np.mean(y_true == y_pred))


def weighted_f1(y_true, y_pred) -> float:
  """WAF1: per-class F1 weighted by class support (scikit-learn ``average='weighted'``).

  As DecAlign's official evaluation ([qian2026]); run in float64 through
  :func:`weighted_f1_core`.

  Args:
    y_true: (N,) array-like of non-negative integer class ids (integral floats allowed).
    y_pred: (N,) array-like of non-negative integer class ids.

  Returns:
    Python float in [0, 1].

  Raises:
    ValueError: bad shapes, different lengths, non-integer or negative ids.
  """
  y_true, y_pred = _class_labels(y_true, y_pred)
  num_classes = int(max(y_true.max(), y_pred.max())) + 1
  with _host.float64():
    return _host.to_float(jax.jit(weighted_f1_core, static_argnums=2)(y_true, y_pred, num_classes))


def emotion_classification_metrics(logits_or_pred, y_true) -> dict:
  """WAcc, WAF1 and UA from (N, C) logits or (N,) predicted class ids.

  UA is the mean per-class recall over the classes present in y_true (module comment).

  Args:
    logits_or_pred: (N, C) float logits (argmax taken) or (N,) integer class ids.
    y_true: (N,) array-like of non-negative integer class ids.

  Returns:
    dict of Python floats: "wacc", "waf1", "ua".

  Raises:
    ValueError: bad shapes, different lengths, non-integer or negative ids.
  """
  pred = np.asarray(logits_or_pred)
  if pred.ndim == 2:
    pred = np.argmax(pred, -1)
  y_true, pred = _class_labels(y_true, pred)
  recalls = [np.mean(pred[y_true == c] == c) for c in np.unique(y_true)]
  return {"wacc": weighted_accuracy(y_true, pred), "waf1": weighted_f1(y_true, pred),
          "ua": float(np.mean(recalls))}
