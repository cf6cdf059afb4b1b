"""DecAlign loss terms as pure, jittable functions ([qian2026], DecAlign, ICLR 2026; docs/references.md).

Each term works on its own so that ablations can switch it off:

* :func:`decoupling_loss` -- squared cosine between modality-unique and modality-common features.
* :func:`fit_diagonal_gmm` -- a jittable, differentiable diagonal-covariance GMM EM
  (ott-jax's GMM fitting is a Python loop and cannot be jitted).
* :func:`multimarginal_prototype_ot` -- entropic multi-marginal OT between the GMM prototypes of
  all modalities with ``ott.experimental.mmsinkhorn``. Each prototype is the point
  ``concat(mu, sigma)``; with the squared Euclidean cost between points this is exactly the
  squared 2-Wasserstein distance between diagonal Gaussians, and the multi-marginal cost of a
  tuple (i, j, k, ...) is the sum of its pairwise costs.
* :func:`sample_to_prototype_loss` -- each sample is pulled towards the prototypes of the other
  modalities that the OT plan matches to its own (soft) prototype.
* :func:`heterogeneity_loss` -- the two above together.
* :func:`moment_loss`, :func:`mmd_loss`, :func:`homogeneity_loss` -- mean / covariance /
  skewness matching and biased Gaussian-kernel MMD^2 between every pair of modalities.
* :func:`task_loss` -- L1 for regression (as MMSA trains sentiment regression), cross-entropy for
  classification.

Batch statistics (GMM, moments, MMD) are taken over the *global* batch: with ``axis_name`` set,
features are all-gathered across the data axis first, so the result does not depend on the number
of devices (the gradient through ``all_gather`` is a reduce-scatter, and the engine's ``pmean``
of the per-device gradients then equals the single-device gradient).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax
from ott.experimental import mmsinkhorn


def gather(x, axis_name=None):
  """The global batch of per-device rows `x` (identity without a data axis).

  Args:
    x: (B_local, ...) array, this device's rows (any dtype).
    axis_name: name of the data axis to all-gather over, or None (single device).

  Returns:
    (B_global, ...) array of `x`'s dtype, the rows of every device in device order
    (B_global = B_local x number of devices); `x` itself when `axis_name` is None.
  """
  if axis_name is None:
    return x
  return lax.all_gather(x, axis_name, axis=0, tiled=True)


# ---- decoupling -------------------------------------------------------------------------------

def decoupling_loss(unique: Sequence[jnp.ndarray], common: Sequence[jnp.ndarray],
                    eps: float = 1e-8) -> jnp.ndarray:
  """Mean over modalities and samples of cos^2(unique_m, common_m) ([qian2026]'s decoupling term).

  Rows are feature vectors; the norms' product is floored at `eps`.

  Args:
    unique: sequence of M (B, d) float arrays, the modality-unique features.
    common: sequence of M (B, d) float arrays, the modality-common features (same shapes).
    eps: floor of the norms' product (a zero row gives cosine 0).

  Returns:
    scalar float array (the features' dtype) in [0, 1].
  """
  terms = []
  for u, c in zip(unique, common):
    cos = jnp.sum(u * c, -1) / jnp.maximum(jnp.linalg.norm(u, axis=-1) * jnp.linalg.norm(c, axis=-1),
                                           eps)
    terms.append(jnp.mean(jnp.square(cos)))
  return jnp.mean(jnp.stack(terms))


def sequence_decoupling_loss(unique_seqs: Sequence[jnp.ndarray], common_seqs: Sequence[jnp.ndarray],
                             masks: Sequence[jnp.ndarray] | None = None, eps: float = 1e-8) -> jnp.ndarray:
  """The official code's decoupling (``loss.decouple_on='sequence'``) ([qian2026]).

  cos^2 between the flattened (B, L * d) unique and common sequences of each modality, averaged
  over samples and modalities. Padded steps (mask 0) are zeroed first, so they add nothing to
  either vector.

  Args:
    unique_seqs: sequence of M (B, L_m, d) float arrays, the unique feature sequences.
    common_seqs: sequence of M (B, L_m, d) float arrays, the common ones (same shapes).
    masks: None (every step real) or a sequence of M (B, L_m) arrays, 1 = real step, 0 = padding
      (bool or numeric; cast to the features' dtype).
    eps: floor of the norms' product.

  Returns:
    scalar float array (the features' dtype) in [0, 1].
  """
  flat_u, flat_c = [], []
  for m, (u, c) in enumerate(zip(unique_seqs, common_seqs)):
    if masks is not None:
      keep = masks[m].astype(u.dtype)[..., None]
      u, c = u * keep, c * keep
    flat_u.append(u.reshape(u.shape[0], -1))
    flat_c.append(c.reshape(c.shape[0], -1))
  return decoupling_loss(flat_u, flat_c, eps)


def l2_normalize(x, eps: float = 1e-8):
  """Rows scaled to unit L2 norm (the scale-invariant option of the alignment terms).

  Args:
    x: (..., d) float array; the last axis is normalised.
    eps: floor of the norm (a zero row stays zero).

  Returns:
    float array of `x`'s shape and dtype.
  """
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


# ---- diagonal GMM -----------------------------------------------------------------------------

class GMM(NamedTuple):
  weights: jnp.ndarray          # (K,)
  means: jnp.ndarray            # (K, D)
  variances: jnp.ndarray        # (K, D)
  responsibilities: jnp.ndarray  # (N, K)


def farthest_point_indices(x_NxD, k: int):
  """Greedy k-center seeding (farthest-point traversal).

  Start at the point farthest from the mean, then repeatedly take the point farthest from those
  chosen. Deterministic; separates well-separated clusters. No gradient flows through it.

  Args:
    x_NxD: (N, D) float array of points.
    k: static Python int in [1, N], the number of seeds.

  Returns:
    (k,) int32 array of row indices into `x_NxD`.
  """
  x = lax.stop_gradient(x_NxD)
  first = jnp.argmax(jnp.sum(jnp.square(x - x.mean(0)), axis=1)).astype(jnp.int32)  # int64 under x64
  dist = jnp.sum(jnp.square(x - x[first]), axis=1)
  idx = jnp.zeros((k,), jnp.int32).at[0].set(first)

  def body(i, carry):
    idx, dist = carry
    nxt = jnp.argmax(dist).astype(jnp.int32)
    return idx.at[i].set(nxt), jnp.minimum(dist, jnp.sum(jnp.square(x - x[nxt]), axis=1))

  idx, _ = lax.fori_loop(1, k, body, (idx, dist))
  return idx


def _log_gaussian(x_NxD, means_KxD, variances_KxD):
  diff = x_NxD[:, None, :] - means_KxD[None]
  return -0.5 * jnp.sum(jnp.square(diff) / variances_KxD[None] + jnp.log(2 * jnp.pi * variances_KxD[None]),
                        axis=-1)


def index_seed_indices(n: int, k: int):
  """The official code's GMM seeds ([qian2026]): rows ``round(linspace(0, n - 1, k))``.

  Rounding is half to even, as torch.round; the same rows are used in every modality of a batch.

  Args:
    n: Python int, the number of rows.
    k: Python int, the number of seeds.

  Returns:
    (k,) int32 array of row indices in [0, n).
  """
  return jnp.round(jnp.linspace(0.0, n - 1.0, k)).astype(jnp.int32)


GMM_INITS = ("farthest", "index")


def fit_diagonal_gmm(x_NxD, num_components: int, num_steps: int = 5, var_floor: float = 1e-4,
                     weights_N=None, init: str = "farthest") -> GMM:
  """Diagonal-covariance GMM by `num_steps` EM iterations, differentiable w.r.t. `x_NxD`.

  Means start at farthest-point seeds (``init='farthest'``, our default: separates well-separated
  clusters) or at the rows ``round(linspace(0, N - 1, K))`` (``init='index'``, the official code of
  [qian2026]: the same example indices in every modality), variances at the data variance, weights
  uniform. `var_floor` is added to every variance (keeps the E-step finite on collapsed clusters).
  `weights_N` (optional, >= 0) weights the samples, e.g. 0 for padding rows. The EM loop is a
  ``lax.fori_loop``, so the function is jittable (ott-jax's GMM fitting is not).

  Args:
    x_NxD: (N, D) float array of samples.
    num_components: static Python int K in [1, N].
    num_steps: static Python int, the number of EM iterations.
    var_floor: float added to every variance.
    weights_N: None (all 1) or (N,) float array of non-negative sample weights.
    init: 'farthest' or 'index', the mean seeding.

  Returns:
    ``GMM(weights, means, variances, responsibilities)`` in `x_NxD`'s dtype: weights (K,) (the
    mixture weights, summing to ~1), means (K, D), variances (K, D) (floor included) and
    responsibilities (N, K) of the final parameters (rows sum to 1; not multiplied by
    `weights_N`).

  Raises:
    ValueError: K > N, or an unknown `init`.
  """
  n, d = x_NxD.shape
  if num_components > n:
    raise ValueError(f"a GMM with {num_components} components needs at least that many samples, "
                     f"got {n}; lower loss.num_prototypes or raise the batch size")
  w = jnp.ones((n,), x_NxD.dtype) if weights_N is None else weights_N
  total = jnp.maximum(w.sum(), 1e-12)
  if init not in GMM_INITS:
    raise ValueError(f"loss.gmm_init={init!r}: use one of {GMM_INITS}")
  seeds = (farthest_point_indices(x_NxD, num_components) if init == "farthest"
           else index_seed_indices(n, num_components))
  means = x_NxD[seeds]
  data_var = jnp.sum(w[:, None] * jnp.square(x_NxD - (w[:, None] * x_NxD).sum(0) / total), 0) / total
  variances = jnp.broadcast_to(data_var + var_floor, (num_components, d))
  mix = jnp.full((num_components,), 1.0 / num_components, x_NxD.dtype)

  def em(_, params):
    mix, means, variances, _ = params
    log_r = jnp.log(jnp.maximum(mix, 1e-12))[None] + _log_gaussian(x_NxD, means, variances)
    resp = jax.nn.softmax(log_r, axis=1) * w[:, None]
    nk = resp.sum(0) + 1e-10
    means = (resp.T @ x_NxD) / nk[:, None]
    variances = (resp.T @ jnp.square(x_NxD)) / nk[:, None] - jnp.square(means)
    variances = jnp.maximum(variances, 0.0) + var_floor
    return nk / total, means, variances, resp

  resp0 = jnp.zeros((n, num_components), x_NxD.dtype)
  mix, means, variances, _ = lax.fori_loop(0, num_steps, em, (mix, means, variances, resp0))
  # responsibilities of the final parameters
  resp = jax.nn.softmax(jnp.log(jnp.maximum(mix, 1e-12))[None]
                        + _log_gaussian(x_NxD, means, variances), axis=1)
  return GMM(mix, means, variances, resp)


# ---- prototype OT ------------------------------------------------------------------------------

def gaussian_w2_squared(means_a, stds_a, means_b, stds_b):
  """Exact squared W2 between diagonal Gaussians: |mu_a - mu_b|^2 + |sigma_a - sigma_b|^2.

  Args:
    means_a: (Ka, D) float array of means.
    stds_a: (Ka, D) float array of standard deviations (not variances).
    means_b: (Kb, D) float array of means.
    stds_b: (Kb, D) float array of standard deviations.

  Returns:
    (Ka, Kb) float array of squared 2-Wasserstein distances, every pair (a_i, b_j).
  """
  def sq(a, b):
    return jnp.sum(jnp.square(a[:, None] - b[None]), -1)
  return sq(means_a, means_b) + sq(stds_a, stds_b)


class PrototypeOT(NamedTuple):
  cost: jnp.ndarray       # <P, C>, the transport cost under the entropic plan
  plan: jnp.ndarray       # (K,) * M tensor, sums to 1
  cost_tensor: jnp.ndarray


COST_REDUCTIONS = ("sum", "mean")


def multimarginal_prototype_ot(gmms: Sequence[GMM], epsilon: float = 0.1, iterations: int = 50,
                               inner_iterations: int = 10, cost_reduction: str = "sum") -> PrototypeOT:
  """Entropic multi-marginal OT between the prototypes of M >= 2 modalities (ott-jax MMSinkhorn).

  [qian2026]'s prototype alignment, solved with ott-jax ([cuturi2023]). Marginals are the GMM
  mixture weights; the cost of a tuple of prototypes is the sum of the pairwise squared W2
  distances. ``cost_reduction='sum'`` (our default) sums each W2 term over the D feature
  dimensions; ``'mean'`` averages it over them, as the official code does (its cost is then D
  times smaller at the same weight): the points ``concat(mu, sigma)`` are divided by sqrt(D).
  Exactly `iterations` Sinkhorn iterations are run (rounded up to a multiple of
  `inner_iterations`). The plan (and the marginals) are treated as constant in the gradient
  (Danskin), so the gradient of ``cost`` flows through the prototypes' means and standard
  deviations.

  Args:
    gmms: sequence of M :class:`GMM` fits with the same feature width D (K_m components each).
    epsilon: entropic regularisation of the Sinkhorn solver.
    iterations: the number of Sinkhorn iterations.
    inner_iterations: iterations between convergence checks (the count is rounded up to it).
    cost_reduction: 'sum' or 'mean' over the feature dimensions (see above).

  Returns:
    ``PrototypeOT(cost, plan, cost_tensor)``: cost a scalar float array (<plan, cost_tensor>),
    plan the (K_1, ..., K_M) float transport tensor (sums to 1, gradient stopped) and
    cost_tensor the (K_1, ..., K_M) multi-marginal cost; the GMMs' float dtype.

  Raises:
    ValueError: fewer than two modalities, or an unknown `cost_reduction`.
  """
  if len(gmms) < 2:
    raise ValueError("multi-marginal OT needs at least two modalities")
  if cost_reduction not in COST_REDUCTIONS:
    raise ValueError(f"loss.prototype_cost_reduction={cost_reduction!r}: use one of {COST_REDUCTIONS}")
  scale = 1.0 if cost_reduction == "sum" else 1.0 / jnp.sqrt(float(gmms[0].means.shape[1]))
  points = tuple(scale * jnp.concatenate([g.means, jnp.sqrt(g.variances)], axis=1) for g in gmms)
  marginals = tuple(lax.stop_gradient(g.weights / g.weights.sum()) for g in gmms)
  steps = -(-iterations // inner_iterations) * inner_iterations
  solver = mmsinkhorn.MMSinkhorn(threshold=-1.0, inner_iterations=inner_iterations,
                                 min_iterations=steps, max_iterations=steps)
  out = solver(points, marginals, epsilon=epsilon)
  plan = lax.stop_gradient(out.tensor)
  cost_t = mmsinkhorn.cost_tensor(points, out.cost_fns)
  return PrototypeOT(jnp.sum(plan * cost_t), plan, cost_t)


def pairwise_plan(plan, a: int, b: int):
  """The (K_a, K_b) two-marginal of the multi-marginal plan (rows: modality a).

  Args:
    plan: (K_1, ..., K_M) float array, the multi-marginal transport plan.
    a: Python int, the row modality.
    b: Python int, the column modality (b != a).

  Returns:
    (K_a, K_b) float array of `plan`'s dtype: the plan summed over every other modality.
  """
  axes = tuple(i for i in range(plan.ndim) if i not in (a, b))
  two = jnp.sum(plan, axis=axes)      # axes in increasing order
  return two if a < b else two.T


def sample_to_prototype_loss(features: Sequence[jnp.ndarray], gmms: Sequence[GMM], plan) -> jnp.ndarray:
  """Pull each sample towards its soft prototype carried across by the OT plan ([qian2026]).

  Mean squared distance (per dimension) between each sample of modality a and its target in
  modality b: ``sum_k r_ik sum_j T_ab[k, j] / T_ab[k].sum() mu_b[j]``. Averaged over ordered
  modality pairs (a != b).

  Args:
    features: sequence of M (N, D) float arrays, the features the GMMs were fitted on.
    gmms: sequence of M :class:`GMM` fits of `features` (responsibilities (N, K_m), means
      (K_m, D)).
    plan: (K_1, ..., K_M) float array, the multi-marginal plan (``PrototypeOT.plan``).

  Returns:
    scalar float array (the features' dtype).
  """
  terms = []
  for a, b in itertools.permutations(range(len(features)), 2):
    t = pairwise_plan(plan, a, b)
    t = t / jnp.maximum(t.sum(1, keepdims=True), 1e-12)
    target = gmms[a].responsibilities @ (t @ gmms[b].means)
    terms.append(jnp.mean(jnp.square(features[a] - target)))
  return jnp.mean(jnp.stack(terms))


def heterogeneity_loss(features: Sequence[jnp.ndarray], *, num_prototypes: int = 7, em_steps: int = 5,
                       var_floor: float = 1e-4, epsilon: float = 0.1, iterations: int = 50,
                       sample_weight: float = 1.0, axis_name=None, cost_reduction: str = "sum",
                       gmm_init: str = "farthest", normalize: bool = False):
  """Prototype OT + sample-to-prototype term on the unique features ([qian2026]'s heterogeneity).

  Per modality: gather the global batch, optionally L2-normalise, fit a diagonal GMM
  (:func:`fit_diagonal_gmm`), then :func:`multimarginal_prototype_ot` over all modalities plus
  `sample_weight` times :func:`sample_to_prototype_loss`. ``normalize=True`` (the scale-invariant
  option) L2-normalises every feature row first, so the term cannot be paid by shrinking the
  features.

  Args:
    features: sequence of M >= 2 (B, d) float arrays, this device's unique features.
    num_prototypes: K, GMM components per modality (<= the global batch size).
    em_steps: EM iterations of each GMM fit.
    var_floor: variance floor of the GMM fits.
    epsilon: entropic regularisation of the OT solve.
    iterations: Sinkhorn iterations.
    sample_weight: weight of the sample-to-prototype term.
    axis_name: data axis to gather the global batch over, or None.
    cost_reduction: 'sum' or 'mean' (see :func:`multimarginal_prototype_ot`).
    gmm_init: 'farthest' or 'index' (see :func:`fit_diagonal_gmm`).
    normalize: L2-normalise the rows first.

  Returns:
    (loss, aux): loss a scalar float array (the features' dtype); aux a dict of scalars
    {"ot_cost", "sample_to_prototype"}.
  """
  features = [gather(f, axis_name) for f in features]
  if normalize:
    features = [l2_normalize(f) for f in features]
  gmms = [fit_diagonal_gmm(f, num_prototypes, em_steps, var_floor, init=gmm_init) for f in features]
  ot = multimarginal_prototype_ot(gmms, epsilon, iterations, cost_reduction=cost_reduction)
  s2p = sample_to_prototype_loss(features, gmms, ot.plan)
  return ot.cost + sample_weight * s2p, {"ot_cost": ot.cost, "sample_to_prototype": s2p}


# ---- homogeneity -------------------------------------------------------------------------------

def _moments(x_NxD, eps=1e-6):
  mean = x_NxD.mean(0)
  centred = x_NxD - mean
  cov = centred.T @ centred / x_NxD.shape[0]
  std = jnp.sqrt(jnp.diagonal(cov) + eps)
  skew = jnp.mean(jnp.power(centred / std, 3), axis=0)
  return mean, cov, skew


def moment_loss(a_NxD, b_NxD) -> jnp.ndarray:
  """Mean, covariance and skewness matching between two samples ([qian2026]'s moment term).

  |mean_a - mean_b|^2 + |cov_a - cov_b|_F^2 + |skew_a - skew_b|^2, each divided by its size
  (mean squared differences; biased covariance, per-dimension skewness).

  Args:
    a_NxD: (N_a, D) float array.
    b_NxD: (N_b, D) float array of the same width.

  Returns:
    scalar float array (the inputs' dtype).
  """
  ma, ca, sa = _moments(a_NxD)
  mb, cb, sb = _moments(b_NxD)
  return (jnp.mean(jnp.square(ma - mb)) + jnp.mean(jnp.square(ca - cb))
          + jnp.mean(jnp.square(sa - sb)))


def mmd_loss(a_NxD, b_MxD, bandwidths: Sequence[float] = (0.5, 1.0, 2.0, 4.0)) -> jnp.ndarray:
  """Biased MMD^2 with a sum of Gaussian kernels exp(-|x - y|^2 / (2 h^2 d)) over `bandwidths`.

  Distances are divided by the width d so the bandwidths are scale-free in d. The biased
  (V-statistic) estimate, diagonal terms included.

  Args:
    a_NxD: (N, D) float array.
    b_MxD: (M, D) float array of the same width.
    bandwidths: kernel bandwidths h (floats); the kernel is their sum.

  Returns:
    scalar float array (the inputs' dtype), >= 0 up to rounding.

  Raises:
    ValueError: an input is not 2-D or the widths differ.
  """
  if a_NxD.ndim != 2 or b_MxD.ndim != 2 or a_NxD.shape[1] != b_MxD.shape[1]:
    raise ValueError(f"mmd_loss compares two samples of the same width: got shapes {a_NxD.shape} "
                     f"and {b_MxD.shape}; project both to one width first")
  return (_mean_kernel(a_NxD, a_NxD, bandwidths) + _mean_kernel(b_MxD, b_MxD, bandwidths)
          - 2 * _mean_kernel(a_NxD, b_MxD, bandwidths))


def _mean_kernel(x, y, bandwidths):
  """Mean over all (x_i, y_j) of :func:`mmd_loss`'s summed Gaussian kernel."""
  d = x.shape[1]
  sq = jnp.maximum(jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None] - 2 * x @ y.T, 0.0)
  return sum(jnp.exp(-sq / (2.0 * h * h * d)) for h in bandwidths).mean()


def homogeneity_loss(features: Sequence[jnp.ndarray], *, mmd_weight: float = 1.0,
                     bandwidths: Sequence[float] = (0.5, 1.0, 2.0, 4.0), axis_name=None,
                     normalize: bool = False, moment_weight: float = 1.0):
  """Moment matching + MMD between every pair of modalities' common features ([qian2026]).

  Each term is averaged over the unordered modality pairs, over the global batch.
  ``normalize=True`` (the scale-invariant option) L2-normalises every row first, so the term
  cannot be paid by collapsing the heads' outputs towards 0. ``moment_weight=0`` leaves MMD only
  and ``mmd_weight=0`` moments only (the alignment-strategy ablation).

  Args:
    features: sequence of M >= 2 (B, d) float arrays, this device's common features.
    mmd_weight: weight of the MMD term.
    bandwidths: Gaussian kernel bandwidths of :func:`mmd_loss`.
    axis_name: data axis to gather the global batch over, or None.
    normalize: L2-normalise the rows first.
    moment_weight: weight of the moment term.

  Returns:
    (loss, aux): loss a scalar float array (the features' dtype); aux a dict of scalars
    {"moment", "mmd"} (unweighted).
  """
  if any(f.ndim != 2 or f.shape[1] != features[0].shape[1] for f in features):
    raise ValueError("homogeneity_loss compares features of one width: got shapes "
                     f"{[f.shape for f in features]}; project them to one width first")
  features = [gather(f, axis_name) for f in features]
  if normalize:
    features = [l2_normalize(f) for f in features]
  pairs = list(itertools.combinations(range(len(features)), 2))
  moments = jnp.mean(jnp.stack([moment_loss(features[a], features[b]) for a, b in pairs]))
  # mmd_loss of each pair, with each modality's self-kernel traced once, not once per pair
  self_terms = [_mean_kernel(f, f, bandwidths) for f in features]
  mmd = jnp.mean(jnp.stack([
      self_terms[a] + self_terms[b] - 2 * _mean_kernel(features[a], features[b], bandwidths)
      for a, b in pairs]))
  return moment_weight * moments + mmd_weight * mmd, {"moment": moments, "mmd": mmd}


# ---- task --------------------------------------------------------------------------------------

def task_loss(prediction, label, task: str = "regression", regression_loss: str = "l1") -> jnp.ndarray:
  """The supervised task term: mean L1 or squared error for regression, cross-entropy otherwise.

  Mean L1 (``regression_loss='l1'``, as MMSA [mmsa]) or squared error (``'mse'``, the official
  DecAlign MOSI config [qian2026]) for regression; mean cross-entropy of the logits for
  classification.

  Args:
    prediction: regression: (B,) or (B, 1) float predictions; classification: (B, C) float
      logits.
    label: (B,) float targets (regression) or (B,) integer class ids (classification).
    task: 'regression' or 'classification'.
    regression_loss: 'l1' or 'mse' (regression only).

  Returns:
    scalar float array (the prediction's dtype).

  Raises:
    ValueError: an unknown `task` or `regression_loss`.
  """
  if task == "regression":
    diff = prediction.reshape(label.shape) - label
    if regression_loss == "l1":
      return jnp.mean(jnp.abs(diff))
    if regression_loss == "mse":
      return jnp.mean(jnp.square(diff))
    raise ValueError(f"loss.regression_loss must be 'l1' or 'mse', got {regression_loss!r}")
  if task == "classification":
    logp = jax.nn.log_softmax(prediction, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, label.astype(jnp.int32)[:, None], axis=1))
  raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")


def contrastive_classes(label, task: str = "regression"):
  """Class ids for the supervised contrastive term.

  The label itself for classification; for regression, as the official code of [qian2026],
  round(clip(y, -3, 3)) + 3 (the 7 sentiment classes).

  Args:
    label: (B,) array, class ids (classification) or float sentiment scores (regression).
    task: 'classification' (labels are class ids) or 'regression' (any other value).

  Returns:
    (B,) int32 array; for regression in [0, 6].
  """
  if task == "classification":
    return label.astype(jnp.int32)
  return (jnp.round(jnp.clip(label, -3.0, 3.0)) + 3).astype(jnp.int32)


def supervised_contrastive_loss(features_BxD, classes_B, temperature: float = 0.1, axis_name=None):
  """Supervised contrastive loss (Khosla et al. 2020) as DecAlign's official trainer computes it.

  On the fused representation ([qian2026]): rows L2-normalised, logits z_i . z_j / T over
  j != i, -mean over positives (same class, j != i) of log softmax, averaged over the rows that
  have a positive (0 when none has). Taken over the global batch.

  Args:
    features_BxD: (B, D) float array, this device's fused representations.
    classes_B: (B,) integer class ids (e.g. :func:`contrastive_classes`).
    temperature: softmax temperature T.
    axis_name: data axis to gather the global batch over, or None.

  Returns:
    scalar float array (the features' dtype).
  """
  z = l2_normalize(gather(features_BxD, axis_name))
  y = gather(classes_B, axis_name)
  n = z.shape[0]
  logits = z @ z.T / temperature
  not_self = ~jnp.eye(n, dtype=bool)
  positive = (y[:, None] == y[None, :]) & not_self
  logits = logits - lax.stop_gradient(jnp.max(jnp.where(not_self, logits, -jnp.inf), 1, keepdims=True))
  log_norm = jnp.log(jnp.maximum(jnp.sum(jnp.where(not_self, jnp.exp(logits), 0.0), 1, keepdims=True),
                                 1e-8))
  log_prob = logits - log_norm
  count = positive.sum(1)
  per_row = jnp.sum(jnp.where(positive, log_prob, 0.0), 1) / jnp.maximum(count, 1)
  has = count > 0
  return -jnp.sum(jnp.where(has, per_row, 0.0)) / jnp.maximum(has.sum(), 1)


def instance_infonce_loss(features: Sequence[jnp.ndarray], temperature: float = 0.1, axis_name=None):
  """Paired instance-level alignment (the positive control of the ablation): symmetric InfoNCE.

  InfoNCE between the features of the SAME example in every pair of modalities (rows
  L2-normalised, positives on the diagonal, the other examples of the global batch as negatives),
  averaged over ordered modality pairs (so each pair counts both ways).

  Args:
    features: sequence of M >= 2 (B, D) float arrays, row i of each the same example.
    temperature: softmax temperature.
    axis_name: data axis to gather the global batch over, or None.

  Returns:
    scalar float array (the features' dtype).
  """
  zs = [l2_normalize(gather(f, axis_name)) for f in features]
  terms = []
  for a, b in itertools.permutations(range(len(zs)), 2):
    logits = zs[a] @ zs[b].T / temperature
    terms.append(-jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=1))))
  return jnp.mean(jnp.stack(terms))
