"""Representation-similarity metrics between two feature sets of the same n samples.

Definitions follow the platonic-representation-hypothesis code (Huh et al. 2024), which the
alignment-emergence paper uses, with two deliberate changes stated where they apply: unbiased HSIC
is computed in O(n^2) (or O(n d^2) for linear kernels) instead of O(n^3), and SVCCA uses exact CCA
instead of scikit-learn's iterative CCA.

Nothing here materialises an n x n matrix: neighbourhoods and kernel sums are computed in row
blocks of ``block_size`` rows, so n = 100,000 samples of 768-d features fit in a few GiB.
Features are used as given; the papers L2-normalise them first (``l2_normalize``).

``*_core`` functions are pure JAX (jit / vmap / grad; ``k``, ``cca_dim``, ``kernel``,
``unbiased`` and ``block_size`` static); the plain names are validating host wrappers returning a
Python float (see ``jaxdisent.metrics``). Undefined values (constant features, an RBF bandwidth so
small that every off-diagonal kernel entry underflows) are NaN in the cores and a ValueError in
the wrappers; so are feature sets whose rows are all identical for the k-NN metrics (their
neighbours are all ties). The wrappers accept bfloat16 / float16 and widen it to float32.

Metrics: ``mutual_knn``, ``cycle_knn``, ``lcs_knn``, ``edit_knn`` (platonic-rep's four k-NN
measures; ``knn_metric_from_indices`` computes them from precomputed neighbours), ``cka`` /
``unbiased_cka`` (linear or RBF kernel), ``cknna``, ``svcca``. CKA is computed on unit-scaled
features as hsic_xy / (sqrt(hsic_xx) sqrt(hsic_yy)): finite and scale-invariant in float32 from
feature scales 1e-8 to 1e8 (the product hsic_xx * hsic_yy over- or underflows there).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.metrics import _host
from jaxdisent.metrics._numerics import divide

_HIGHEST = jax.lax.Precision.HIGHEST


def l2_normalize(feats_NxD, eps: float = 1e-12):
  """Each row of ``feats_NxD`` divided by its L2 norm (floored at ``eps``), in float32.

  As platonic-rep's ``F.normalize(x, p=2, dim=-1)`` before every metric [huh2024]. Pure JAX.

  Args:
    feats_NxD: (N, D) real array of features, one row per sample.
    eps: float > 0, floor on the row norms (a row of norm below ``eps`` is divided by ``eps``).

  Returns:
    (N, D) float32 JAX array with unit-norm rows (rows of norm below ``eps`` stay shorter;
    all-zero rows stay zero).
  """
  feats = jnp.asarray(feats_NxD, jnp.float32)
  return feats / jnp.maximum(jnp.linalg.norm(feats, axis=1, keepdims=True), eps)


def _as_float32_input(x):
  """bfloat16 / float16 (NumPy's ml_dtypes or JAX arrays) -> float32 before validation: NumPy
  does not count ml_dtypes' bfloat16 as a number type, so the generic check would refuse it."""
  dtype = getattr(x, "dtype", None)
  if dtype is not None and str(dtype) in ("bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"):
    return np.asarray(x, np.float32)
  return x


def _pair(feats_a, feats_b, min_rows: int = 2):
  """Host validation: two float32 (N, D) arrays of the same N, without NaN/inf (bfloat16 and
  float16 accepted and widened)."""
  a = _host.as_host_array(_as_float32_input(feats_a), "feats_a", min_rows=min_rows)
  b = _host.as_host_array(_as_float32_input(feats_b), "feats_b", min_rows=min_rows)
  if a.shape[0] != b.shape[0]:
    raise ValueError(f"both feature sets must describe the same N samples; got {a.shape[0]} and "
                     f"{b.shape[0]} rows (pair them by row)")
  return _finite_float32(a, "feats_a"), _finite_float32(b, "feats_b")


def _finite_float32(x, name):
  if np.issubdtype(x.dtype, np.floating) and x.dtype.itemsize > 4:
    big = np.abs(x).max()
    if big > np.finfo(np.float32).max:
      # CKA / k-NN / SVCCA are scale-invariant: rescale before the float32 cast instead of
      # overflowing to inf
      x = x / big
  out = x.astype(np.float32, copy=False)
  if not np.isfinite(out).all():
    raise ValueError(f"{name} does not fit float32 (values up to {np.abs(x).max():.3g}); rescale it")
  return out


def _core_pair(feats_a, feats_b):
  a, b = jnp.asarray(feats_a, jnp.float32), jnp.asarray(feats_b, jnp.float32)
  if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
    raise ValueError(f"features must be (N, D) arrays with the same N; got {a.shape} and {b.shape}")
  return a, b


def _safe_scale(x):
  """x / max|x| where max|x| is outside [1e-10, 1e10] (x itself inside it): inner products and
  variances of such features over- or underflow float32, and k-NN orders and SVCCA do not depend
  on a global scale; inside the range nothing changes, so values stay bitwise the reference's."""
  big = jnp.max(jnp.abs(x))
  extreme = (big > 1e10) | ((big < 1e-10) & (big > 0))
  return x / jnp.where(extreme, big, 1.0)


def _unit_scale(x):
  """x / max|x| (x itself when it is all zeros): CKA is invariant to a global feature scale, and
  at unit scale the fourth powers in HSIC neither overflow (features ~1e10) nor underflow
  (features ~1e-10) in float32."""
  big = jnp.max(jnp.abs(x))
  return x / jnp.where(big > 0, big, 1.0)


def _row_scale(x):
  """The largest row norm of x, computed overflow-free (1 when x is all zeros)."""
  big = jnp.max(jnp.abs(x))
  big = jnp.where(big > 0, big, 1.0)
  norm = big * jnp.max(jnp.linalg.norm(x / big, axis=1))
  return jnp.where(norm > 0, norm, 1.0)


def _cka_ratio(hxy, hxx, hyy):
  """HSIC(K, L) / (sqrt(HSIC(K, K)) sqrt(HSIC(L, L))): the product HSIC(K, K) HSIC(L, L) can
  overflow or underflow float32 where each square root does not. NaN where a denominator
  term is not positive (CKA undefined)."""
  ok = (hxx > 0) & (hyy > 0)
  value = hxy / (jnp.sqrt(jnp.where(ok, hxx, 1.0)) * jnp.sqrt(jnp.where(ok, hyy, 1.0)))
  return jnp.where(ok, value, jnp.nan)


# ---- nearest neighbours --------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def knn_indices(feats_NxD, k: int, block_size: int = 1024):
  """Indices (N, k) of each sample's k nearest neighbours by inner product, self excluded.

  Ties and order follow ``lax.top_k`` (largest similarity first), as ``torch.argsort``/``topk``
  in the reference. Computed in row blocks: memory O(block_size * N).

  References: [huh2024] (platonic-rep's k-NN by inner product).

  Args:
    feats_NxD: (N, D) real array of features (cast to float32), one row per sample.
    k: static int in [1, N - 1], neighbours per sample.
    block_size: static int >= 1, rows of the similarity matrix computed at once.

  Returns:
    (N, k) int32 array: row i holds the indices of sample i's k neighbours, most similar first.
  """
  feats = _safe_scale(jnp.asarray(feats_NxD, jnp.float32))
  n = feats.shape[0]
  pad = (-n) % block_size
  rows = jnp.pad(feats, ((0, pad), (0, 0))).reshape(-1, block_size, feats.shape[1])
  starts = jnp.arange(rows.shape[0]) * block_size

  def one_block(args):
    block, start = args
    sims = jnp.dot(block, feats.T, precision=_HIGHEST)
    self_index = start + jnp.arange(block_size)
    sims = jnp.where(self_index[:, None] == jnp.arange(n)[None, :], -jnp.inf, sims)
    return jax.lax.top_k(sims, k)[1]

  out = jax.lax.map(one_block, (rows, starts))
  return out.reshape(-1, k)[:n]


KNN_METRICS = ("mutual_knn", "cycle_knn", "lcs_knn", "edit_knn")


@functools.partial(jax.jit, static_argnames="metric")
def knn_metric_from_indices(knn_a, knn_b, metric: str):
  """``mutual_knn`` / ``cycle_knn`` / ``lcs_knn`` / ``edit_knn`` from precomputed neighbour
  indices (``knn_indices`` of each feature set, same k): the cores compute exactly this, so a
  caller comparing many layer pairs can search each layer's neighbours once.

  References: [huh2024].

  Args:
    knn_a: (N, k) int array, ``knn_indices`` of the first feature set.
    knn_b: (N, k) int array, ``knn_indices`` of the second feature set (same N and k).
    metric: static str, one of ``KNN_METRICS``.

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``): mutual / cycle / edit k-NN in
    [0, 1], LCS k-NN in [0, k].
  """
  n, k = knn_a.shape
  if metric == "mutual_knn":
    return divide(jnp.sum(_overlap(knn_a, knn_b)), n * k)
  if metric == "cycle_knn":
    return _cycle(knn_a, knn_b)
  if metric == "lcs_knn":
    return divide(jnp.sum(_sequence_dp(knn_a, knn_b, "lcs")), n)
  if metric == "edit_knn":
    return 1.0 - divide(jnp.sum(_sequence_dp(knn_a, knn_b, "edit")), n * k)
  raise ValueError(f"metric must be one of {', '.join(KNN_METRICS)}; got {metric!r}")


@jax.jit
def _overlap(knn_a, knn_b):
  """|N_A(i) intersect N_B(i)| for each i (index lists hold no duplicates)."""
  return jnp.sum(knn_a[:, :, None] == knn_b[:, None, :], axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def mutual_knn_core(feats_a, feats_b, k: int = 10, block_size: int = 1024):
  """Mutual k-NN alignment as a pure JAX function (see ``mutual_knn``).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: static int in [1, N - 1], neighbours per sample (self excluded).
    block_size: static int >= 1, rows per block of the neighbour search (memory
      O(block_size N)).

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``) in [0, 1].
  """
  a, b = _core_pair(feats_a, feats_b)
  _check_k(k, a.shape[0])
  return knn_metric_from_indices(knn_indices(a, k, block_size), knn_indices(b, k, block_size),
                                 "mutual_knn")


def mutual_knn(feats_a, feats_b, k: int = 10, block_size: int = 1024) -> float:
  """Mutual k-NN alignment: mean over samples of |N_A(i) intersect N_B(i)| / k, self excluded.

  Feature sets whose rows are all identical have no nearest neighbours (every similarity ties):
  a ValueError here (the core breaks the ties by index, as ``lax.top_k``).

  References: [huh2024] (platonic-rep's ``mutual_knn``).

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: int in [1, N - 1], neighbours per sample (self excluded; the reference's ``topk``).
    block_size: int >= 1, rows per block of the neighbour search (memory O(block_size N)).

  Returns:
    Python float in [0, 1].
  """
  a, b = _knn_pair(feats_a, feats_b, k, "mutual k-NN")
  _check_block(block_size)
  return _host.to_float(mutual_knn_core(a, b, k, block_size))


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def cycle_knn_core(feats_a, feats_b, k: int = 10, block_size: int = 1024):
  """Cycle k-NN as a pure JAX function (see ``cycle_knn``).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: static int in [1, N - 1], neighbours per sample (self excluded).
    block_size: static int >= 1, rows per block of the neighbour search (memory
      O(block_size N)).

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``) in [0, 1].
  """
  a, b = _core_pair(feats_a, feats_b)
  _check_k(k, a.shape[0])
  return knn_metric_from_indices(knn_indices(a, k, block_size), knn_indices(b, k, block_size),
                                 "cycle_knn")


def cycle_knn(feats_a, feats_b, k: int = 10, block_size: int = 1024) -> float:
  """Cycle k-NN: fraction of samples i found among the A-neighbours of i's B-neighbours.

  As the platonic code's ``cycle_knn``: knn_A[knn_B] (N, k, k) contains i for a hit. Rows all
  identical: ValueError, as ``mutual_knn``.

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: int in [1, N - 1], neighbours per sample (self excluded; the reference's ``topk``).
    block_size: int >= 1, rows per block of the neighbour search (memory O(block_size N)).

  Returns:
    Python float in [0, 1].
  """
  a, b = _knn_pair(feats_a, feats_b, k, "cycle k-NN")
  _check_block(block_size)
  return _host.to_float(cycle_knn_core(a, b, k, block_size))


@jax.jit
def _cycle(knn_a, knn_b):
  n = knn_a.shape[0]
  back = knn_a[knn_b]                                    # N x k x k
  hit = jnp.any(back == jnp.arange(n)[:, None, None], axis=(1, 2))
  return divide(jnp.sum(hit), n)


def _sequence_dp(knn_a, knn_b, kind: str):
  """Row-wise dynamic programme over the ordered neighbour lists (N, k) of both spaces:
  ``kind='lcs'`` the length of their longest common subsequence, ``'edit'`` their Levenshtein
  distance (insert / delete / substitute cost 1). Vectorised over rows: O(N k^2), no N x N."""
  n, k = knn_a.shape
  k_b = knn_b.shape[1]
  if kind == "lcs":
    first_row = jnp.zeros((n, k_b + 1), jnp.int32)
  else:
    first_row = jnp.broadcast_to(jnp.arange(k_b + 1, dtype=jnp.int32), (n, k_b + 1))

  def over_a(prev, i):                     # prev: dp row i (over j = 0..k_b), next: row i + 1
    x = knn_a[:, i]
    start = jnp.zeros((n,), jnp.int32) if kind == "lcs" else jnp.full((n,), i + 1, jnp.int32)

    def over_b(left, j):
      match = x == knn_b[:, j]
      diag, up = prev[:, j], prev[:, j + 1]
      if kind == "lcs":
        value = jnp.where(match, diag + 1, jnp.maximum(up, left))
      else:
        value = jnp.minimum(jnp.minimum(up + 1, left + 1), diag + jnp.where(match, 0, 1))
      return value, value

    _, rest = jax.lax.scan(over_b, start, jnp.arange(k_b))
    return jnp.concatenate([start[:, None], rest.T], axis=1), None

  last, _ = jax.lax.scan(over_a, first_row, jnp.arange(k))
  return last[:, -1]


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def lcs_knn_core(feats_a, feats_b, k: int = 10, block_size: int = 1024):
  """LCS k-NN as a pure JAX function (see ``lcs_knn``).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: static int in [1, N - 1], neighbours per sample (self excluded).
    block_size: static int >= 1, rows per block of the neighbour search (memory
      O(block_size N)).

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``) in [0, k].
  """
  a, b = _core_pair(feats_a, feats_b)
  _check_k(k, a.shape[0])
  return knn_metric_from_indices(knn_indices(a, k, block_size), knn_indices(b, k, block_size),
                                 "lcs_knn")


def lcs_knn(feats_a, feats_b, k: int = 10, block_size: int = 1024) -> float:
  """LCS k-NN (platonic-rep's ``lcs_knn``): mean over samples of the length of the longest common
  subsequence of i's k nearest neighbours in A and in B, each list ordered by similarity (most
  similar first, self excluded).

  As the reference, the value is a length in [0, k] (k for identical neighbour orders), not
  divided by k. Rows all identical: ValueError, as ``mutual_knn``.

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: int in [1, N - 1], neighbours per sample (self excluded; the reference's ``topk``).
    block_size: int >= 1, rows per block of the neighbour search (memory O(block_size N)).

  Returns:
    Python float in [0, k].
  """
  a, b = _knn_pair(feats_a, feats_b, k, "LCS k-NN")
  _check_block(block_size)
  return _host.to_float(lcs_knn_core(a, b, k, block_size))


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def edit_knn_core(feats_a, feats_b, k: int = 10, block_size: int = 1024):
  """Edit-distance k-NN as a pure JAX function (see ``edit_knn``).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: static int in [1, N - 1], neighbours per sample (self excluded).
    block_size: static int >= 1, rows per block of the neighbour search (memory
      O(block_size N)).

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``) in [0, 1].
  """
  a, b = _core_pair(feats_a, feats_b)
  _check_k(k, a.shape[0])
  return knn_metric_from_indices(knn_indices(a, k, block_size), knn_indices(b, k, block_size),
                                 "edit_knn")


def edit_knn(feats_a, feats_b, k: int = 10, block_size: int = 1024) -> float:
  """Edit-distance k-NN (platonic-rep's ``edit_distance_knn``): 1 - mean_i lev(N_A(i), N_B(i)) / k
  with lev the Levenshtein distance (``torchaudio.functional.edit_distance``: insert, delete and
  substitute cost 1) between i's ordered k-NN lists. 1 for identical orders; 0 when no neighbour
  is shared. Rows all identical: ValueError, as ``mutual_knn``.

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: int in [1, N - 1], neighbours per sample (self excluded; the reference's ``topk``).
    block_size: int >= 1, rows per block of the neighbour search (memory O(block_size N)).

  Returns:
    Python float in [0, 1].
  """
  a, b = _knn_pair(feats_a, feats_b, k, "edit-distance k-NN")
  _check_block(block_size)
  return _host.to_float(edit_knn_core(a, b, k, block_size))


def _knn_pair(feats_a, feats_b, k, what, low: int = 1):
  """_pair + k in [low, N - 1] + neither set with all rows identical (neighbours all ties)."""
  a, b = _pair(feats_a, feats_b)
  _check_k(k, a.shape[0])
  if low > 1:
    _host.check_int(k, "k", low, None, f"{what} needs k >= {low}")
  for name, x in (("feats_a", a), ("feats_b", b)):
    if np.all(x == x[:1]):
      raise ValueError(f"{name} has every row identical: nearest neighbours are all ties, so "
                       f"{what} is undefined; check that the features were extracted correctly")
  return a, b


def _check_k(k, n):
  if n < 2:
    raise ValueError(f"k-NN metrics need at least 2 samples; got {n}")
  _host.check_int(k, "k", 1, n - 1, f"k must be in [1, N-1] = [1, {n - 1}]")


def _check_block(block_size):
  _host.check_int(block_size, "block_size", 1)


# ---- HSIC / CKA ----------------------------------------------------------------------------------

def _hsic_from_sums(kl_sum, k_rows, l_rows, k_total, l_total, n, unbiased: bool):
  """HSIC from sum_ij K_ij L_ij, row sums and totals of K and L (diagonals already zeroed for
  the unbiased estimator).

  biased (Gretton et al. 2005): tr(K H L H) / (n - 1)^2
  unbiased (Song et al. 2012): [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))
  """
  if isinstance(n, int):
    n = float(n)  # n (n - 3) overflows int32 from n ~ 46k
  if unbiased:
    value = kl_sum + k_total * l_total / ((n - 1) * (n - 2)) - 2.0 * jnp.dot(k_rows, l_rows) / (n - 2)
    return value / (n * (n - 3))
  centred = kl_sum - 2.0 * jnp.dot(k_rows, l_rows) / n + k_total * l_total / n ** 2
  return centred / (n - 1) ** 2


def _linear_sums(x, y, unbiased):
  """The sums _hsic_from_sums needs for K = X X', L = Y Y' in O(n d^2), no n x n matrix."""
  kl_sum = jnp.sum(jnp.square(jnp.dot(x.T, y, precision=_HIGHEST)))
  x_sum, y_sum = x.sum(axis=0), y.sum(axis=0)
  k_rows = jnp.dot(x, x_sum, precision=_HIGHEST)
  l_rows = jnp.dot(y, y_sum, precision=_HIGHEST)
  k_total, l_total = jnp.dot(x_sum, x_sum), jnp.dot(y_sum, y_sum)
  if unbiased:
    k_diag = jnp.sum(x * x, axis=1)
    l_diag = jnp.sum(y * y, axis=1)
    kl_sum = kl_sum - jnp.dot(k_diag, l_diag)
    k_rows, l_rows = k_rows - k_diag, l_rows - l_diag
    k_total, l_total = k_total - k_diag.sum(), l_total - l_diag.sum()
  return kl_sum, k_rows, l_rows, k_total, l_total


@functools.partial(jax.jit, static_argnames=("unbiased",))
def _linear_cka(x, y, unbiased: bool):
  x, y = _unit_scale(x), _unit_scale(y)
  n = x.shape[0]
  sums_xy = _linear_sums(x, y, unbiased)
  sums_xx = _linear_sums(x, x, unbiased)
  sums_yy = _linear_sums(y, y, unbiased)
  hxy = _hsic_from_sums(*sums_xy, n, unbiased)
  hxx = _hsic_from_sums(*sums_xx, n, unbiased)
  hyy = _hsic_from_sums(*sums_yy, n, unbiased)
  return _cka_ratio(hxy, hxx, hyy)


def _rbf_block(block, feats, sq_block, sq_all, gamma):
  d2 = sq_block[:, None] + sq_all[None, :] - 2.0 * jnp.dot(block, feats.T, precision=_HIGHEST)
  return jnp.exp(-gamma * jnp.maximum(d2, 0.0))


@functools.partial(jax.jit, static_argnames=("unbiased", "block_size"))
def _rbf_sums(x, y, gamma_x, gamma_y, unbiased: bool, block_size: int):
  """One pass over row blocks accumulating sum K.L, sum K.K, sum L.L and row sums."""
  n = x.shape[0]
  pad = (-n) % block_size
  sq_x, sq_y = jnp.sum(x * x, axis=1), jnp.sum(y * y, axis=1)
  blocks = lambda a: jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1)).reshape(
      -1, block_size, *a.shape[1:])
  starts = jnp.arange((n + pad) // block_size) * block_size

  def body(carry, args):
    bx, by, bsx, bsy, start = args
    index = start + jnp.arange(block_size)
    valid = (index < n)[:, None]
    keep = valid & ((index[:, None] != jnp.arange(n)[None, :]) | (not unbiased))
    k = jnp.where(keep, _rbf_block(bx, x, bsx, sq_x, gamma_x), 0.0)
    l = jnp.where(keep, _rbf_block(by, y, bsy, sq_y, gamma_y), 0.0)
    kl, kk, ll = carry
    return (kl + jnp.sum(k * l), kk + jnp.sum(k * k), ll + jnp.sum(l * l)), (k.sum(1), l.sum(1))

  (kl, kk, ll), (k_rows, l_rows) = jax.lax.scan(
      body, (0.0, 0.0, 0.0), (blocks(x), blocks(y), blocks(sq_x), blocks(sq_y), starts))
  k_rows, l_rows = k_rows.reshape(-1)[:n], l_rows.reshape(-1)[:n]
  return kl, kk, ll, k_rows, l_rows


def _median_sq_distance(feats, max_points: int = 2048, seed: int = 0):
  """Median squared pairwise distance (on a random subset of at most max_points rows). The subset
  depends only on the static N, so it is drawn at trace time: same rows eagerly and under jit."""
  n = feats.shape[0]
  if n > max_points:
    feats = feats[np.random.default_rng(seed).choice(n, max_points, replace=False)]
  sq = jnp.sum(feats * feats, axis=1)
  d2 = sq[:, None] + sq[None, :] - 2 * jnp.dot(feats, feats.T, precision=_HIGHEST)
  upper = d2[np.triu_indices(feats.shape[0], 1)]
  return jnp.median(jnp.maximum(upper, 0.0))


@functools.partial(jax.jit, static_argnames=("kernel", "unbiased", "block_size"))
def cka_terms(feats_a, feats_b, kernel: str = "linear", unbiased: bool = False, sigma=1.0,
              block_size: int = 1024):
  """(HSIC(K, L), HSIC(K, K), HSIC(L, L)) of ``cka`` as JAX scalars (pure; jit / vmap / grad).

  Of the features divided by their largest absolute value (CKA does not depend on it; the HSIC
  terms then neither overflow nor underflow float32).

  References: [kornblith2019] (CKA, RBF bandwidth), [song2012] (unbiased HSIC).

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    kernel: static str, ``'linear'`` or ``'rbf'``.
    unbiased: static bool, Song et al.'s unbiased HSIC (needs N >= 4) instead of the biased one.
    sigma: float (may be traced), the RBF bandwidth multiplier (unused for ``'linear'``).
    block_size: static int >= 1, rows per block of the RBF kernel sums.

  Returns:
    (hsic_ab, hsic_aa, hsic_bb): a tuple of three 0-d float32 arrays.
  """
  a, b = _core_pair(feats_a, feats_b)
  a, b = _unit_scale(a), _unit_scale(b)   # CKA is scale-invariant (linear and median-RBF)
  n = a.shape[0]
  if unbiased and n < 4:
    raise ValueError(f"unbiased HSIC needs at least 4 samples; got {n}")
  if kernel == "linear":
    hsic = [_hsic_from_sums(*_linear_sums(x, y, unbiased), n, unbiased)
            for x, y in ((a, b), (a, a), (b, b))]
    return tuple(hsic)
  if kernel != "rbf":
    raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
  gamma_a = 1.0 / (2.0 * sigma ** 2 * jnp.maximum(_median_sq_distance(a), 1e-12))
  gamma_b = 1.0 / (2.0 * sigma ** 2 * jnp.maximum(_median_sq_distance(b), 1e-12))
  kl, kk, ll, k_rows, l_rows = _rbf_sums(a, b, gamma_a, gamma_b, unbiased, block_size)
  k_total, l_total = k_rows.sum(), l_rows.sum()
  hxy = _hsic_from_sums(kl, k_rows, l_rows, k_total, l_total, n, unbiased)
  hxx = _hsic_from_sums(kk, k_rows, k_rows, k_total, k_total, n, unbiased)
  hyy = _hsic_from_sums(ll, l_rows, l_rows, l_total, l_total, n, unbiased)
  return hxy, hxx, hyy


def cka_core(feats_a, feats_b, kernel: str = "linear", unbiased: bool = False, sigma=1.0,
             block_size: int = 1024):
  """CKA as a pure JAX function (see ``cka``); NaN where CKA is undefined.

  References: [kornblith2019], [song2012].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    kernel: static str, ``'linear'`` or ``'rbf'``.
    unbiased: static bool, use the unbiased HSIC (needs N >= 4).
    sigma: float (may be traced), the RBF bandwidth multiplier (unused for ``'linear'``).
    block_size: static int >= 1, rows per block of the RBF kernel sums.

  Returns:
    0-d float32 array, NaN where HSIC(K, K) or HSIC(L, L) is not positive.
  """
  hxy, hxx, hyy = cka_terms(feats_a, feats_b, kernel, unbiased, sigma, block_size)
  return _cka_ratio(hxy, hxx, hyy)


def unbiased_cka_core(feats_a, feats_b, kernel: str = "linear", sigma=1.0, block_size: int = 1024):
  """Unbiased CKA as a pure JAX function (see ``unbiased_cka``).

  References: [kornblith2019], [song2012], [tjandrasuwita2025].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32), N >= 4.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    kernel: static str, ``'linear'`` or ``'rbf'``.
    sigma: float (may be traced), the RBF bandwidth multiplier (unused for ``'linear'``).
    block_size: static int >= 1, rows per block of the RBF kernel sums.

  Returns:
    0-d float32 array, NaN where CKA is undefined.
  """
  return cka_core(feats_a, feats_b, kernel, True, sigma, block_size)


def cka(feats_a, feats_b, kernel: str = "linear", unbiased: bool = False, sigma: float = 1.0,
        block_size: int = 1024) -> float:
  """Centered Kernel Alignment: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019).

  ``kernel='linear'``: K = A A'; computed from d x d products in O(n d^2) for both estimators.
  ``kernel='rbf'``: K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2 m)) with m the median squared
  pairwise distance (estimated on <= 2048 rows), Kornblith's bandwidth rule; computed in row
  blocks, O(n^2 d) time and O(block_size n) memory.
  ``unbiased=True`` uses Song et al.'s unbiased HSIC (diagonals zeroed), O(n^2) instead of the
  reference's O(n^3).
  CKA is undefined when HSIC(K, K) or HSIC(L, L) is not positive: constant features, or (RBF) a
  ``sigma`` so small that every off-diagonal kernel entry underflows to 0 (the unbiased estimator
  zeroes the diagonal, leaving nothing); the reference returns NaN/inf there, this raises.

  References: [kornblith2019], [song2012]; code: [huh2024].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    kernel: ``'linear'`` or ``'rbf'``.
    unbiased: bool, use the unbiased HSIC estimator (needs N >= 4).
    sigma: positive finite float, the RBF bandwidth multiplier (1.0: Kornblith's rule).
    block_size: int >= 1, rows per block of the RBF kernel sums.

  Returns:
    Python float (1 for identical features).
  """
  if kernel not in ("linear", "rbf"):
    raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
  a, b = _pair(feats_a, feats_b)
  _check_block(block_size)
  if unbiased and a.shape[0] < 4:
    raise ValueError(f"unbiased HSIC needs at least 4 samples; got {a.shape[0]}")
  if kernel == "rbf" and not (np.isfinite(sigma) and sigma > 0):
    raise ValueError(f"sigma must be a positive finite bandwidth multiplier; got {sigma}")
  for name, x in (("feats_a", a), ("feats_b", b)):
    if np.all(x == x[:1]):
      raise ValueError(f"{name} is constant (every row identical): CKA is undefined; check that "
                       f"the features were extracted correctly")
  terms = cka_terms(a, b, kernel, unbiased, float(sigma), block_size)
  hxy, hxx, hyy = (float(v) for v in terms)
  for name, value in (("HSIC(K, K) of feats_a", hxx), ("HSIC(L, L) of feats_b", hyy)):
    if not value > 0:
      hint = (f"with kernel='rbf' and sigma={sigma} the off-diagonal kernel entries underflow to "
              f"0; use a larger sigma (1.0 is Kornblith's rule)" if kernel == "rbf" else
              "the features carry (almost) no variance")
      raise ValueError(f"CKA is undefined: {name} = {value:.3g} is not positive; {hint}"
                       + ("; the unbiased estimate can also go negative with very few samples"
                          if unbiased else ""))
  return _host.to_float(_cka_ratio(*terms))


def unbiased_cka(feats_a, feats_b, kernel: str = "linear", **kwargs) -> float:
  """CKA with the unbiased HSIC estimator (the emergence paper's alignment measure).

  References: [tjandrasuwita2025], [song2012], [kornblith2019].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample; N >= 4.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    kernel: ``'linear'`` or ``'rbf'``.
    **kwargs: ``sigma`` and ``block_size``, passed on to ``cka``.

  Returns:
    Python float.
  """
  return cka(feats_a, feats_b, kernel=kernel, unbiased=True, **kwargs)


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def cknna_core(feats_a, feats_b, k: int = 10, block_size: int = 1024):
  """CKNNA (unbiased) as a pure JAX function (see ``cknna``).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: static int in [2, N - 1], neighbours per sample (self excluded).
    block_size: static int >= 1, rows per block of the neighbour search.

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``).
  """
  a, b = _core_pair(feats_a, feats_b)
  if k < 2:
    raise ValueError(f"CKNNA needs k >= 2; got {k}")
  _check_k(k, a.shape[0])
  return cknna_from_indices(a, b, knn_indices(a, k, block_size), knn_indices(b, k, block_size))


@jax.jit
def cknna_from_indices(feats_a, feats_b, knn_a, knn_b):
  """CKNNA from the features and their precomputed ``knn_indices`` (what ``cknna_core`` does).

  References: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    knn_a: (N, k) int array, ``knn_indices(feats_a, k)``.
    knn_b: (N, k) int array, ``knn_indices(feats_b, k)``.

  Returns:
    0-d float array (float32; float64 under ``jax_enable_x64``).
  """
  a, b = _core_pair(feats_a, feats_b)
  n = a.shape[0]
  # Computed on features divided by their largest row norm c (HSIC scales by c^4), with the
  # reference's 1e-6 in the denominator scaled to match: the reference's value, without its
  # float32 overflow (features ~1e8) or underflow (~1e-8) of the HSIC sums.
  scale_a, scale_b = _row_scale(a), _row_scale(b)
  a, b = a / scale_a, b / scale_b
  ab = _masked_hsic(a, b, knn_a, knn_b, n)
  aa = _masked_hsic(a, a, knn_a, knn_a, n)
  bb = _masked_hsic(b, b, knn_b, knn_b, n)
  eps = jnp.exp(jnp.log(1e-6) - 2.0 * jnp.log(scale_a) - 2.0 * jnp.log(scale_b))
  ok = (aa > 0) & (bb > 0)
  return ab / (jnp.sqrt(jnp.where(ok, aa, 0.0)) * jnp.sqrt(jnp.where(ok, bb, 0.0)) + eps)


# ---- CKNNA ---------------------------------------------------------------------------------------

def cknna(feats_a, feats_b, k: int = 10, unbiased: bool = True, block_size: int = 1024) -> float:
  """CKNNA (Huh et al. 2024): CKA whose kernels keep only mutual k-NN pairs.

  With M_ij = 1 when j is among the k nearest neighbours of i in both spaces (self excluded when
  unbiased), the reference computes HSIC(M * K, M * L) with K = A A', L = B B', using the
  elementwise product of the first with the *transpose* of the second (M is not symmetric) and
  its O(n^3) unbiased formula; similarity = HSIC_AB / sqrt(HSIC_AA HSIC_BB), where HSIC_AA
  masks with A's own neighbourhoods. Here every term is a sum over the <= k kept entries per
  row, O(n k^2) after the neighbour search.

  References: [huh2024] (platonic-rep's ``cknna``).

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample; N >= 4.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    k: int in [2, N - 1], neighbours per sample (self excluded; the reference's ``topk``).
    unbiased: must be True (the reference's default; False raises NotImplementedError).
    block_size: int >= 1, rows per block of the neighbour search (memory O(block_size N)).

  Returns:
    Python float.
  """
  if not unbiased:
    raise NotImplementedError("only the unbiased CKNNA (the reference default) is implemented")
  a, b = _knn_pair(feats_a, feats_b, k, "CKNNA", low=2)
  _check_block(block_size)
  if a.shape[0] < 4:
    raise ValueError(f"CKNNA's unbiased HSIC needs at least 4 samples; got {a.shape[0]}")
  return _host.to_float(cknna_core(a, b, k, block_size))


def _neighbour_dots(x_NxD, j_NxK, block_size: int = 4096):
  """x_i . x_{j[i, p]} for every (i, p), in row blocks: gathering x[j] at once is N x K x D floats
  (6 GiB at N = 100k, K = 10, D = 768)."""
  n = x_NxD.shape[0]
  pad = (-n) % block_size
  rows = jnp.pad(x_NxD, ((0, pad), (0, 0))).reshape(-1, block_size, x_NxD.shape[1])
  idx = jnp.pad(j_NxK, ((0, pad), (0, 0))).reshape(-1, block_size, j_NxK.shape[1])

  def one_block(args):
    block, neighbours = args
    return jnp.einsum("nd,nkd->nk", block, x_NxD[neighbours], precision=_HIGHEST)

  return jax.lax.map(one_block, (rows, idx)).reshape(-1, j_NxK.shape[1])[:n]


@functools.partial(jax.jit, static_argnames="n")
def _masked_hsic(a, b, knn_a, knn_b, n: int):
  # Kept entries: (i, j = knn_a[i, p]) where j is also in knn_b[i].
  kept = jnp.any(knn_a[:, :, None] == knn_b[:, None, :], axis=2)          # N x k
  j = knn_a
  i = jnp.broadcast_to(jnp.arange(n)[:, None], j.shape)
  k_val = jnp.where(kept, _neighbour_dots(a, j), 0.0)
  l_val = jnp.where(kept, _neighbour_dots(b, j), 0.0)
  # sum(K~ * L~^T) = sum_ij K~_ij L~_ji: needs L~ at (j, i), i.e. i kept in row j.
  kept_t = jnp.any((knn_a[j] == i[:, :, None]), axis=2) & jnp.any((knn_b[j] == i[:, :, None]), axis=2)
  l_t = jnp.where(kept & kept_t, l_val, 0.0)  # L symmetric: L_ji = L_ij
  trace_term = jnp.sum(k_val * l_t)
  k_total, l_total = k_val.sum(), l_val.sum()
  k_col = jnp.zeros(n).at[j.reshape(-1)].add(k_val.reshape(-1))          # 1' K~
  l_row = l_val.sum(axis=1)                                              # L~ 1
  cross = jnp.dot(k_col, l_row)                                          # 1' K~ L~ 1
  n = float(n)  # n (n - 3) overflows int32 from n ~ 46k
  value = trace_term + k_total * l_total / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)
  return value / (n * (n - 3))


# ---- SVCCA ---------------------------------------------------------------------------------------

def svcca(feats_a, feats_b, cca_dim: int = 10) -> float:
  """SVCCA (Raghu et al. 2017): mean canonical correlation between the top ``cca_dim`` SVD
  directions of each (standardised) feature set.

  As the platonic code, features are centred and scaled per dimension and reduced to their top
  ``cca_dim`` left singular vectors; we then take the *exact* canonical correlations (singular
  values of Q_A' Q_B) where the reference fits scikit-learn's iterative CCA. Most of the
  difference to the reference's numbers comes from its randomised ``torch.svd_lowrank``: with an
  exact SVD in the reference the two agree to ~1e-5. As the reference, each dimension is divided
  by its std + 1e-8, so features whose scale is near 1e-8 are distorted by that 1e-8; features
  with max |x| outside [1e-10, 1e10] are first divided by max |x| (their variances would over- or
  underflow float32).

  References: [raghu2017]; code: [huh2024].

  Args:
    feats_a: (N, D_a) real array (NumPy or JAX; bfloat16 / float16 widened to float32),
      without NaN/inf, one row per sample.
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    cca_dim: int in [1, min(D_a, D_b, N - 1)], the number of SVD directions kept per set.

  Returns:
    Python float in [0, 1]: the mean of the ``cca_dim`` canonical correlations.
  """
  a, b = _pair(feats_a, feats_b)
  limit = min(a.shape[1], b.shape[1], a.shape[0] - 1)
  _host.check_int(cca_dim, "cca_dim", 1, max(limit, 1),
                  f"cca_dim counts SVD directions: at least 1 and at most min(D_a, D_b, N - 1) = "
                  f"{limit}")
  if limit < 1:
    raise ValueError(f"SVCCA needs at least 2 samples; got {a.shape[0]}")
  for name, x in (("feats_a", a), ("feats_b", b)):
    if np.all(x == x[:1]):
      raise ValueError(f"{name} is constant (every row identical): SVCCA is undefined")
  return _host.to_float(svcca_core(a, b, cca_dim))


@functools.partial(jax.jit, static_argnames="cca_dim")
def svcca_core(feats_a, feats_b, cca_dim: int = 10):
  """SVCCA as a pure JAX function (see ``svcca``).

  References: [raghu2017]; code: [huh2024].

  Args:
    feats_a: (N, D_a) real array, one row per sample (cast to float32).
    feats_b: (N, D_b) real array, row i the same sample as row i of ``feats_a``.
    cca_dim: static int in [1, min(D_a, D_b, N)], the number of SVD directions kept per set.

  Returns:
    0-d float32 array in [0, 1].
  """
  a, b = _core_pair(feats_a, feats_b)
  _host.check_int(cca_dim, "cca_dim", 1, min(a.shape[1], b.shape[1], a.shape[0]))
  def top_directions(x):
    x = _safe_scale(x)
    x = x - x.mean(axis=0)
    x = x / (x.std(axis=0) + 1e-8)
    # top right singular vectors from the d x d Gram matrix: O(n d^2), no n x n
    _, vectors = jnp.linalg.eigh(jnp.dot(x.T, x, precision=_HIGHEST))
    projected = jnp.dot(x, vectors[:, ::-1][:, :cca_dim], precision=_HIGHEST)
    projected = projected - projected.mean(axis=0)
    q, _ = jnp.linalg.qr(projected)
    return q

  correlations = jnp.linalg.svd(jnp.dot(top_directions(a).T, top_directions(b), precision=_HIGHEST),
                                compute_uv=False)
  return jnp.mean(jnp.clip(correlations, 0.0, 1.0))


# ---- layer pairs -----------------------------------------------------------------------------------

def max_over_layer_pairs(layers_a: Sequence, layers_b: Sequence,
                         metric: Callable[..., float] = unbiased_cka, **kwargs):
  """(max alignment, (i, j) of the best pair, full L_A x L_B matrix) over all layer pairs.

  As platonic-rep's ``compute_score`` (the best score over layer pairs) [huh2024], with three
  differences: the features go to ``metric`` as given (the reference L2-normalises each layer
  first; apply ``l2_normalize``), NaN entries are skipped, and a best score below 0 is returned
  as is (the reference starts its search from 0).

  Args:
    layers_a: sequence of L_A feature arrays, each (N, D_i), one per layer of model A.
    layers_b: sequence of L_B feature arrays, each (N, D_j), one per layer of model B.
    metric: callable ``metric(feats_a, feats_b, **kwargs) -> float`` (default ``unbiased_cka``).
    **kwargs: passed on to ``metric``.

  Returns:
    (best, (i, j), matrix): best is a Python float, (i, j) a tuple of Python ints (the layer
    indices of the best pair), matrix an (L_A, L_B) float64 NumPy array of all the scores.
  """
  if not layers_a or not layers_b:
    raise ValueError("need at least one layer on each side")
  matrix = np.array([[metric(la, lb, **kwargs) for lb in layers_b] for la in layers_a], float)
  if np.all(np.isnan(matrix)):
    raise ValueError(f"the metric is NaN for every one of the {matrix.size} layer pairs; check the "
                     f"features (constant layers?)")
  best = np.unravel_index(np.nanargmax(matrix), matrix.shape)
  return float(matrix[best]), (int(best[0]), int(best[1])), matrix
