"""Disentanglement metrics on precomputed (codes, factors) arrays.

Every function takes ``codes_NxD`` (the encoder *mean*, as in disentanglement_lib) and integer
``factors_NxK`` (ground-truth factor classes) with samples along the first axis, and follows
disentanglement_lib (Locatello et al. 2019, ``evaluation/metrics``); the docstrings name the
exact definition. Defaults (20 bins, classifier settings) are the reference's; every one can be
changed by argument.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import scipy  # submodules load on first use (SciPy's lazy loading): a shorter start-up

from jaxdisent.metrics import _host, parallel_fit
from jaxdisent.metrics.information import (check_num_bins, dense_labels, discrete_entropy_core,
                                           discrete_mutual_info_core, histogram_discretize)


def _supervised(codes_train, factors_train, codes_test, factors_test, metric: str,
                every_factor_varies: bool = True):
  """Validated (codes_train, factors_train, codes_test, factors_test) of a classifier-based score.

  Codes: real (N, D) arrays without NaN/inf (bfloat16 accepted); factors: integer labels (N, K)
  (1-D = one factor); each split's rows agree, both splits have the same code width and number of
  factors. With ``every_factor_varies`` each factor must take >= 2 values on the training split
  (a classifier cannot be fitted on one class; the reference's scikit-learn fit raises there too).
  """
  codes_train = _host.as_host_array(codes_train, "codes_train")
  codes_test = _host.as_host_array(codes_test, "codes_test")
  factors_train = _host.integer_labels(factors_train, "factors_train")
  factors_test = _host.integer_labels(factors_test, "factors_test")
  _host.same_rows(codes_train, factors_train, "codes_train", "factors_train")
  _host.same_rows(codes_test, factors_test, "codes_test", "factors_test")
  if codes_train.shape[1] != codes_test.shape[1]:
    raise ValueError(f"codes_train and codes_test must have the same code dimensions; got "
                     f"{codes_train.shape[1]} and {codes_test.shape[1]} columns (encode both "
                     f"splits with the same model)")
  if factors_train.shape[1] != factors_test.shape[1]:
    raise ValueError(f"factors_train and factors_test must have the same factors; got "
                     f"{factors_train.shape[1]} and {factors_test.shape[1]} columns")
  constant = [k for k in range(factors_train.shape[1]) if np.unique(factors_train[:, k]).size < 2]
  if len(constant) == factors_train.shape[1]:
    _host.check_varies(factors_train, "factors_train", metric)
  if every_factor_varies and constant:
    raise ValueError(f"factor column(s) {constant} take a single value on the "
                     f"{factors_train.shape[0]} training samples: {metric} fits a classifier per "
                     f"factor and needs >= 2 classes; draw more training samples or drop those "
                     f"factors")
  return codes_train, factors_train, codes_test, factors_test


def _codes(codes_NxD, min_rows: int = 1):
  return _host.as_host_array(codes_NxD, "codes", min_rows=min_rows)


def _codes_and_factors(codes_NxD, factors_NxK):
  codes = _codes(codes_NxD)
  factors, classes = dense_labels(factors_NxK, "factors")
  _host.same_rows(codes, factors, "codes", "factors")
  return codes, factors, classes


# ---- JAX cores -----------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("num_bins", "num_factor_classes"))
def mutual_info_matrix_core(codes_NxD, factors_NxK, num_bins: int = 20, *,
                            num_factor_classes: int):
  """(D, K) discrete MI (nats) between histogram-discretised codes and factor labels in
  [0, num_factor_classes). Pure JAX (jit / vmap).

  References: [locatello2019] (``utils.discrete_mutual_info`` on histogram-discretised
  codes).

  Args:
    codes_NxD: (N, D) real array of codes (the encoder means), one row per sample.
    factors_NxK: (N, K) int array of factor labels in [0, num_factor_classes), one
      column per factor.
    num_bins: static int, equal-width bins per code column (disentanglement_lib: 20).
    num_factor_classes: static int, the number of label values (max label + 1 over all
      columns).

  Returns:
    (D, K) float array (float64 under ``jax_enable_x64``, else float32) of
    MI(code_j; factor_k) in nats, >= 0.
  """
  discrete = histogram_discretize(codes_NxD, num_bins)
  return discrete_mutual_info_core(discrete, jnp.asarray(factors_NxK), num_bins, num_factor_classes)


@functools.partial(jax.jit, static_argnames=("num_bins", "num_factor_classes"))
def mig_core(codes_NxD, factors_NxK, num_bins: int = 20, *, num_factor_classes: int):
  """MIG as a pure JAX function (see ``mig``); NaN when every factor is constant.

  References: [chen2018]; code: [locatello2019] ``mig.py``.

  Args:
    codes_NxD: (N, D) real array of codes (encoder means), D >= 2 (checked at trace time).
    factors_NxK: (N, K) int array of factor labels in [0, num_factor_classes), one
      column per factor.
    num_bins: static int, equal-width bins per code column (disentanglement_lib: 20).
    num_factor_classes: static int, the number of label values (max label + 1 over all
      columns).

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32): MIG in
    [0, 1], NaN when every factor is constant.
  """
  if codes_NxD.shape[1] < 2:
    raise ValueError(f"MIG needs at least 2 code dimensions; got {codes_NxD.shape[1]}")
  mi = mutual_info_matrix_core(codes_NxD, factors_NxK, num_bins,
                               num_factor_classes=num_factor_classes)
  entropy = discrete_entropy_core(jnp.asarray(factors_NxK), num_factor_classes)
  top2 = -jnp.sort(-mi, axis=0)[:2]
  keep = entropy > 0
  gap = (top2[0] - top2[1]) / jnp.where(keep, entropy, 1.0)
  return jnp.sum(jnp.where(keep, gap, 0.0)) / jnp.sum(keep)


@jax.jit
def modularity_from_mi_core(mi_DxK):
  """Modularity from a (D, K) MI matrix (see ``modularity``). Pure JAX.

  References: [ridgeway2018]; code: [locatello2019]
  ``modularity_explicitness.py``.

  Args:
    mi_DxK: (D, K) float array of mutual information (nats, >= 0), codes x factors, K >= 2
      (checked at trace time).

  Returns:
    0-d float array: modularity in [0, 1].
  """
  if mi_DxK.shape[1] < 2:
    raise ValueError(f"modularity needs at least 2 factors; got {mi_DxK.shape[1]}")
  squared = jnp.square(mi_DxK)
  best = squared.max(axis=1)
  delta = (squared.sum(axis=1) - best) / (jnp.where(best > 0, best, 1.0) * (squared.shape[1] - 1.0))
  return jnp.mean(jnp.where(best > 0, 1.0 - delta, 0.0))


@functools.partial(jax.jit, static_argnames=("num_bins", "num_factor_classes"))
def modularity_core(codes_NxD, factors_NxK, num_bins: int = 20, *, num_factor_classes: int):
  """Modularity as a pure JAX function (see ``modularity``).

  References: [ridgeway2018]; code: [locatello2019]
  ``modularity_explicitness.py``.

  Args:
    codes_NxD: (N, D) real array of codes (the encoder means), one row per sample.
    factors_NxK: (N, K) int array of factor labels in [0, num_factor_classes), K >= 2.
    num_bins: static int, equal-width bins per code column (disentanglement_lib: 20).
    num_factor_classes: static int, the number of label values (max label + 1 over all
      columns).

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32): modularity in [0, 1].
  """
  return modularity_from_mi_core(mutual_info_matrix_core(
      codes_NxD, factors_NxK, num_bins, num_factor_classes=num_factor_classes))


def _lerp(a, b, t):
  # numpy.percentile's linear interpolation, including its t >= 0.5 branch
  diff = b - a
  return jnp.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


@functools.partial(jax.jit, static_argnames=("num_bins",))
def irs_core(codes_NxD, factors_NxK, diff_quantile=0.99, num_bins: int = 20):
  """IRS as a pure JAX function (see ``irs``): {"irs", "irs_num_active_dims"} as 0-d arrays.

  Each factor column is discretised (``histogram_discretize``; integer factors bin as NumPy's
  float64 edges do), and per (factor, value) group the quantile of |z - E[z | group]| is taken
  from one lexicographic sort (group, deviation) per factor instead of a Python loop over values.

  References: [suter2019]; code: [locatello2019] ``irs.py``.

  Args:
    codes_NxD: (N, D) real array of codes (encoder means), computed in the default float dtype
      (float64 under ``jax_enable_x64``, else float32).
    factors_NxK: (N, K) int array of factor values, histogram-discretised per column into
      ``num_bins`` bins.
    diff_quantile: float scalar in [0, 1] (may be traced), the quantile of the within-group
      deviations (disentanglement_lib: 0.99).
    num_bins: static int, bins per factor column (disentanglement_lib: 20).

  Returns:
    dict with keys ``"irs"``: 0-d float array, the score (0 when every code is constant);
    ``"irs_num_active_dims"``: 0-d int array, the number of non-constant codes.
  """
  codes = jnp.asarray(codes_NxD, jnp.result_type(float))
  factors = histogram_discretize(jnp.asarray(factors_NxK), num_bins)     # N x K in [0, bins)
  n, num_codes = codes.shape
  active = codes.max(axis=0) > codes.min(axis=0)
  max_dev = jnp.where(active, jnp.max(jnp.abs(codes - codes.mean(axis=0)), axis=0), 0.0)
  q = jnp.asarray(diff_quantile, codes.dtype)

  def per_factor(labels_N):
    one_hot = jax.nn.one_hot(labels_N, num_bins, dtype=codes.dtype)      # N x bins
    counts = one_hot.sum(axis=0)
    means = jnp.dot(one_hot.T, codes, precision=jax.lax.Precision.HIGHEST) / jnp.maximum(
        counts, 1.0)[:, None]
    dev = jnp.abs(codes - means[labels_N])                               # N x D
    keys = jnp.broadcast_to(labels_N[:, None], dev.shape)
    _, sorted_dev = jax.lax.sort((keys, dev), dimension=0, num_keys=2)
    starts = jnp.cumsum(counts) - counts
    virtual = q * (counts - 1.0)
    low = jnp.floor(virtual)
    frac = virtual - low
    low_i = (starts + low).astype(jnp.int32)
    high_i = (starts + jnp.minimum(low + 1.0, jnp.maximum(counts - 1.0, 0.0))).astype(jnp.int32)
    low_i, high_i = jnp.clip(low_i, 0, n - 1), jnp.clip(high_i, 0, n - 1)
    quantiles = _lerp(sorted_dev[low_i], sorted_dev[high_i], frac[:, None])   # bins x D
    present = counts > 0
    return jnp.sum(jnp.where(present[:, None], quantiles, 0.0), axis=0) / jnp.sum(present)

  cum = jax.vmap(per_factor, in_axes=1, out_axes=1)(factors)              # D x K
  irs_matrix = 1.0 - cum / jnp.where(active, max_dev, 1.0)[:, None]
  per_code = jnp.where(active, irs_matrix.max(axis=1), 0.0)
  num_active = jnp.sum(active)
  total_dev = jnp.sum(max_dev)
  score = jnp.where(total_dev > 0, jnp.sum(per_code * max_dev) / jnp.where(total_dev > 0, total_dev, 1.0),
                    jnp.sum(per_code) / jnp.maximum(num_active, 1))
  score = jnp.where(num_active > 0, score, 0.0)
  return {"irs": score, "irs_num_active_dims": num_active}


@jax.jit
def gaussian_total_correlation_core(codes_NxD):
  """Gaussian TC (see ``gaussian_total_correlation``); +inf for a singular covariance.

  References: [locatello2019], ``unsupervised_metrics.py``.

  Args:
    codes_NxD: (N, D) real array of codes, N > D for a non-singular covariance; computed in the
      default float dtype (float64 under ``jax_enable_x64``, else float32).

  Returns:
    0-d float array: the total correlation in nats (>= 0), +inf for a singular covariance.
  """
  codes = jnp.asarray(codes_NxD, jnp.result_type(float))
  centred = codes - codes.mean(axis=0)
  cov = jnp.dot(centred.T, centred, precision=jax.lax.Precision.HIGHEST) / (codes.shape[0] - 1)
  sign, logdet = jnp.linalg.slogdet(cov)
  value = 0.5 * (jnp.sum(jnp.log(jnp.diag(cov))) - logdet)
  return jnp.where(sign > 0, value, jnp.inf)


@functools.partial(jax.jit, static_argnames="num_bins")
def mutual_info_between_codes_core(codes_NxD, num_bins: int = 20):
  """Mean off-diagonal code-by-code discrete MI (see ``mutual_info_between_codes``).

  References: [locatello2019], ``unsupervised_metrics.py``.

  Args:
    codes_NxD: (N, D) real array of codes, D >= 2 (checked at trace time).
    num_bins: static int, equal-width bins per code column (disentanglement_lib: 20).

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32): the mean
    off-diagonal MI in nats, >= 0.
  """
  d = codes_NxD.shape[1]
  if d < 2:
    raise ValueError(f"mutual_info_between_codes needs at least 2 code dimensions; got {d}")
  discrete = histogram_discretize(codes_NxD, num_bins)
  mi = discrete_mutual_info_core(discrete, discrete, num_bins, num_bins)
  return (mi.sum() - jnp.trace(mi)) / (d * d - d)


# ---- host wrappers -------------------------------------------------------------------------------

def mutual_info_matrix(codes_NxD, factors_NxK, num_bins: int = 20) -> np.ndarray:
  """(D, K) discrete MI (nats) between histogram-discretised codes and factors.

  References: [locatello2019] (``utils.discrete_mutual_info`` on histogram-discretised
  codes).

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted), without NaN/inf.
    factors_NxK: (N, K) int array of ground-truth factor classes (1-D: one factor);
      any integer labels (relabelled densely per column when negative or >= 4096).
    num_bins: int in [1, 4096], equal-width bins per code column (disentanglement_lib: 20).

  Returns:
    (D, K) float64 NumPy array of MI(code_j; factor_k) in nats, >= 0.
  """
  check_num_bins(num_bins)
  codes, factors, classes = _codes_and_factors(codes_NxD, factors_NxK)
  with _host.float64():
    return np.asarray(mutual_info_matrix_core(codes, factors, num_bins, num_factor_classes=classes))


def mig(codes_NxD, factors_NxK, num_bins: int = 20) -> float:
  """Mutual Information Gap (Chen et al. 2018), as disentanglement_lib ``mig.py``.

  Codes are discretised into ``num_bins`` equal-width bins; for each factor k the gap between the
  largest and second-largest MI(code_j; factor_k) is divided by H(factor_k); MIG is the mean over
  factors. Deviation: factors with zero entropy are skipped (the reference divides by 0); if every
  factor is constant MIG is undefined and this raises.

  References: [chen2018]; code: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted), D >= 2.
    factors_NxK: (N, K) int array of ground-truth factor classes (1-D: one factor);
      any integer labels (relabelled densely per column when negative or >= 4096).
    num_bins: int in [1, 4096], equal-width bins per code column (disentanglement_lib: 20).

  Returns:
    Python float: MIG in [0, 1].
  """
  check_num_bins(num_bins)
  codes, factors, classes = _codes_and_factors(codes_NxD, factors_NxK)
  if codes.shape[1] < 2:
    raise ValueError(f"MIG needs at least 2 code dimensions; got {codes.shape[1]}")
  _host.check_varies(factors, "factors", "MIG")
  with _host.float64():
    return _host.to_float(mig_core(codes, factors, num_bins, num_factor_classes=classes))


def modularity(codes_NxD, factors_NxK, num_bins: int = 20) -> float:
  """Modularity (Ridgeway & Mozer 2018), as disentanglement_lib ``modularity_explicitness.py``.

  Per code j with MI row m_j: 1 - (sum_k m_jk^2 - max_k m_jk^2) / (max_k m_jk^2 (K - 1)), and 0
  for a code with no information (a constant code has exactly zero MI, so it scores 0); the score
  is the mean over codes. If every factor is constant on the samples (one row, say) no code can
  carry information about them and modularity is undefined: a ValueError, as ``mig``.

  References: [ridgeway2018]; code: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted).
    factors_NxK: (N, K) int array of ground-truth factor classes, K >= 2; any integer labels.
    num_bins: int in [1, 4096], equal-width bins per code column (disentanglement_lib: 20).

  Returns:
    Python float: modularity in [0, 1].
  """
  check_num_bins(num_bins)
  codes, factors, classes = _codes_and_factors(codes_NxD, factors_NxK)
  if factors.shape[1] < 2:
    raise ValueError(f"modularity needs at least 2 factors; got {factors.shape[1]}")
  _host.check_varies(factors, "factors", "modularity")
  with _host.float64():
    return _host.to_float(modularity_core(codes, factors, num_bins, num_factor_classes=classes))


def modularity_from_mi(mi_DxK) -> float:
  """Modularity from a precomputed (D, K) MI matrix (host wrapper of ``modularity_from_mi_core``).

  References: [ridgeway2018]; code: [locatello2019].

  Args:
    mi_DxK: (D, K) real array of mutual information (nats, >= 0), codes x factors, K >= 2
      (``mutual_info_matrix``).

  Returns:
    Python float: modularity in [0, 1].
  """
  mi = _host.as_host_array(mi_DxK, "mi_DxK")
  if mi.shape[1] < 2:
    raise ValueError(f"modularity needs at least 2 factors; got {mi.shape[1]}")
  if mi.min() < 0:
    raise ValueError(f"mi_DxK holds negative values (min {mi.min():.3g}); mutual information is "
                     f">= 0: pass a (codes, factors) MI matrix such as mutual_info_matrix's")
  with _host.float64():
    return _host.to_float(modularity_from_mi_core(np.asarray(mi, np.float64)))


def irs(codes_NxD, factors_NxK, *, diff_quantile: float = 0.99, num_bins: int = 20) -> dict:
  """Interventional Robustness Score (Suter et al. 2019), as disentanglement_lib ``irs.py``.

  Factors are histogram-discretised (20 bins, as ``np.histogram`` bins integers) and constant
  codes dropped. For factor i and each of its values, the ``diff_quantile`` quantile of
  |z - E[z | g_i]| is averaged over values; divided by each code's max |z - E z| this gives a
  deviation, IRS_ji = 1 - deviation; each code's score is its max over factors and IRS is their
  average weighted by the codes' max deviation. With every code constant IRS is 0 (as the
  reference). Deviation: "constant" means max == min (the reference's std > 0 can call a constant
  float column active through rounding, with a ~1e-17 weight). With every factor constant (one
  row, say) there is no intervention to be robust to: a ValueError, as ``mig``.
  Returns {"irs": float, "irs_num_active_dims": int}.

  References: [suter2019]; code: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted), computed in float64.
    factors_NxK: (N, K) int array of ground-truth factor classes (1-D: one factor).
    diff_quantile: float in [0, 1], the quantile of the within-group deviations
      (disentanglement_lib: 0.99).
    num_bins: int in [1, 4096], bins per factor column (disentanglement_lib: 20).

  Returns:
    dict with keys ``"irs"``: Python float, the score; ``"irs_num_active_dims"``: Python int, the
    number of non-constant codes.
  """
  check_num_bins(num_bins)
  codes = _codes(codes_NxD)
  factors = _host.integer_labels(factors_NxK, "factors")
  _host.same_rows(codes, factors, "codes", "factors")
  diff_quantile = _host.check_float(diff_quantile, "diff_quantile", 0.0, 1.0,
                                    hint="disentanglement_lib uses 0.99")
  _host.check_varies(factors, "factors", "IRS")
  with _host.float64():
    return _host.to_host(irs_core(np.asarray(codes, np.float64), factors, float(diff_quantile),
                                  num_bins))


def gaussian_total_correlation(codes_NxD) -> float:
  """TC of a Gaussian with the codes' covariance: 0.5 (sum_j log S_jj - log det S) (nats).

  As disentanglement_lib ``unsupervised_metrics.py`` (``gaussian_total_correlation``). A singular
  covariance (linearly dependent codes) gives +inf; no more samples than dimensions (always
  singular) and a constant code (zero variance, where the
  reference returns NaN) is refused.

  References: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted), N > D, no constant
      column; computed in float64.

  Returns:
    Python float: the total correlation in nats (>= 0; +inf for a singular covariance).
  """
  codes = _codes(codes_NxD, min_rows=2)
  if codes.shape[0] <= codes.shape[1]:
    raise ValueError(f"gaussian_total_correlation needs more samples than code dimensions (the "
                     f"covariance of {codes.shape[0]} samples in {codes.shape[1]} dimensions is "
                     f"singular); pass more than {codes.shape[1]} rows")
  constant = np.nonzero(codes.max(axis=0) == codes.min(axis=0))[0]
  if constant.size:
    raise ValueError(f"code dimension(s) {constant.tolist()} are constant: the Gaussian total "
                     f"correlation is undefined (log of a zero variance); drop constant dimensions")
  with _host.float64():
    return _host.to_float(gaussian_total_correlation_core(np.asarray(codes, np.float64)))


def mutual_info_between_codes(codes_NxD, num_bins: int = 20) -> float:
  """Mean discrete MI (nats) over pairs of distinct code dimensions after 20-bin discretisation.

  As disentanglement_lib ``unsupervised_metrics.py`` (``mutual_info_score``): the mean of the
  off-diagonal entries of the code-by-code MI matrix.

  References: [locatello2019].

  Args:
    codes_NxD: (N, D) real array of codes (encoder means; bfloat16 accepted), D >= 2.
    num_bins: int in [1, 4096], equal-width bins per code column (disentanglement_lib: 20).

  Returns:
    Python float: the mean off-diagonal MI in nats, >= 0.
  """
  check_num_bins(num_bins)
  codes = _codes(codes_NxD)
  if codes.shape[1] < 2:
    raise ValueError(f"mutual_info_between_codes needs at least 2 code dimensions; got "
                     f"{codes.shape[1]}")
  with _host.float64():
    return _host.to_float(mutual_info_between_codes_core(codes, num_bins))


def sap(codes_train, factors_train, codes_test, factors_test, *, C: float = 0.01,
        n_jobs: int | None = None) -> float:
  """Separated Attribute Predictability (Kumar et al. 2018), as disentanglement_lib ``sap_score.py``.

  For each (code j, factor k) a linear SVM (``LinearSVC(C=0.01, class_weight='balanced')``) is
  trained on code j alone and its test accuracy is the score S_jk; SAP is the mean over factors
  of the gap between the two highest S_jk. The D*K fits run in ``n_jobs`` processes
  (metrics.parallel_fit; same models, same values). Deviation: a factor that takes one value on
  the training split (where LinearSVC cannot be fitted and the reference raises) scores gap 0;
  if every factor does, SAP is undefined and this raises. SAP needs >= 2 code dimensions (a gap
  between the two best codes).

  References: [kumar2018]; code: [locatello2019].

  Args:
    codes_train: (N, D) real array of training-split codes (encoder means; bfloat16 is
      accepted), without NaN/inf; D >= 2.
    factors_train: (N, K) int array of training-split factor classes (1-D: one factor).
    codes_test: (M, D) real array of test-split codes, same D as ``codes_train``.
    factors_test: (M, K) int array of test-split factor classes, same K as ``factors_train``.
    C: float > 0, the SVM's inverse regularisation (disentanglement_lib: 0.01).
    n_jobs: int >= 1 or None, processes for the scikit-learn fits (None: one per CPU, or
      ``JAXDISENT_SKLEARN_JOBS``; 1: in-process).

  Returns:
    Python float: SAP in [0, 1].
  """
  codes_train, factors_train, codes_test, factors_test = _supervised(
      codes_train, factors_train, codes_test, factors_test, "SAP", every_factor_varies=False)
  if codes_train.shape[1] < 2:
    raise ValueError(f"SAP needs at least 2 code dimensions (the gap between the two most "
                     f"predictive codes); got {codes_train.shape[1]}")
  C = _host.check_float(C, "C", 0.0, low_open=True, hint="disentanglement_lib uses 0.01")
  _host.check_jobs(n_jobs)
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
  """SAP from a (D, K) score matrix: the mean over factors of the gap between the two best codes.

  References: [kumar2018]; code: [locatello2019] ``sap_score.py``.

  Args:
    scores_DxK: (D, K) real array of per-(code, factor) scores (``sap``: test accuracies), D >= 2.

  Returns:
    Python float: the mean over factors of (best - second-best) score.
  """
  scores = _host.as_host_array(scores_DxK, "scores_DxK")
  if scores.shape[0] < 2:
    raise ValueError(f"SAP needs at least 2 code dimensions (rows of scores_DxK); got "
                     f"{scores.shape[0]}")
  top2 = -np.sort(-np.asarray(scores, np.float64), axis=0)[:2]
  return float(np.mean(top2[0] - top2[1]))


def dci_from_importance(importance_DxK):
  """(disentanglement, completeness) from an importance matrix (Eastwood & Williams 2018).

  disentanglement = sum_j rho_j (1 - H_K(P_j.)), rho_j = code j's share of total importance,
  P_j. = row j normalised, H_K the entropy with log base K; completeness is the same on columns
  with base D. As disentanglement_lib ``dci.py`` (including its 1e-11 smoothing).

  With one factor (K = 1) disentanglement is undefined (an entropy in base 1; the reference gives
  NaN), and with one code (D = 1) completeness is: each is then NaN, with a RuntimeWarning.

  References: [eastwood2018]; code: [locatello2019] ``dci.py``.

  Args:
    importance_DxK: (D, K) real array of importances (>= 0), codes x factors.

  Returns:
    (disentanglement, completeness): a tuple of two Python floats in [0, 1] (each NaN in its
    undefined case above).
  """
  importance = np.asarray(_host.as_host_array(importance_DxK, "importance_DxK"), np.float64)
  if importance.min() < 0:
    raise ValueError(f"importance_DxK holds negative values (min {importance.min():.3g}); "
                     f"importances are >= 0 (use |feature_importances_|)")
  num_codes, num_factors = importance.shape
  for size, what, axis in ((num_factors, "disentanglement", "factor"),
                           (num_codes, "completeness", "code dimension")):
    if size < 2:
      warnings.warn(f"DCI {what} is undefined with a single {axis} (an entropy in base 1): "
                    f"reported as NaN", RuntimeWarning, stacklevel=2)
  if num_factors < 2 or num_codes < 2:
    with np.errstate(divide="ignore", invalid="ignore"):
      per_code = (1.0 - scipy.stats.entropy(importance.T + 1e-11, base=num_factors)
                  if num_factors >= 2 else np.full(num_codes, np.nan))
      per_factor = (1.0 - scipy.stats.entropy(importance + 1e-11, base=num_codes)
                    if num_codes >= 2 else np.full(num_factors, np.nan))
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return (float(np.sum(per_code * weights.sum(axis=1) / weights.sum())),
            float(np.sum(per_factor * weights.sum(axis=0) / weights.sum())))
  per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=num_factors)
  per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=num_codes)
  weights = importance if importance.sum() > 0 else np.ones_like(importance)
  code_share = weights.sum(axis=1) / weights.sum()
  factor_share = weights.sum(axis=0) / weights.sum()
  return float(np.sum(per_code * code_share)), float(np.sum(per_factor * factor_share))


def _check_pairs(pairs, num_factors: int) -> list[tuple[int, int]]:
  out = []
  for pair in pairs:
    try:
      a, b = (int(i) for i in pair)
    except (TypeError, ValueError) as error:
      raise ValueError(f"pairs must be (i, j) factor-index pairs; got {pair!r}") from error
    if a == b or not (0 <= a < num_factors and 0 <= b < num_factors):
      raise ValueError(f"pair {pair!r}: two different factor indices in [0, {num_factors}) needed")
    out.append((a, b))
  if not out:
    raise ValueError("pairs is empty: name at least one (i, j) pair of correlated factors")
  return out


def pair_separation(mi_DxK, entropy_K, pairs) -> dict:
  """Is each factor of a correlated pair captured by a latent that does not also capture the other?

  Our definition (in the spirit of Traeuble et al. 2021's pairwise analysis; they publish no
  closed form): with n[j, k] = MI(code_j; factor_k) / H(factor_k) (MIG's normalisation), for the
  pair (a, b) and each f in {a, b} with g the other one, take f's most informative code
  j_f = argmax_j n[j, f] and its margin n[j_f, f] - n[j_f, g]; the pair's score is the mean of the
  two margins. 1: each factor has its own code that carries nothing of the other; 0: the best code
  of each factor knows the other factor as well (the pair is entangled); negative: worse. Measure
  it on data where the pair is *independent* (the uniform grid), else a code of a alone also
  carries MI with b through the correlation.

  References: [trauble2021] (correlated factor pairs); normalisation as MIG's [chen2018].

  Args:
    mi_DxK: (D, K) float mutual information (nats), codes x factors (``mutual_info_matrix``).
    entropy_K: (K,) float entropy of each factor (nats, ``discrete_entropy``), > 0 for paired ones.
    pairs: iterable of (a, b) factor indices.

  Returns:
    {"pairs": [(a, b), ...], "separation": [float per pair], "mean": float}.
  """
  mi = np.asarray(_host.as_host_array(mi_DxK, "mi_DxK"), np.float64)
  entropy = np.asarray(_host.as_host_array(entropy_K, "entropy_K", ndim=(1,)), np.float64)
  if mi.ndim != 2 or entropy.shape[0] != mi.shape[1]:
    raise ValueError(f"mi_DxK {mi.shape} and entropy_K {entropy.shape} disagree on K")
  checked = _check_pairs(pairs, mi.shape[1])
  used = sorted({i for p in checked for i in p})
  if np.any(entropy[used] <= 0):
    raise ValueError("a paired factor has zero entropy (constant on these samples): the pair "
                     "measure needs both factors to vary")
  normalised = mi / entropy[None]
  scores = []
  for a, b in checked:
    margins = [normalised[np.argmax(normalised[:, f]), f] - normalised[np.argmax(normalised[:, f]), g]
               for f, g in ((a, b), (b, a))]
    scores.append(float(np.mean(margins)))
  return {"pairs": checked, "separation": scores, "mean": float(np.mean(scores))}


def pair_dci_disentanglement(importance_DxK, pairs) -> dict:
  """DCI disentanglement restricted to each pair: ``dci_from_importance`` on the two columns.

  Each code's importance for the pair (a, b) is spread over the two factors; 1 - H_2 of that split,
  weighted by the code's share of the pair's importance, is 1 when every code serves one factor of
  the pair and 0 when each code serves both equally.

  References: [eastwood2018] (DCI disentanglement); pairs as in [trauble2021].

  Args:
    importance_DxK: (D, K) float >= 0 importance matrix (``dci(...)['dci_importance']``).
    pairs: iterable of (a, b) factor indices.

  Returns:
    {"pairs": [(a, b), ...], "disentanglement": [float per pair], "mean": float}.
  """
  importance = np.asarray(_host.as_host_array(importance_DxK, "importance_DxK"), np.float64)
  checked = _check_pairs(pairs, importance.shape[1])
  scores = [dci_from_importance(importance[:, [a, b]])[0] for a, b in checked]
  return {"pairs": checked, "disentanglement": scores, "mean": float(np.mean(scores))}


def dci(codes_train, factors_train, codes_test, factors_test, *, importance: str = "gbt",
        seed: int = 0, n_jobs: int | None = None) -> dict:
  """DCI disentanglement, completeness and informativeness, as disentanglement_lib ``dci.py``.

  ``importance='gbt'`` (reference): one ``GradientBoostingClassifier()`` per factor on all codes;
  the importance matrix is |feature_importances_|; informativeness is the mean test accuracy.
  ``importance='random_forest'`` is a faster alternative (``RandomForestClassifier(100 trees,
  max_features=None, n_jobs=-1)``, impurity importances; with the default sqrt feature sampling
  trees are forced onto irrelevant codes, which spreads importance and deflates disentanglement).
  Its numbers are not comparable with published ones. The per-factor fits run in ``n_jobs``
  processes (metrics.parallel_fit; same models, same values). Every factor must take >= 2 values
  on the training split (a classifier needs two classes).

  References: [eastwood2018]; code: [locatello2019].

  Args:
    codes_train: (N, D) real array of training-split codes (encoder means; bfloat16 is
      accepted), without NaN/inf.
    factors_train: (N, K) int array of training-split factor classes (1-D: one factor).
    codes_test: (M, D) real array of test-split codes, same D as ``codes_train``.
    factors_test: (M, K) int array of test-split factor classes, same K as ``factors_train``.
    importance: ``'gbt'`` (reference) or ``'random_forest'``.
    seed: int >= 0, the classifiers' ``random_state``.
    n_jobs: int >= 1 or None, processes for the scikit-learn fits (None: one per CPU, or
      ``JAXDISENT_SKLEARN_JOBS``; 1: in-process).

  Returns:
    dict with keys ``"dci_disentanglement"``, ``"dci_completeness"``: Python floats in [0, 1];
    ``"dci_informativeness"``, ``"dci_informativeness_train"``: Python floats, mean test / train
    accuracy over factors; ``"dci_importance"``: (D, K) float64 NumPy array, the importance
    matrix.
  """
  if importance not in ("gbt", "random_forest"):
    raise ValueError(f"importance must be 'gbt' or 'random_forest', got {importance!r}")
  codes_train, factors_train, codes_test, factors_test = _supervised(
      codes_train, factors_train, codes_test, factors_test, "DCI")
  _host.check_int(seed, "seed", 0)
  _host.check_jobs(n_jobs)
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
  class present this is exactly the reference's value. A factor whose AUC is undefined on a split
  (no test class seen in training, or a single test class) is NaN on that split, with a
  RuntimeWarning naming it, and so is the mean. Every factor must take >= 2 values on the
  training split.

  References: [ridgeway2018]; code: [locatello2019].

  Args:
    codes_train: (N, D) real array of training-split codes (encoder means; bfloat16 is
      accepted), without NaN/inf.
    factors_train: (N, K) int array of training-split factor classes (1-D: one factor).
    codes_test: (M, D) real array of test-split codes, same D as ``codes_train``.
    factors_test: (M, K) int array of test-split factor classes, same K as ``factors_train``.
    n_jobs: int >= 1 or None, processes for the scikit-learn fits (None: one per CPU, or
      ``JAXDISENT_SKLEARN_JOBS``; 1: in-process).

  Returns:
    dict with keys ``"explicitness"`` (test split) and ``"explicitness_train"``: Python floats,
    mean macro ROC-AUC over factors (NaN where a factor's AUC is undefined).
  """
  codes_train, factors_train, codes_test, factors_test = _supervised(
      codes_train, factors_train, codes_test, factors_test, "explicitness")
  _host.check_jobs(n_jobs)
  mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  x_train, x_test = (codes_train - mean) / std, (codes_test - mean) / std
  aucs = parallel_fit.run_tasks(parallel_fit.explicitness_factor, [
      (x_train, factors_train[:, k], x_test, factors_test[:, k], _macro_auc)
      for k in range(factors_train.shape[1])], desc="explicitness", n_jobs=n_jobs,
      cost=lambda task: np.unique(task[1]).size)
  train, test = [auc[0] for auc in aucs], [auc[1] for auc in aucs]
  for split, key, values in (("training", "explicitness_train", train),
                             ("test", "explicitness", test)):
    undefined = [k for k, value in enumerate(values) if np.isnan(value)]
    if undefined:
      warnings.warn(f"explicitness: the ROC-AUC of factor(s) {undefined} is undefined on the "
                    f"{split} split (no class of it both present and absent among the classes "
                    f"seen in training): {key} is NaN; draw more samples",
                    RuntimeWarning, stacklevel=2)
  return {"explicitness": float(np.mean(test)), "explicitness_train": float(np.mean(train))}


def _macro_auc(labels, probabilities, classes) -> float:
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top
  scores = []
  for column, label in enumerate(classes):
    positive = labels == label
    if positive.any() and not positive.all():
      scores.append(roc_auc_score(positive, probabilities[:, column]))
  return float(np.mean(scores)) if scores else float("nan")


def array_metrics(codes_train, factors_train, codes_test, factors_test, *, num_bins: int = 20,
                  dci_importance: str = "gbt") -> dict:
  """All array-based scores in one flat dict (keys as written to eval.json).

  MIG, modularity, the Gaussian total correlation and the code-code MI use the training split
  only; SAP, explicitness and DCI use both. Needs D >= 2 codes (MIG, SAP) and K >= 2 factors
  (modularity). References: [locatello2019].

  Args:
    codes_train: (N, D) real array of training-split codes (encoder means; bfloat16 is
      accepted), without NaN/inf.
    factors_train: (N, K) int array of training-split factor classes (1-D: one factor).
    codes_test: (M, D) real array of test-split codes, same D as ``codes_train``.
    factors_test: (M, K) int array of test-split factor classes, same K as ``factors_train``.
    num_bins: int in [1, 4096], bins for MIG, modularity and the code-code MI.
    dci_importance: ``importance`` of ``dci``: ``'gbt'`` (reference) or ``'random_forest'``.

  Returns:
    dict of Python floats with keys ``"mig"``, ``"modularity"``, ``"sap"``,
    ``"gaussian_total_correlation"``, ``"mutual_info_between_codes"``, ``"explicitness"``,
    ``"explicitness_train"``, ``"dci_disentanglement"``, ``"dci_completeness"``,
    ``"dci_informativeness"``, ``"dci_informativeness_train"``, and ``"dci_importance"``: the
    (D, K) float64 NumPy importance matrix.
  """
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
           "gaussian_total_correlation", "gaussian_total_correlation_core", "irs", "irs_core",
           "mig", "mig_core", "modularity", "modularity_core", "modularity_from_mi",
           "modularity_from_mi_core", "mutual_info_between_codes",
           "mutual_info_between_codes_core", "mutual_info_matrix", "mutual_info_matrix_core", "sap",
           "sap_from_scores"]
