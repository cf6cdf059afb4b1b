"""Named PRNG streams: every random draw of a run is keyed by (seed, step, stream).

A stream is the salt folded into the run's seed before the step (:func:`step_key`). Two consumers that share a stream draw correlated
numbers, so every consumer gets its own constant here; a new data source or loss term adds one
(never reuse a value, never change one: resumed runs replay their streams).
"""

import jax
import jax.numpy as jnp

GROUND_TRUTH_DATA = 1     # factor sampling of ground-truth image sources (procedural, TFDS)
LOSS = 2                  # the per-step key handed to Method.loss (reparameterisation noise ...)
SYNTHETIC_VLM = 3         # synthetic paired image/text embeddings
EMBEDDING_FILES = 4       # row sampling from user embedding files
MULTIMODAL_SEQUENCES = 7  # synthetic multimodal sequences (DecAlign)
GRAPH_DATA = 8            # factor-graph sources (correlated dSprites, pendulum)
ORACLE = 9                # simulated relation-oracle noise

ALL = {name: value for name, value in globals().items() if name.isupper() and name != "ALL"}
assert len(set(ALL.values())) == len(ALL), "two PRNG streams share a value"


def example_indices(start, size: int, dtype=None) -> jax.Array:
  """Global indices [start, start + size) of one batch slice; ``start`` may be traced.

  Batch functions take ``start`` as a traced argument, so the devices' slices of one global batch
  (starts 0, B/n, 2B/n, ...) share one compiled program instead of compiling one each. Same
  values and dtype as ``jnp.arange(start, start + size)``.
  """
  index = start + jnp.arange(size)
  return index if dtype is None else index.astype(dtype)


def per_example_keys(rng: jax.Array, indices: jax.Array) -> jax.Array:
  """One PRNG key per example, keyed by the example's *global* index in the batch.

  Keying randomness by global index (instead of by device) is what makes a global batch produce
  the same numbers on 1 device or on N devices.
  """
  return jax.vmap(lambda i: jax.random.fold_in(rng, i))(indices)


def step_key(seed: int, step: int | jax.Array, salt: int = 0) -> jax.Array:
  """The PRNG key of one training step: a pure function of (seed, step, salt)."""
  key = jax.random.fold_in(jax.random.key(seed), salt)
  return jax.random.fold_in(key, step)
