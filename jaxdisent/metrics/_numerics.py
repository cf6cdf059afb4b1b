"""Numerical helpers shared by the metric cores."""

import jax.numpy as jnp


def divide(x, constant):
  """x / constant, correctly rounded under jit.

  XLA rewrites a division by a compile-time constant into a multiplication by its reciprocal,
  which is not correctly rounded (under jit, 3000 / 3000 can come out 1.0000001); a divisor that
  depends on the data (NaN only where x is NaN anyway) keeps the true division.
  """
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  return x / jnp.where(jnp.isnan(x), jnp.asarray(jnp.nan, x.dtype), jnp.asarray(constant, x.dtype))
