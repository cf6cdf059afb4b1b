"""SAE sparsifiers and losses as pure functions, exact under data parallelism.

Reductions follow dictionary_learning: reconstruction error is the squared L2 norm per sample
(summed over dimensions), averaged over the batch. Anything that needs the whole global batch
(BatchTopK's selection, AuxK's residual variance, the dead-latent counters) takes ``axis_name``
and uses collectives, so 1 device and N devices give the same numbers.

BatchTopK comes in two exact forms: :func:`batchtopk` (dense codes, for the dense formulation)
and :func:`batchtopk_list` (the kept entries as a list, for the sparse formulation of
:mod:`jaxdisent.losses.sparse_codes`; no per-row top-k). Order statistics of non-negative
values use :func:`kth_largest_nonnegative`, a counting search on float bit patterns (no sort).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdisent.losses import sparse_codes


def _check_k(k, name: str = "k", high: int | None = None, what: str = "latents"):
  """A static Python int k >= 1 (and <= high), checked at trace time: a clear ValueError."""
  ok = isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
  if ok:
    ok = k >= 1 and (high is None or k <= high)
  if not ok:
    bound = f"in [1, {high}] (the number of {what})" if high is not None else ">= 1"
    raise ValueError(f"{name} must be a Python integer {bound}; got {k!r}")
  return int(k)


def _check_codes(pre_BxM, name: str = "pre_BxM"):
  if jnp.ndim(pre_BxM) != 2:
    raise ValueError(f"{name} must be a 2-D (batch, latents) array; got shape {jnp.shape(pre_BxM)}")


def topk(pre_BxM, k: int):
  """Keep each row's k largest pre-activations (Gao et al. 2024, [gao2024]); k in [1, M].

  Entries tied with a row's k-th value are all kept; no ReLU is applied here.

  Args:
    pre_BxM: (B, M) float array of pre-activations.
    k: static Python int in [1, M].

  Returns:
    (B, M) float array of `pre_BxM`'s dtype: the kept entries, 0 elsewhere.

  Raises:
    ValueError: `pre_BxM` is not 2-D or `k` is not an int in [1, M].
  """
  _check_codes(pre_BxM)
  k = _check_k(k, high=pre_BxM.shape[1])
  values, _ = lax.top_k(pre_BxM, k)
  kth = values[:, -1:]
  return jnp.where(pre_BxM >= kth, pre_BxM, 0.0)


def global_batch_size(local: int, axis_name) -> int:
  """The number of rows of the global batch: `local` times the devices on `axis_name`.

  Args:
    local: Python int, the rows on this device.
    axis_name: the data axis (call inside the mapped function), or None (one device).

  Returns:
    Python int.
  """
  return local * (lax.axis_size(axis_name) if axis_name is not None else 1)


def kth_largest_nonnegative(values_N, k: int, axis_name=None):
  """The k-th largest of `values_N` (gathered over `axis_name`), exactly, for values >= 0.

  A bitwise search instead of a sort: non-negative floats order as their integer bit patterns,
  so the answer is the largest bit pattern t with count(values >= t) >= k, built one bit at a
  time from the top (31 counting passes in float32, 63 in float64, each psum'd over the data axis;
  no all-gather). Values <= 0 count as +0. When fewer than k values exist in all, returns 0 (every
  value is kept). float64 input is searched in float64 (a float32 threshold could round above the
  k-th value and drop it); bfloat16 / float16 input in float32, where it is exact.

  Args:
    values_N: (N,) float array.
    k: static Python int >= 1, counted over the global set of values.
    axis_name: the data axis whose devices' values count together, or None.

  Returns:
    scalar float64 array for float64 input, else float32; the same on every device.

  Raises:
    ValueError: `k` is not a Python int >= 1.
  """
  k = _check_k(k)
  if values_N.dtype == jnp.float64:
    float_type, int_type, passes = jnp.float64, jnp.int64, 63
  else:
    float_type, int_type, passes = jnp.float32, jnp.int32, 31
  bits = lax.bitcast_convert_type(jnp.maximum(values_N.astype(float_type), 0.0), int_type)

  def count_at_least(t):
    n = jnp.sum(bits >= t, dtype=jnp.int32)
    return lax.psum(n, axis_name) if axis_name is not None else n

  def body(i, found):
    trial = found | (jnp.asarray(1, int_type) << jnp.asarray(passes - 1 - i, int_type))
    return jnp.where(count_at_least(trial) >= k, trial, found)

  found = lax.fori_loop(0, passes, body, jnp.asarray(0, int_type))
  return lax.bitcast_convert_type(found, float_type)


def _global_kth_flat(pre_BxM, total: int, axis_name=None):
  """The `total`-th largest entry of the global batch over every entry (pre-activations are
  >= 0 after the ReLU): exact, 31 counting passes over B x M."""
  return kth_largest_nonnegative(pre_BxM.reshape(-1), total, axis_name)


def row_candidates(pre_BxM, k: int, axis_name=None, row_cap: int | None = None):
  """Every row's top `row_cap` entries and the (k * B_global)-th largest of those candidates.

  The threshold is exact unless `saturated`: some row has all `row_cap` candidates >= kth, so it
  may hold more of the batch's top entries than it offered (then the caller must use the exact
  flat selection). Same flag on every device.

  Args:
    pre_BxM: (B, M) float array of non-negative pre-activations (after the ReLU).
    k: static Python int in [1, M], kept entries per row on average.
    axis_name: the data axis, or None.
    row_cap: static int, candidates per row C (None -> 4k; clipped to [k, M]).

  Returns:
    (values_BxC, index_BxC, kth, saturated): (B, C) candidates in descending order
    (`pre_BxM`'s dtype), their (B, C) int32 latent indices, a scalar float32 threshold and a
    scalar bool.
  """
  _check_codes(pre_BxM)
  batch, width = pre_BxM.shape
  k = _check_k(k, high=width)
  total = k * global_batch_size(batch, axis_name)
  cap = min(width, max(row_cap or 4 * k, k))   # B * cap candidates must cover k * B
  # The barrier keeps XLA:CPU from fusing this top-k with what follows into a sort of the whole
  # B x M array (measured, when a second top-k followed: 6.4 s instead of 0.36 s at B=4096,
  # M=12288). One barrier per array: a
  # barrier on the (values, indices) tuple aborts XLA:CPU's compiler under shard_map.
  row_top, row_index = lax.top_k(pre_BxM, cap)                                  # B x cap
  row_top, row_index = lax.optimization_barrier(row_top), lax.optimization_barrier(row_index)
  kth = kth_largest_nonnegative(row_top.reshape(-1), total, axis_name)
  saturated = jnp.any(row_top[:, -1] >= kth) if cap < width else jnp.bool_(False)
  if axis_name is not None:
    saturated = lax.pmax(saturated.astype(jnp.int32), axis_name) > 0
  return row_top, row_index, kth, saturated


def batchtopk_threshold(pre_BxM, k: int, axis_name=None, row_cap: int | None = None):
  """The (k * B_global)-th largest pre-activation of the global batch, exactly ([bussmann2024]).

  Fast path: every row offers its top `row_cap` values (default 4k) and the threshold t is taken
  among those candidates (gathered over the data axis). That t is exact whenever no row has all
  `row_cap` of its candidates >= t (then every entry >= t of the whole batch is a candidate);
  otherwise -- a row holding more than `row_cap` of the batch's top entries -- the exact flat
  selection runs instead (`lax.cond`, same branch on every device).

  Args:
    pre_BxM: (B, M) float array of non-negative pre-activations.
    k: static Python int in [1, M].
    axis_name: the data axis, or None.
    row_cap: static int, candidates per row (None -> 4k).

  Returns:
    scalar float32 array, the same on every device.
  """
  _check_codes(pre_BxM)
  batch, width = pre_BxM.shape
  k = _check_k(k, high=width)
  total = k * global_batch_size(batch, axis_name)
  cap = min(width, max(row_cap or 4 * k, k))
  if cap >= width:
    return _global_kth_flat(pre_BxM, total, axis_name)
  _, _, kth, saturated = row_candidates(pre_BxM, k, axis_name, row_cap)
  return lax.cond(saturated, lambda: _global_kth_flat(pre_BxM, total, axis_name), lambda: kth)


def batchtopk_list(pre_BxM, k: int, capacity: int, axis_name=None, block: int = 16):
  """BatchTopK's kept entries as a list, exactly, without a per-row top-k ([bussmann2024]).

  Split every row into blocks of `block` latents. t0 = the (k * B_global)-th largest block
  maximum is a lower bound of the threshold t (at least k * B_global entries are >= t0), and
  every entry >= t lies in a block whose maximum is >= t0 -- of which there are k * B_global,
  ties aside. Those blocks' entries are the candidates; t is their (k * B_global)-th largest
  (both by :func:`kth_largest_nonnegative`), and the entries >= t (and > 0) are packed into a
  list of `capacity`. One pass over the B x M pre-activations (the block maxima), the rest on
  ~k * B * block values.

  Args:
    pre_BxM: (B, M) float array of non-negative pre-activations.
    k: static Python int in [1, M].
    capacity: static Python int >= 1, the list length P (e.g.
      :func:`jaxdisent.losses.sae_kinds.batchtopk_capacity`); also bounds the chosen blocks.
    axis_name: the data axis, or None.
    block: static Python int >= 1, latents per block.

  Returns:
    (codes, kth, overflow): codes a :class:`jaxdisent.losses.sparse_codes.Codes` of P entries
    (values in `pre_BxM`'s dtype, rows = local sample indices and cols = latent indices as int32,
    padding value 0); kth the scalar float32 threshold; overflow a scalar bool (same on every
    device), True when the selected blocks or the kept entries exceed `capacity` on some device
    (ties at t0 or t, or, on several devices, an uneven split): the caller must then use the
    dense formulation.
  """
  _check_codes(pre_BxM)
  batch, width = pre_BxM.shape
  k = _check_k(k, high=width)
  _check_k(capacity, "capacity")
  _check_k(block, "block")
  total = k * global_batch_size(batch, axis_name)
  pad = (-width) % block
  pre = jnp.pad(pre_BxM, ((0, 0), (0, pad))) if pad else pre_BxM
  blocks = pre.reshape(batch * (width + pad) // block, block)                  # (B M / block) x block
  block_max = jnp.max(blocks, axis=1)
  t0 = kth_largest_nonnegative(block_max, total, axis_name)
  chosen = (block_max >= t0) & (block_max > 0)
  block_codes, block_overflow = sparse_codes.compact(
      block_max[:, None], jnp.arange(block_max.shape[0], dtype=jnp.int32)[:, None], chosen[:, None],
      capacity)
  # candidates: every entry of the chosen blocks (padding blocks carry index 0 and value 0 ->
  # masked out below)
  real = block_codes.values > 0
  values = jnp.where(real[:, None], blocks[block_codes.cols], 0.0)           # capacity x block
  flat = block_codes.cols[:, None] * block + jnp.arange(block, dtype=jnp.int32)[None, :]
  row = flat // (width + pad)
  col = flat % (width + pad)
  kth = kth_largest_nonnegative(values.reshape(-1), total, axis_name)
  keep = (values >= kth) & (values > 0)
  # rows x cols of the candidates -> the list of kept entries
  keep_flat = keep.reshape(-1)
  position = jnp.cumsum(keep_flat.astype(jnp.int32)) - 1
  count = jnp.sum(keep_flat, dtype=jnp.int32)
  dest = jnp.where(keep_flat, position, capacity)
  put = lambda src, dtype: jnp.zeros((capacity,), dtype).at[dest].set(src, mode="drop")
  codes = sparse_codes.Codes(put(jnp.where(keep_flat, values.reshape(-1), 0.0), pre_BxM.dtype),
                             put(row.reshape(-1), jnp.int32), put(col.reshape(-1), jnp.int32))
  overflow = block_overflow | (count > capacity)
  if axis_name is not None:
    overflow = lax.pmax(overflow.astype(jnp.int32), axis_name) > 0
  return codes, kth, overflow


def batchtopk(pre_BxM, k: int, axis_name=None, row_cap: int | None = None):
  """Keep the k * B_global largest pre-activations of the *global* batch (Bussmann et al. 2024).

  [bussmann2024]. Exact under sharding (see :func:`batchtopk_threshold`): every shard keeps its
  entries >= the global (k * B_global)-th largest value (and > 0). The threshold is the smallest
  kept activation (used to estimate the inference threshold).

  Args:
    pre_BxM: (B, M) float array of non-negative pre-activations.
    k: static Python int in [1, M].
    axis_name: the data axis, or None.
    row_cap: static int, candidates per row of the fast path (None -> 4k).

  Returns:
    (codes, kth): codes (B, M) of `pre_BxM`'s dtype (0 where not kept); kth a scalar float32
    array with its gradient stopped.
  """
  _check_codes(pre_BxM)
  _check_k(k, high=pre_BxM.shape[1])
  kth = lax.stop_gradient(batchtopk_threshold(pre_BxM, k, axis_name, row_cap))
  codes = jnp.where((pre_BxM >= kth) & (pre_BxM > 0), pre_BxM, 0.0)
  return codes, kth


def threshold_codes(pre_BxM, threshold):
  """Inference-time BatchTopK: one global threshold instead of the batch operation.

  Args:
    pre_BxM: (B, M) float array of pre-activations.
    threshold: scalar (or broadcastable) float, the learned threshold.

  Returns:
    (B, M) float array: the entries > `threshold`, 0 elsewhere.
  """
  return jnp.where(pre_BxM > threshold, pre_BxM, 0.0)


# ---- JumpReLU with straight-through pseudo-derivatives (Rajamanoharan et al. 2024) -----------

def _rectangle(u):
  return (jnp.abs(u) < 0.5).astype(u.dtype)


@jax.custom_vjp
def jumprelu(x, threshold, bandwidth):
  """JumpReLU x * (x > threshold) with straight-through pseudo-derivatives ([rajamanoharan2024]).

  The gradient w.r.t. x is g * (x > threshold); w.r.t. the threshold it is the rectangle-kernel
  estimate -(threshold / bandwidth) K((x - threshold) / bandwidth) g, summed over the leading
  axes; `bandwidth` gets none.

  Args:
    x: (..., M) float array of pre-activations.
    threshold: (M,) float array of positive per-latent thresholds.
    bandwidth: float, the kernel bandwidth of the pseudo-derivative.

  Returns:
    float array of `x`'s shape and dtype.
  """
  return x * (x > threshold)


def _jumprelu_fwd(x, threshold, bandwidth):
  return jumprelu(x, threshold, bandwidth), (x, threshold, bandwidth)


def _jumprelu_bwd(residual, g):
  x, threshold, bandwidth = residual
  grad_x = g * (x > threshold)
  grad_t = -(threshold / bandwidth) * _rectangle((x - threshold) / bandwidth) * g
  return grad_x, jnp.sum(grad_t.reshape(-1, threshold.shape[-1]), axis=0), None


jumprelu.defvjp(_jumprelu_fwd, _jumprelu_bwd)


@jax.custom_vjp
def step_function(x, threshold, bandwidth):
  """Heaviside step (x > threshold) with a straight-through threshold gradient.

  The L0 of JumpReLU's sparsity penalty ([rajamanoharan2024]): the gradient w.r.t. x is 0;
  w.r.t. the threshold it is -(1 / bandwidth) K((x - threshold) / bandwidth) g (rectangle
  kernel K), summed over the leading axes; `bandwidth` gets none.

  Args:
    x: (..., M) float array of pre-activations.
    threshold: (M,) float array of positive per-latent thresholds.
    bandwidth: float, the kernel bandwidth of the pseudo-derivative.

  Returns:
    0/1 float array of `x`'s shape and dtype.
  """
  return (x > threshold).astype(x.dtype)


def _step_fwd(x, threshold, bandwidth):
  return step_function(x, threshold, bandwidth), (x, threshold, bandwidth)


def _step_bwd(residual, g):
  x, threshold, bandwidth = residual
  grad_t = -(1.0 / bandwidth) * _rectangle((x - threshold) / bandwidth) * g
  return jnp.zeros_like(x), jnp.sum(grad_t.reshape(-1, threshold.shape[-1]), axis=0), None


step_function.defvjp(_step_fwd, _step_bwd)


# ---- losses ------------------------------------------------------------------------------------

def _same_shape(x_BxD, x_hat_BxD):
  if jnp.shape(x_BxD) != jnp.shape(x_hat_BxD):
    raise ValueError(f"x and x_hat must have the same shape (batch, d); got {jnp.shape(x_BxD)} and "
                     f"{jnp.shape(x_hat_BxD)}")


def squared_error(x_BxD, x_hat_BxD):
  """Squared L2 norm of x - x_hat per sample (summed over the last axis, dictionary_learning's).

  Args:
    x_BxD: (B, D) float array, the inputs.
    x_hat_BxD: (B, D) float array, the reconstructions.

  Returns:
    (B,) float array (the inputs' dtype).

  Raises:
    ValueError: the shapes differ.
  """
  _same_shape(x_BxD, x_hat_BxD)
  return jnp.sum(jnp.square(x_BxD - x_hat_BxD), axis=-1)


def matryoshka_group_sizes(dict_size: int, fractions) -> tuple:
  """Nested group sizes from fractions of the dictionary ([bussmann2025]).

  As dictionary_learning's MatryoshkaBatchTopKTrainer: floor(f * dict_size) for every group but
  the last, which takes the remainder.

  Args:
    dict_size: Python int M, the dictionary size.
    fractions: iterable of G positive floats summing to 1 (``model.group_fractions``).

  Returns:
    tuple of G Python ints >= 1, summing to `dict_size`.

  Raises:
    ValueError: the fractions are not positive, do not sum to 1, or a group would be empty.
  """
  fractions = [float(f) for f in fractions]
  if not fractions or any(not np.isfinite(f) or f <= 0 for f in fractions):
    raise ValueError(f"model.group_fractions={tuple(fractions)} must be positive numbers summing "
                     "to 1 (e.g. 0.0625,0.0625,0.125,0.25,0.5)")
  if abs(sum(fractions) - 1.0) > 1e-6:
    raise ValueError(f"model.group_fractions={tuple(fractions)} sum to {sum(fractions):.6g}; they "
                     "must sum to 1 (the last group is the rest of the dictionary)")
  sizes = [int(f * dict_size) for f in fractions[:-1]]
  sizes.append(int(dict_size) - sum(sizes))
  if min(sizes) < 1:
    raise ValueError(f"model.group_fractions={tuple(fractions)} give group sizes {sizes} for "
                     f"dict_size={dict_size}: every group needs >= 1 latent (fewer groups or "
                     "larger fractions)")
  return tuple(sizes)


def nested_reconstruction_loss(x_BxD, partials, b_dec_D, weights):
  """Matryoshka reconstruction loss (Bussmann et al. 2025; dictionary_learning's definition).

  [bussmann2025]. `partials` are the groups' decodes without bias, in nesting order (group g's
  codes times its decoder rows); prefix i reconstructs ``b_dec + sum_{g <= i} partials[g]``. The
  loss is ``mean_i(weights[i] * mean_b ||x - prefix_i||^2)`` -- dictionary_learning averages the
  weighted per-prefix losses (with its default weights 1/G each).

  Args:
    x_BxD: (B, D) float array, the inputs.
    partials: sequence of G (B, D) float arrays, the groups' bias-free decodes.
    b_dec_D: (D,) float array, the decoder bias.
    weights: sequence of G floats, the prefix weights.

  Returns:
    (loss, recon, errors): loss a scalar float array; recon the (B, D) full reconstruction
    (`x_BxD`'s dtype); errors the (G,) per-prefix mean squared errors, unweighted.

  Raises:
    ValueError: `partials` is empty or its length differs from `weights`'.
  """
  if len(partials) != len(weights) or not partials:
    raise ValueError(f"{len(partials)} group decodes but {len(weights)} group weights")
  recon = jnp.broadcast_to(b_dec_D, x_BxD.shape).astype(x_BxD.dtype)
  errors = []
  for partial in partials:
    recon = recon + partial
    errors.append(jnp.mean(squared_error(x_BxD, recon)))
  errors = jnp.stack(errors)
  loss = jnp.mean(jnp.asarray(weights, errors.dtype) * errors)
  return loss, recon, errors


def _auxk_normalised(residual_BxD, recon_BxD, axis_name=None):
  """mean ||residual - recon||^2 / mean ||residual - mean(residual)||^2 over the global batch
  (OpenAI's normalisation, as dictionary_learning)."""
  mean = jnp.mean(residual_BxD, axis=0)
  if axis_name is not None:
    mean = lax.pmean(mean, axis_name)
  variance = jnp.mean(jnp.sum(jnp.square(residual_BxD - mean), axis=-1))
  if axis_name is not None:
    variance = lax.pmean(variance, axis_name)
  return jnp.mean(squared_error(residual_BxD, recon_BxD)) / jnp.maximum(variance, 1e-12)


def _dead_top(pre_BxM, dead_M, k_aux: int):
  masked = jnp.where(dead_M[None, :], pre_BxM, -jnp.inf)
  values, index = lax.top_k(masked, min(k_aux, pre_BxM.shape[1]))
  return jnp.where(jnp.isfinite(values), values, 0.0), index


def auxk_loss(pre_BxM, residual_BxD, dead_M, W_dec_MxD, k_aux: int, axis_name=None):
  """AuxK (Gao et al. 2024, [gao2024]): the top k_aux *dead* latents reconstruct the residual.

  The residual is detached; the error is normalised by the residual's variance over the global
  batch (OpenAI's normalisation, as dictionary_learning). Zero when nothing is dead. Dense
  formulation: the dead top-k are scattered into a B x M matrix and decoded by a matmul.

  Args:
    pre_BxM: (B, M) float array of pre-activations.
    residual_BxD: (B, D) float array, x - x_hat (gradient stopped here).
    dead_M: (M,) bool array, the dead latents (the same on every device).
    W_dec_MxD: (M, D) float array, the decoder.
    k_aux: static Python int >= 1 (more than M uses all M latents).
    axis_name: the data axis, or None.

  Returns:
    scalar float array (`pre_BxM`'s dtype).
  """
  _check_k(k_aux, "k_aux")
  residual = lax.stop_gradient(residual_BxD)

  def loss_with_dead():
    values, index = _dead_top(pre_BxM, dead_M, k_aux)
    rows = jnp.arange(pre_BxM.shape[0])[:, None]
    dense = jnp.zeros_like(pre_BxM).at[rows, index].set(values)
    return _auxk_normalised(residual, dense @ W_dec_MxD, axis_name)

  # `dead_M` is the same on every device, so every device takes the same branch; skipping the
  # top-k and the extra decode while nothing is dead (early training) saves ~1/4 of a step.
  return lax.cond(jnp.any(dead_M), loss_with_dead, lambda: jnp.zeros((), pre_BxM.dtype))


def auxk_loss_sparse(pre_BxM, x_BxD, b_dec_D, W_enc_DxM, b_enc_M, residual_BxD, dead_M,
                     W_dec_MxD, k_aux: int, axis_name=None, chunk: int = sparse_codes.DEFAULT_CHUNK):
  """:func:`auxk_loss` with the dead top-k kept as a B x k_aux list (same value).

  `pre_BxM` is the detached dense pre-activation relu((x - b_dec) W_enc + b_enc); gradients reach
  b_dec, W_enc, b_enc and W_dec through the sparse VJPs of :mod:`jaxdisent.losses.sparse_codes`.

  Args:
    pre_BxM: (B, M) float array, the dense pre-activations (treated as constant).
    x_BxD: (B, D) float array, the inputs.
    b_dec_D: (D,) float array, the decoder bias.
    W_enc_DxM: (D, M) float array, the encoder.
    b_enc_M: (M,) float array, the encoder bias.
    residual_BxD: (B, D) float array, x - x_hat (gradient stopped here).
    dead_M: (M,) bool array, the dead latents (the same on every device).
    W_dec_MxD: (M, D) float array, the decoder.
    k_aux: static Python int >= 1.
    axis_name: the data axis, or None.
    chunk: static Python int >= 1, list entries per scan step.

  Returns:
    scalar float array (`pre_BxM`'s dtype).
  """
  _check_k(k_aux, "k_aux")
  residual = lax.stop_gradient(residual_BxD)

  def loss_with_dead():
    values, index = _dead_top(lax.stop_gradient(pre_BxM), dead_M, k_aux)
    codes = sparse_codes.from_rows(values, index)
    codes = codes._replace(values=sparse_codes.encoder_values(codes, x_BxD, b_dec_D, W_enc_DxM,
                                                              b_enc_M, chunk))
    recon = sparse_codes.decode(codes, W_dec_MxD, pre_BxM.shape[0], chunk)
    return _auxk_normalised(residual, recon, axis_name)

  return lax.cond(jnp.any(dead_M), loss_with_dead, lambda: jnp.zeros((), pre_BxM.dtype))


def fraction_of_variance_unexplained(x_BxD, x_hat_BxD, axis_name=None):
  """FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (global batch).

  Args:
    x_BxD: (B, D) float array, the inputs.
    x_hat_BxD: (B, D) float array, the reconstructions.
    axis_name: the data axis (sums and the mean are global), or None.

  Returns:
    scalar float array (the inputs' dtype); 0 is perfect, 1 is the mean's error.

  Raises:
    ValueError: the shapes differ.
  """
  _same_shape(x_BxD, x_hat_BxD)
  mean = jnp.mean(x_BxD, axis=0)
  err = jnp.sum(squared_error(x_BxD, x_hat_BxD))
  if axis_name is not None:
    mean = lax.pmean(mean, axis_name)
  total = jnp.sum(jnp.square(x_BxD - mean))
  if axis_name is not None:
    err, total = lax.psum(err, axis_name), lax.psum(total, axis_name)
  return err / jnp.maximum(total, 1e-12)
