"""Sparse SAE codes and the two products an SAE step needs on them, with sparse backward passes.

After a sparsifier keeps ~k of M latents per row, the decode ``z @ W_dec``, the decoder's
gradient and the gradient reaching the encoder only touch the kept entries: ~B x k x d work
instead of the dense B x M x d. Here the kept entries are a flat list ``Codes(values, rows,
cols)`` (padding: value 0), and

* :func:`decode` computes ``x_hat[b] = sum_{p: rows[p]=b} values[p] W_dec[cols[p]]`` with a
  custom VJP: ``d values[p] = g[rows[p]] . W_dec[cols[p]]`` (gather) and
  ``d W_dec[m] = sum_{p: cols[p]=m} values[p] g[rows[p]]`` (scatter-add);
* :func:`encoder_values` hands back the kept pre-activations (already computed by the dense
  encoder forward, so the forward values are bitwise the dense ones) with the VJP of
  ``relu((x - b_dec)[rows[p]] . W_enc[:, cols[p]] + b_enc[cols[p]])``: scatter-adds into W_enc's
  columns and b_enc, and b_dec's share as one matvec. Autodiff of the dense formulation would instead form a dense
  B x M cotangent and two more B x M x d products.

Both loop over the list in chunks (``lax.scan``), so no temporary is larger than
``chunk x d`` (plus the M x d gradient accumulators). Sums run in a different order from the
dense matmuls, so gradients agree with the dense formulation to float32 rounding, not bitwise.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

DEFAULT_CHUNK = 1024   # entries per scan step: 1024 x d floats = 3 MB at d = 768 (cache-sized;
                       # 4096 measured 2-3x slower on CPU)


class Codes(NamedTuple):
  """Kept activations as a flat list; entries with value 0 (padding, not kept) contribute
  nothing."""
  values: jax.Array    # (P,) float
  rows: jax.Array      # (P,) int32, sample index in the local batch
  cols: jax.Array      # (P,) int32, latent index


def from_rows(values_BxC, index_BxC) -> Codes:
  """A fixed-width per-row carrier (e.g. TopK's B x k) as a flat list.

  Args:
    values_BxC: (B, C) float array of kept values (0 = not kept).
    index_BxC: (B, C) integer array, their latent indices.

  Returns:
    :class:`Codes` of P = B * C entries in row-major order: values (P,) of `values_BxC`'s dtype,
    rows and cols (P,) int32.
  """
  batch, width = values_BxC.shape
  rows = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], (batch, width))
  return Codes(values_BxC.reshape(-1), rows.reshape(-1), index_BxC.reshape(-1).astype(jnp.int32))


def compact(values_BxC, index_BxC, keep_BxC, capacity: int):
  """The kept entries of a per-row carrier, packed into a list of `capacity` entries.

  Entries keep their row-major order; the unused tail is padding (value 0, row 0, col 0).

  Args:
    values_BxC: (B, C) float array of candidate values.
    index_BxC: (B, C) integer array, their latent indices.
    keep_BxC: (B, C) bool array, the entries to keep.
    capacity: static Python int >= 1, the list length P.

  Returns:
    (codes, overflow): codes a :class:`Codes` of P entries (values of `values_BxC`'s dtype, rows
    and cols int32); overflow a scalar bool, True when more than `capacity` entries are kept
    (those past the capacity are dropped, so the caller must then use the dense formulation).

  Raises:
    ValueError: `capacity` is not a Python int >= 1.
  """
  _check_positive(capacity, "capacity")
  batch, width = values_BxC.shape
  keep = keep_BxC.reshape(-1)
  position = jnp.cumsum(keep.astype(jnp.int32)) - 1
  count = position[-1] + 1
  dest = jnp.where(keep, position, capacity)          # out of range -> dropped
  rows = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], (batch, width)).reshape(-1)
  put = lambda src, dtype: jnp.zeros((capacity,), dtype).at[dest].set(src, mode="drop")
  codes = Codes(put(jnp.where(keep, values_BxC.reshape(-1), 0), values_BxC.dtype),
                put(rows, jnp.int32), put(index_BxC.reshape(-1).astype(jnp.int32), jnp.int32))
  return codes, count > capacity


def _check_positive(value, name: str) -> int:
  """A static Python int >= 1 (list capacities, chunk sizes, batch sizes): a clear ValueError."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a Python integer >= 1; got {value!r}")
  return int(value)


def _chunked(chunk: int, *arrays):
  size = arrays[0].shape[0]
  chunk = max(1, min(chunk, size))
  pad = (-size) % chunk
  return [jnp.pad(a, (0, pad)).reshape(-1, chunk) for a in arrays]


def fired(codes: Codes, num_latents: int):
  """Which latents are active (value > 0) anywhere in the list.

  Args:
    codes: :class:`Codes` with cols in [0, num_latents).
    num_latents: Python int M.

  Returns:
    (M,) bool array.
  """
  return jnp.zeros((num_latents,), bool).at[codes.cols].max(codes.values > 0)


# ---- decode ------------------------------------------------------------------------------------

def _decode_impl(values, rows, cols, W_dec_MxD, batch, chunk):
  v, r, c = _chunked(chunk, values, rows, cols)

  def body(out, vrc):
    v, r, c = vrc
    return out.at[r].add(v[:, None] * W_dec_MxD[c]), None

  out, _ = lax.scan(body, jnp.zeros((batch, W_dec_MxD.shape[1]), W_dec_MxD.dtype), (v, r, c))
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _decode(values, rows, cols, W_dec_MxD, batch, chunk):
  return _decode_impl(values, rows, cols, W_dec_MxD, batch, chunk)


def _decode_fwd(values, rows, cols, W_dec_MxD, batch, chunk):
  return _decode_impl(values, rows, cols, W_dec_MxD, batch, chunk), (values, rows, cols, W_dec_MxD)


def _decode_bwd(batch, chunk, residual, g_BxD):
  del batch
  values, rows, cols, W_dec_MxD = residual
  v, r, c = _chunked(chunk, values, rows, cols)

  def body(dW, vrc):
    v, r, c = vrc
    g_rows = g_BxD[r]
    d_values = jnp.sum(g_rows * W_dec_MxD[c], axis=1)
    return dW.at[c].add(v[:, None] * g_rows), d_values

  dW, d_values = lax.scan(body, jnp.zeros_like(W_dec_MxD), (v, r, c))
  return d_values.reshape(-1)[:values.shape[0]], None, None, dW


_decode.defvjp(_decode_fwd, _decode_bwd)


def decode(codes: Codes, W_dec_MxD, batch: int, chunk: int = DEFAULT_CHUNK):
  """sum over the list of value * W_dec row, per sample (no bias): B x d.

  x_hat[b] = sum_{p: rows[p]=b} values[p] W_dec[cols[p]], with the sparse custom VJP of the
  module docstring (gradients reach ``codes.values`` and `W_dec_MxD`).

  Args:
    codes: :class:`Codes` of P entries, rows in [0, batch).
    W_dec_MxD: (M, d) float array, the decoder.
    batch: static Python int >= 1, the number of rows B.
    chunk: static Python int >= 1, list entries per scan step.

  Returns:
    (B, d) float array of `W_dec_MxD`'s dtype.

  Raises:
    ValueError: `batch` or `chunk` is not a Python int >= 1.
  """
  return _decode(codes.values, codes.rows, codes.cols, W_dec_MxD, _check_positive(batch, "batch"),
                 _check_positive(chunk, "chunk"))


# ---- encoder values ----------------------------------------------------------------------------

@functools.partial(jax.custom_vjp, nondiff_argnums=(7,))
def _encoder_values(values, x_BxD, b_dec_D, W_enc_DxM, b_enc_M, rows, cols, chunk):
  del x_BxD, b_dec_D, W_enc_DxM, b_enc_M, rows, cols, chunk
  return values


def _encoder_values_fwd(values, x_BxD, b_dec_D, W_enc_DxM, b_enc_M, rows, cols, chunk):
  del b_enc_M, chunk
  return values, (values, x_BxD, b_dec_D, W_enc_DxM, rows, cols)


def _encoder_values_bwd(chunk, residual, g_P):
  values, x_BxD, b_dec_D, W_enc_DxM, rows, cols = residual
  g_P = jnp.where(values > 0, g_P, 0.0)               # relu'(pre) (and padding / not kept)
  g, r, c = _chunked(chunk, g_P, rows, cols)

  def body(dW_MxD, grc):
    g, r, c = grc
    return dW_MxD.at[c].add(g[:, None] * (x_BxD[r] - b_dec_D)), None

  dW_MxD, _ = lax.scan(body, jnp.zeros(W_enc_DxM.shape[::-1], W_enc_DxM.dtype), (g, r, c))
  db_enc = jnp.zeros((W_enc_DxM.shape[1],), g_P.dtype).at[cols].add(g_P)
  db_dec = -(W_enc_DxM @ db_enc)    # sum over entries of -g W_enc[:, col]: one d x M matvec
  return jnp.zeros_like(values), jnp.zeros_like(x_BxD), db_dec, dW_MxD.T, db_enc, None, None


_encoder_values.defvjp(_encoder_values_fwd, _encoder_values_bwd)


def encoder_values(codes: Codes, x_BxD, b_dec_D, W_enc_DxM, b_enc_M, chunk: int = DEFAULT_CHUNK):
  """``codes.values`` made differentiable in b_dec, W_enc and b_enc through the sparse VJP above.

  ``codes.values`` are the kept entries of relu((x - b_dec) W_enc + b_enc), computed densely and
  detached. x is data: it is detached, so its (never needed) gradient is not formed, and b_dec's
  encoder-side gradient is ``-W_enc (sum_p g_p e_{cols[p]})`` (a d x M matvec) instead of a
  scatter over the list.

  Args:
    codes: :class:`Codes` of P entries (values >= 0; padding 0 gets no gradient).
    x_BxD: (B, d) float array, the inputs.
    b_dec_D: (d,) float array, the decoder bias (subtracted before encoding).
    W_enc_DxM: (d, M) float array, the encoder.
    b_enc_M: (M,) float array, the encoder bias.
    chunk: static Python int >= 1, list entries per scan step.

  Returns:
    (P,) float array equal to ``codes.values`` (same dtype), with the encoder VJP attached.

  Raises:
    ValueError: `chunk` is not a Python int >= 1.
  """
  values = lax.stop_gradient(codes.values)
  return _encoder_values(values, lax.stop_gradient(x_BxD), b_dec_D, W_enc_DxM, b_enc_M,
                         codes.rows, codes.cols, _check_positive(chunk, "chunk"))
