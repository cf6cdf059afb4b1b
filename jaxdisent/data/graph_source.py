"""Image sources with a known factor graph (GEM, issue 12): the protocol the GEM method reads.

A graph source is a finite *pool* of N images, addressed by pool index 0..N-1. Each image has

* per-image factor values in [0, 1] (``pool_values(index_N) -> values_NxA``), one column per named
  attribute (``attribute_names``);
* the image itself (``pool_images(index_N) -> images_NxHxWxC``, rendered inside jit);

and the source knows the ground-truth weighted adjacency ``true_adjacency() -> W_AxA`` with
``W[i, j]`` the weight of the relation i -> j (0 = no edge, asymmetric, cycles allowed).

Training batches draw pool indices uniformly, each a pure function of (seed, step, global example
index) with the GRAPH_DATA PRNG stream, so resume is exact and any device split sees the same
examples. A relation oracle scores pool images by index, so a scores file written by
``launch/oracle.py`` lines up with training batches.
"""

from __future__ import annotations

import abc
import hashlib
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent import rng as rng_streams
from jaxdisent.rng import per_example_keys, step_key


class GraphSource(abc.ABC):
  """A pool of images with named per-image factor values and a ground-truth factor graph."""

  name = "graph_source"
  jittable = True

  @property
  @abc.abstractmethod
  def attribute_names(self) -> tuple[str, ...]:
    ...

  @property
  @abc.abstractmethod
  def pool_size(self) -> int:
    ...

  @property
  @abc.abstractmethod
  def observation_shape(self) -> tuple[int, int, int]:
    ...

  @abc.abstractmethod
  def pool_values(self, index_N) -> jax.Array:
    """float32 (N, A) factor values in [0, 1] of pool images `index_N` (jit-friendly)."""

  @abc.abstractmethod
  def pool_images(self, index_N) -> jax.Array:
    """float32 (N, H, W, C) images in [0, 1] of pool images `index_N` (jit-friendly)."""

  @abc.abstractmethod
  def true_adjacency(self) -> np.ndarray:
    """(A, A) ground-truth weighted adjacency, W[i, j] = weight of i -> j; None if unknown."""

  @abc.abstractmethod
  def settings(self) -> dict:
    """Everything that determines the pool (hashed into the fingerprint of scores files)."""

  @property
  def num_attributes(self) -> int:
    return len(self.attribute_names)

  def fingerprint(self) -> str:
    """Hash of the pool definition: a scores file records it and is refused for another pool."""
    blob = json.dumps({"name": self.name, "attributes": list(self.attribute_names),
                       "pool_size": int(self.pool_size), **self.settings()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

  def check_index(self, index_N) -> np.ndarray:
    index = np.asarray(index_N)
    if index.size and (index.min() < 0 or index.max() >= self.pool_size):
      raise ValueError(f"pool index out of range [0, {self.pool_size}) for {self.name}: got "
                       f"min {index.min()}, max {index.max()}")
    return index

  def batch_indices(self, seed: int, step, start: int, size: int) -> jax.Array:
    keys = per_example_keys(step_key(seed, step, salt=rng_streams.GRAPH_DATA),
                            rng_streams.example_indices(start, size))
    return jax.vmap(lambda k: jax.random.randint(k, (), 0, self.pool_size))(keys).astype(jnp.int32)

  def batch(self, seed: int, step, start: int, size: int) -> dict:
    """{'image', 'values', 'pool_index', 'index' (global example index)} of one batch slice."""
    pool_index = self.batch_indices(seed, step, start, size)
    return {"image": self.pool_images(pool_index), "values": self.pool_values(pool_index),
            "pool_index": pool_index, "index": rng_streams.example_indices(start, size, jnp.int32)}


def check_adjacency(weights_AxA, names) -> np.ndarray:
  w = np.asarray(weights_AxA, np.float64)
  if w.shape != (len(names), len(names)):
    raise ValueError(f"adjacency must be {len(names)}x{len(names)} for attributes {list(names)}; "
                     f"got shape {w.shape}")
  if not np.isfinite(w).all():
    raise ValueError("adjacency has NaN/inf entries")
  if np.any(np.diag(w) != 0):
    raise ValueError("adjacency has self-loops (nonzero diagonal); relations are between factors")
  return w


