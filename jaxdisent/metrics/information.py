"""Discretisation, discrete entropy and mutual information as jit-compiled JAX.

These are the building blocks of MIG, modularity and the unsupervised scores. They follow
disentanglement_lib's ``utils`` module:

* ``histogram_discretize``: each code dimension is cut into ``num_bins`` equal-width bins between
  its own min and max (``np.histogram`` edges), and values are mapped with ``np.digitize`` against
  the left edges, giving classes 1..num_bins; we return 0..num_bins-1 (same partition).
* ``discrete_mutual_info``: ``sklearn.metrics.mutual_info_score`` for every (code, factor) pair,
  in nats, from the contingency table: sum_xy p(x,y) log(p(x,y) / (p(x) p(y))).
* ``discrete_entropy``: H(y) in nats (= mutual_info_score(y, y)).

All functions take arrays laid out (N samples, D dims), the layout users have, rather than
disentanglement_lib's transposed (D, N).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _as_samples_by_dims(x, name: str):
  x = jnp.asarray(x)
  if x.ndim == 1:
    x = x[:, None]
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape (N, D); got {x.shape}")
  return x


@functools.partial(jax.jit, static_argnames="num_bins")
def histogram_discretize(codes_NxD, num_bins: int = 20):
  """Equal-width binning per dimension: int32 classes in [0, num_bins)."""
  codes = jnp.asarray(codes_NxD, jnp.float32)
  low = codes.min(axis=0)
  high = codes.max(axis=0)
  # np.histogram's edges; for a constant dimension numpy widens the range to +-0.5.
  constant = high <= low
  low = jnp.where(constant, low - 0.5, low)
  high = jnp.where(constant, high + 0.5, high)
  fractions = jnp.arange(num_bins, dtype=jnp.float32) / num_bins
  left_edges = low[None, :] + fractions[:, None] * (high - low)[None, :]     # num_bins x D
  # np.digitize(x, left_edges) - 1 = number of left edges <= x, minus one
  return (jnp.sum(codes[None, :, :] >= left_edges[:, None, :], axis=0) - 1).astype(jnp.int32)


def _contingency(a_NxA, b_NxB, a_sizes: int, b_sizes: int):
  """Counts (A, B, a_sizes, b_sizes) of every pair of discrete columns, by one-hot matmul."""
  n = a_NxA.shape[0]
  one_a = jax.nn.one_hot(a_NxA, a_sizes, dtype=jnp.float32).reshape(n, -1)
  one_b = jax.nn.one_hot(b_NxB, b_sizes, dtype=jnp.float32).reshape(n, -1)
  counts = jnp.dot(one_a.T, one_b, precision=jax.lax.Precision.HIGHEST)
  return counts.reshape(a_NxA.shape[1], a_sizes, b_NxB.shape[1], b_sizes).transpose(0, 2, 1, 3)


def _mi_from_counts(counts):
  n = counts.sum(axis=(-2, -1), keepdims=True)
  p_xy = counts / n
  p_x = p_xy.sum(axis=-1, keepdims=True)
  p_y = p_xy.sum(axis=-2, keepdims=True)
  ratio = jnp.where(p_xy > 0, p_xy / jnp.maximum(p_x * p_y, 1e-30), 1.0)
  return jnp.sum(p_xy * jnp.log(ratio), axis=(-2, -1))


@functools.partial(jax.jit, static_argnames=("a_classes", "b_classes"))
def _discrete_mi(a, b, a_classes: int, b_classes: int):
  return jnp.maximum(_mi_from_counts(_contingency(a, b, a_classes, b_classes)), 0.0)


def discrete_mutual_info(codes_NxD, factors_NxK):
  """Mutual information (nats) between every discrete code column and factor column: (D, K)."""
  codes = _as_samples_by_dims(codes_NxD, "codes").astype(jnp.int32)
  factors = _as_samples_by_dims(factors_NxK, "factors").astype(jnp.int32)
  if codes.shape[0] != factors.shape[0]:
    raise ValueError(f"codes and factors need the same number of samples; got {codes.shape[0]} "
                     f"and {factors.shape[0]}")
  codes = _dense_labels(codes)
  factors = _dense_labels(factors)
  return _discrete_mi(codes, factors, int(codes.max()) + 1, int(factors.max()) + 1)


def discrete_entropy(factors_NxK):
  """Entropy (nats) of each discrete column: (K,)."""
  factors = _dense_labels(_as_samples_by_dims(factors_NxK, "factors").astype(jnp.int32))
  classes = int(factors.max()) + 1
  counts = jax.vmap(lambda col: jnp.bincount(col, length=classes), in_axes=1)(factors)
  p = counts / factors.shape[0]
  return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=1)


def _dense_labels(x):
  """Relabel each column's values to 0..(#distinct - 1) so one-hot widths stay small.

  Labels may be any integers (sklearn treats them as categories); this keeps that semantics.
  """
  x = np.asarray(x)
  if x.size == 0:
    return jnp.asarray(x)
  if x.min() >= 0 and x.max() < 4096:
    return jnp.asarray(x)
  out = np.empty_like(x)
  for j in range(x.shape[1]):
    out[:, j] = np.unique(x[:, j], return_inverse=True)[1].reshape(-1)
  return jnp.asarray(out)
