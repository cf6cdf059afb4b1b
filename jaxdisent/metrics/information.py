"""Discretisation, discrete entropy and mutual information as JAX functions.

These are the building blocks of MIG, modularity, IRS and the unsupervised scores. They follow
disentanglement_lib's ``utils`` module:

* ``histogram_discretize``: disentanglement_lib's ``_histogram_discretize``, i.e. per column
  ``np.digitize(x, np.histogram(x, num_bins)[1][:-1])``, returned 0-based (classes
  0..num_bins-1, the same partition). The edges are NumPy's bit for bit (NumPy >= 2 semantics):
  ``first, last = min, max`` (widened by -+0.5 for a constant column), ``step = (last - first) /
  num_bins``, ``edge_i = i * step + first``, each operation rounded in the *bin dtype*, which is
  the data's float dtype (float32 codes: float32 edges) and float64 for integer data. Values lying
  exactly on an edge (integer codes, integer factors) therefore land where ``np.histogram`` puts
  them. Integer data under ``jit`` without ``jax_enable_x64`` is binned exactly too, by integer
  arithmetic that reproduces the float64 edge rounding (see ``_integer_classes``) for integers of
  magnitude <= 2^23 and ``num_bins * (max - min) < 2^31``. Without x64, JAX holds float64 input as
  float32, so it is binned as NumPy bins that float32 array; float16/bfloat16 are binned as
  float32 (NumPy would use float16 edges). NumPy 1.x computed float32 data's edges
  in float64 and rounded them to float32; an edge can then differ from ours by one float32 ulp.
* ``discrete_mutual_info``: ``sklearn.metrics.mutual_info_score`` for every (code, factor) pair,
  in nats, from the contingency table: sum_xy p(x,y) log(p(x,y) / (p(x) p(y))). As sklearn, it is
  exactly 0 when either variable takes a single value (a constant code carries no information;
  rounding must not make it look informative).
* ``discrete_entropy``: H(y) in nats (= mutual_info_score(y, y)).

Arrays are laid out (N samples, D dims), the layout users have, rather than disentanglement_lib's
transposed (D, N). ``*_core`` functions are pure JAX (jit / vmap); the plain names are validating
host wrappers returning NumPy arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.metrics import _host
from jaxdisent.metrics._numerics import divide

MAX_BINS = 4096  # the integer-exact path needs k * rho < 2^24 (k, |rho| <= num_bins)
_BINS_HINT = "disentanglement_lib uses 20"


def check_num_bins(num_bins):
  """`num_bins` validated: a Python int in [1, MAX_BINS] (disentanglement_lib uses 20).

  Args:
    num_bins: the requested number of histogram bins.

  Returns:
    Python int.

  Raises:
    ValueError: not an int (bools and floats refused) or out of range.
  """
  return _host.check_int(num_bins, "num_bins", 1, MAX_BINS, _BINS_HINT)


def _x64_enabled() -> bool:
  return jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64


# ---- discretisation ------------------------------------------------------------------------------

def histogram_discretize(codes_NxD, num_bins: int = 20):
  """Equal-width binning per column, as disentanglement_lib's ``_histogram_discretize``.

  Exactly ``np.digitize(x, np.histogram(x, num_bins)[1][:-1])`` ([locatello2019]) minus one:
  int32 classes in [0, num_bins). Pure JAX (jit / vmap); see the module docstring for the edge
  arithmetic.

  Called on concrete arrays (outside jit) it refuses NaN/inf, which have no bin (np.histogram
  raises there too); traced, it cannot look at the values, and a column holding NaN has no valid
  classes (every entry -1), as the other cores return NaN for undefined data.

  Args:
    codes_NxD: (N, D) real array (float, integer or bool), samples x dimensions.
    num_bins: static Python int in [1, MAX_BINS].

  Returns:
    (N, D) int32 JAX array of classes in [0, num_bins).

  Raises:
    ValueError: NaN/inf in concrete input, a non-2-D array or a bad `num_bins`.
  """
  if not isinstance(codes_NxD, jax.core.Tracer):
    values = np.asarray(codes_NxD)
    if (values.dtype != object and jnp.issubdtype(values.dtype, jnp.inexact)
        and not np.isfinite(values.astype(np.float64) if values.dtype.kind == "V" else values).all()):
      raise ValueError("codes contains NaN or inf, which fall in no histogram bin; drop or fix "
                       "those rows (check the encoder / checkpoint that produced them)")
  return _histogram_discretize(codes_NxD, num_bins)


@functools.partial(jax.jit, static_argnames="num_bins")
def _histogram_discretize(codes_NxD, num_bins: int = 20):
  num_bins = check_num_bins(num_bins)
  codes = jnp.asarray(codes_NxD)
  if codes.ndim != 2:
    raise ValueError(f"codes must have shape (N, D); got {codes.shape}")
  if jnp.issubdtype(codes.dtype, jnp.integer) or codes.dtype == jnp.bool_:
    if _x64_enabled():  # NumPy's own float64 arithmetic on the exactly converted integers
      return _float_classes(codes.astype(jnp.float64), num_bins)
    return _integer_classes(codes.astype(jnp.int32), num_bins)
  if codes.dtype not in (jnp.float32, jnp.float64):
    codes = codes.astype(jnp.float32)
  return _float_classes(codes, num_bins)


def _float_classes(x, num_bins: int):
  """NumPy's linspace edges in the data's float dtype, every operation rounded once, as NumPy.

  Two compiler rewrites would change the rounding and are ruled out by construction: a division
  by the constant num_bins becomes a multiplication by its (inexact) reciprocal, so the divisor
  is made data-dependent; a multiply feeding an add may become one fused multiply-add, so
  i * step is formed from two *exact* products (step split into 12 high and the remaining low
  significant bits, i < 2^12) whose sum is rounded once, which a fused multiply-add rounds the
  same way.
  """
  dtype = x.dtype
  low, high = x.min(axis=0), x.max(axis=0)
  constant = low == high
  low = jnp.where(constant, low - jnp.asarray(0.5, dtype), low)
  high = jnp.where(constant, high + jnp.asarray(0.5, dtype), high)
  delta = high - low
  step = divide(delta, num_bins)
  divisor = jnp.where(jnp.isnan(delta), jnp.asarray(jnp.nan, dtype), jnp.asarray(num_bins, dtype))
  int_dtype = jnp.int32 if dtype == jnp.float32 else jnp.int64
  low_bits = 12 if dtype == jnp.float32 else 41          # keep 12 significant bits in step_hi
  mask = jnp.asarray(~((1 << low_bits) - 1), int_dtype)
  step_hi = jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(step, int_dtype) & mask, dtype)
  step_lo = step - step_hi
  i = jnp.arange(num_bins, dtype=dtype)[:, None]
  scaled = i * step_hi[None, :] + i * step_lo[None, :]                    # = RN(i * step)
  # numpy's denormal branch (step == 0): y = i / num_bins * delta
  tiny = (i / divisor[None, :]) * delta[None, :]
  scaled = jnp.where(step[None, :] == 0, tiny, scaled)
  edges = scaled + low[None, :]                                           # num_bins x D
  return (jnp.sum(x[None, :, :] >= edges[:, None, :], axis=0) - 1).astype(jnp.int32)


def _integer_classes(x, num_bins: int):
  """np.histogram + np.digitize classes of int32 data, with float64 edge rounding reproduced in
  int32/float32 arithmetic (exact; nothing here rounds).

  With first edge a, range D and B bins, edge_i = RN(RN(i RN(D/B)) + a) (RN: float64 round to
  nearest even). The exact edge t_i = a + i D / B differs from edge_i by < 2^-20, and an integer
  x != t_i is >= 1/B away from t_i, so x >= edge_i iff x >= t_i except when x == t_i exactly.
  Then (B | i D) the sign of edge_i - t_i decides, and it is computed exactly: RN(D/B) = D/B +
  rho 2^(E-52)/B with rho the signed remainder of D 2^(52-E) modulo B (ties to even); i RN(D/B) =
  m + c 2^(E-52) with m = i D / B and c = i rho / B integers; rounding that to 53 bits moves it by
  a multiple of ulp(m) (half of it below a power of two), and adding a rounds once more at ulp(t).
  A constant column (edges a -+ 0.5) is handled in doubled units, where everything is integer.
  """
  b = jnp.int32(num_bins)
  low, high = x.min(axis=0), x.max(axis=0)
  constant = low == high
  # doubled units for constant columns: x' = 2x, a' = 2a - 1, D' = 2
  xs = jnp.where(constant[None, :], 2 * x, x)
  a = jnp.where(constant, 2 * low - 1, low)
  d = jnp.where(constant, 2, high - low)                                     # D' >= 1
  y = xs - a[None, :]                                                         # 0 <= y <= D'
  # k = floor(B y / D') without overflow: float32 estimate, corrected with the remainder
  # r = B y - k D', computed in wrapping int32 (exact because the true r is small).
  k = jnp.floor(y.astype(jnp.float32) * jnp.float32(num_bins) / d.astype(jnp.float32)).astype(jnp.int32)
  for _ in range(2):
    r = b * y - k * d[None, :]
    k = jnp.where(r < 0, k - 1, jnp.where(r >= d[None, :], k + 1, k))
  r = b * y - k * d[None, :]
  tie = (r == 0) & (k >= 1) & (k < b)
  # E = floor(log2(D'/B)): the largest E with B 2^E <= D' (exact float32 comparisons)
  d_f, b_f = d.astype(jnp.float32), jnp.float32(num_bins)
  e = jnp.floor(jnp.log2(d_f) - jnp.log2(b_f)).astype(jnp.int32)
  for _ in range(2):
    e = jnp.where(jnp.ldexp(b_f, e) > d_f, e - 1, e)
    e = jnp.where(jnp.ldexp(b_f, e + 1) <= d_f, e + 1, e)
  # D' 2^(52-E) modulo 2B by repeated doubling (52 - E <= 52 + 12 + 1 for B <= 4096)
  shift = 52 - e
  modulus = 2 * b
  n_mod = jax.lax.fori_loop(0, 80, lambda j, v: jnp.where(j < shift, (2 * v) % modulus, v),
                            d % modulus)
  rem = n_mod % b
  floor_odd = n_mod >= b
  rho = jnp.where(2 * rem < b, -rem,
                  jnp.where(2 * rem > b, b - rem, jnp.where(floor_odd, b - rem, -rem)))
  m = y                                                       # at a tie, m = k D' / B = y
  c = (k * rho[None, :]) // b                                 # exact: B divides k rho at a tie
  m_safe = jnp.maximum(m, 1)
  g = jnp.frexp(m_safe.astype(jnp.float32))[1] - 1            # floor(log2 m)
  h = g - e[None, :]                                          # >= 0
  power_of_two = (m_safe & (m_safe - 1)) == 0
  eff_h = jnp.where(power_of_two & (c < 0), h - 1, h)
  c_f = c.astype(jnp.float32)
  rounded = jnp.round(jnp.ldexp(c_f, -eff_h)) * jnp.ldexp(jnp.float32(1), eff_h)
  delta = jnp.where(eff_h <= 0, c_f, rounded)                 # in units of 2^(E - 52)
  # adding a: e_k = RN(t + delta 2^(E-52)), t = x' (integer); nonzero move iff |delta 2^(E-52)|
  # exceeds half the grain at t (ties go to t, whose significand is even)
  t = xs
  t_abs = jnp.maximum(jnp.abs(t), 1)
  big_t = jnp.frexp(t_abs.astype(jnp.float32))[1] - 1
  toward_zero = ((t > 0) & (delta < 0)) | ((t < 0) & (delta > 0))
  t_pow2 = (t_abs & (t_abs - 1)) == 0
  z = (toward_zero & t_pow2).astype(jnp.int32)
  half_grain = jnp.ldexp(jnp.float32(1), big_t - e[None, :] - 1 - z)
  moves = (a[None, :] == 0) | (t == 0) | (jnp.abs(delta) > half_grain)
  edge_above = tie & moves & (delta > 0)
  classes = jnp.minimum(k, b - 1) - edge_above.astype(jnp.int32)
  return classes.astype(jnp.int32)


# ---- entropy and mutual information --------------------------------------------------------------

def _contingency(a_NxA, b_NxB, a_classes: int, b_classes: int):
  """Counts (A, B, a_classes, b_classes) of every pair of discrete columns, by one-hot matmul."""
  n = a_NxA.shape[0]
  dtype = jnp.result_type(float)
  one_a = jax.nn.one_hot(a_NxA, a_classes, dtype=dtype).reshape(n, -1)
  one_b = jax.nn.one_hot(b_NxB, b_classes, dtype=dtype).reshape(n, -1)
  counts = jnp.dot(one_a.T, one_b, precision=jax.lax.Precision.HIGHEST)
  return counts.reshape(a_NxA.shape[1], a_classes, b_NxB.shape[1], b_classes).transpose(0, 2, 1, 3)


def _mi_from_counts(counts):
  n = counts.sum(axis=(-2, -1), keepdims=True)
  p_xy = counts / n
  p_x = p_xy.sum(axis=-1, keepdims=True)
  p_y = p_xy.sum(axis=-2, keepdims=True)
  ratio = jnp.where(p_xy > 0, p_xy / jnp.maximum(p_x * p_y, 1e-30), 1.0)
  mi = jnp.maximum(jnp.sum(p_xy * jnp.log(ratio), axis=(-2, -1)), 0.0)
  # sklearn's rule: a variable with one observed value shares no information (exactly 0).
  single_x = jnp.sum(counts.sum(axis=-1) > 0, axis=-1) <= 1
  single_y = jnp.sum(counts.sum(axis=-2) > 0, axis=-1) <= 1
  return jnp.where(single_x | single_y, 0.0, mi)


@functools.partial(jax.jit, static_argnames=("a_classes", "b_classes"))
def discrete_mutual_info_core(a_NxA, b_NxB, a_classes: int, b_classes: int):
  """(A, B) MI (nats) between columns of two label arrays. Pure JAX (jit / vmap).

  ``sklearn.metrics.mutual_info_score`` for every column pair, as disentanglement_lib's
  ``discrete_mutual_info`` ([locatello2019]); exactly 0 when either column takes one value. Labels
  lie in [0, a_classes) and [0, b_classes) (labels outside are ignored).

  Args:
    a_NxA: (N, A) integer array of labels.
    b_NxB: (N, B) integer array of labels.
    a_classes: static Python int >= 1, the class count of `a_NxA`.
    b_classes: static Python int >= 1, the class count of `b_NxB`.

  Returns:
    (A, B) float array in JAX's default float dtype (float64 under x64, else float32), >= 0.
  """
  _host.check_int(a_classes, "a_classes", 1)
  _host.check_int(b_classes, "b_classes", 1)
  return _mi_from_counts(_contingency(a_NxA, b_NxB, a_classes, b_classes))


@functools.partial(jax.jit, static_argnames="num_classes")
def discrete_entropy_core(labels_NxK, num_classes: int):
  """(K,) entropy (nats) of each label column, labels in [0, num_classes). Pure JAX.

  Args:
    labels_NxK: (N, K) integer array of labels.
    num_classes: static Python int >= 1.

  Returns:
    (K,) float array in JAX's default float dtype (float64 under x64, else float32), >= 0.
  """
  _host.check_int(num_classes, "num_classes", 1)
  counts = jax.nn.one_hot(labels_NxK, num_classes, dtype=jnp.result_type(float)).sum(axis=0)  # K x C
  p = counts / labels_NxK.shape[0]
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=1)


def dense_labels(x, name: str = "labels") -> tuple[np.ndarray, int]:
  """Host helper: integer labels and the class count for the cores.

  Labels are relabelled per column to 0..(#distinct - 1) when they are negative or >= 4096
  (sklearn treats labels as categories, so the values do not matter); otherwise kept as they are.

  Args:
    x: (N, K) or (N,) integer or bool array-like (a 1-D array is one column).
    name: the argument's name for error messages.

  Returns:
    (labels, num_classes): labels an (N, K) int64 NumPy array of non-negative labels; num_classes
    a Python int, max label + 1.

  Raises:
    TypeError: non-integer labels.
    ValueError: empty, NaN/inf or wrongly shaped input.
  """
  x = _host.as_host_array(x, name, allow_1d_as_column=True)
  if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
    raise TypeError(f"{name} must be integer class labels, got {x.dtype}; discretise continuous "
                    f"values first (histogram_discretize)")
  x = x.astype(np.int64)
  if x.min() < 0 or x.max() >= 4096:
    out = np.empty_like(x)
    for j in range(x.shape[1]):
      out[:, j] = np.unique(x[:, j], return_inverse=True)[1].reshape(-1)
    x = out
  return x, int(x.max()) + 1


def discrete_mutual_info(codes_NxD, factors_NxK) -> np.ndarray:
  """Mutual information (nats) between every discrete code column and factor column: (D, K).

  Validating host wrapper of :func:`discrete_mutual_info_core`, run in float64; as
  disentanglement_lib's ``discrete_mutual_info`` ([locatello2019]) in our (N, D) layout.

  Args:
    codes_NxD: (N, D) or (N,) integer array-like, the discretised codes.
    factors_NxK: (N, K) or (N,) integer array-like, the factors (same N).

  Returns:
    (D, K) float64 NumPy array.

  Raises:
    TypeError: non-integer labels.
    ValueError: bad shapes or different sample counts.
  """
  codes, code_classes = dense_labels(codes_NxD, "codes")
  factors, factor_classes = dense_labels(factors_NxK, "factors")
  _host.same_rows(codes, factors, "codes", "factors")
  with _host.float64():
    return np.asarray(discrete_mutual_info_core(codes, factors, code_classes, factor_classes))


def discrete_entropy(factors_NxK) -> np.ndarray:
  """Entropy (nats) of each discrete column: (K,).

  Validating host wrapper of :func:`discrete_entropy_core`, run in float64; disentanglement_lib's
  ``discrete_entropy`` ([locatello2019]).

  Args:
    factors_NxK: (N, K) or (N,) integer array-like.

  Returns:
    (K,) float64 NumPy array.

  Raises:
    TypeError: non-integer labels.
    ValueError: empty or NaN/inf input.
  """
  factors, classes = dense_labels(factors_NxK, "factors")
  with _host.float64():
    return np.asarray(discrete_entropy_core(factors, classes))


__all__ = ["MAX_BINS", "dense_labels", "discrete_entropy", "discrete_entropy_core",
           "discrete_mutual_info", "discrete_mutual_info_core", "histogram_discretize"]
