"""Mixed precision: ``train.compute_dtype = 'bfloat16'`` (default ``'float32'``: no change).

Parameters, optimizer state, the methods' running statistics (model state) and the gradients stay
float32; the per-device step casts the floating parameters and the floating batch arrays to the
compute dtype before the method's loss, so matmuls and convolutions run in bfloat16, and casts the
loss and metrics back to float32 (the gradient of the cast returns float32 gradients). The model
state the loss returns is cast back to the dtypes it came in. This is the "params in f32, compute in
bf16" recipe of jmp / dictionary_learning's autocast, applied to every method without touching it.

What stays exact: BatchTopK's threshold is searched on float32 bit patterns of the (bfloat16)
pre-activations, so it is the exact k*B-th largest value; bfloat16's coarse grid makes ties at the
threshold common, which overflow the sparse list and take the dense fallback (the same set of
entries >= t as float32 semantics give on the same values; tested, 1 and 4 devices).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def compute_dtype(config):
  """The compute dtype ``config.train.compute_dtype`` names (None: float32, nothing cast)."""
  train = config.get("train", None) if config is not None else None
  name = train.get("compute_dtype", "float32") if train is not None else "float32"
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"train.compute_dtype={name!r}: use one of {sorted(COMPUTE_DTYPES)} "
                     "(parameters and optimizer state stay float32 either way)")
  return COMPUTE_DTYPES[name]


def cast_floating(tree, dtype):
  """Every floating leaf of ``tree`` as ``dtype``; integer / bool leaves unchanged."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree)


def like(tree, reference):
  """``tree``'s leaves cast to the dtypes of ``reference``'s (same structure)."""
  return jax.tree.map(lambda x, r: jnp.asarray(x).astype(jnp.asarray(r).dtype), tree, reference)


def mixed_loss(method, dtype, params, model_state, batch, rng, step, axis_name):
  """``method.loss`` with params and batch in ``dtype``; loss, metrics and model state back in
  float32 / their own dtypes (see the module docstring)."""
  loss, (metrics, new_state) = method.loss(cast_floating(params, dtype), model_state,
                                           cast_floating(batch, dtype), rng, step,
                                           axis_name=axis_name)
  metrics = cast_floating(metrics, jnp.float32)
  return loss.astype(jnp.float32), (metrics, like(new_state, model_state))
