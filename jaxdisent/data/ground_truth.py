"""The interface every ground-truth-factor image dataset follows.

A dataset is a finite grid of factor combinations (mixed radix, last factor varies fastest, as in
dSprites' own ordering) and a way to turn factor classes into images. Everything the training loop
and the disentanglement metrics need is derived from those two things:

* ``sample_factors(rng, n)`` draws factor classes uniformly from the grid;
* ``images_from_factors(factors_NxK)`` renders (or looks up) the matching images;
* ``batch(seed, step, start, size)`` is the training batch as a pure function of its arguments, so
  that resuming a run reproduces the exact batches of an uninterrupted one.
"""

from __future__ import annotations

import abc
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent import rng as rng_streams
from jaxdisent.rng import per_example_keys, step_key


class GroundTruthData(abc.ABC):
  """A finite grid of ground-truth factors and the images they produce."""

  name: str = "ground_truth"

  @property
  @abc.abstractmethod
  def factor_names(self) -> tuple[str, ...]:
    """Names of the K factors, in grid order (last varies fastest)."""

  @property
  @abc.abstractmethod
  def factor_sizes(self) -> tuple[int, ...]:
    """Number of classes of each factor."""

  @property
  @abc.abstractmethod
  def observation_shape(self) -> tuple[int, int, int]:
    """(height, width, channels) of one image."""

  @abc.abstractmethod
  def images_from_factors(self, factors_NxK) -> jax.Array:
    """float32 images in [0, 1] of shape (N, H, W, C) for integer factor classes (N, K)."""

  # ---- derived API -------------------------------------------------------------------------

  @property
  def num_factors(self) -> int:
    return len(self.factor_sizes)

  @property
  def num_combinations(self) -> int:
    return int(np.prod(self.factor_sizes))

  def factor_values(self) -> list[np.ndarray]:
    """The physical value of each class of each factor (defaults to the class index)."""
    return [np.arange(s, dtype=np.float32) for s in self.factor_sizes]

  def _strides(self) -> np.ndarray:
    sizes = np.asarray(self.factor_sizes, dtype=np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

  def factors_to_index(self, factors_NxK) -> np.ndarray:
    """Position of each factor combination in the grid (0 .. num_combinations - 1)."""
    factors = np.asarray(factors_NxK, dtype=np.int64)
    self._check_factors(factors)
    return factors @ self._strides()

  def index_to_factors(self, index_N) -> np.ndarray:
    """Inverse of :meth:`factors_to_index`."""
    index = np.asarray(index_N, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= self.num_combinations):
      raise ValueError(
          f"index out of range [0, {self.num_combinations}) for {self.name}: "
          f"got min {index.min()}, max {index.max()}")
    sizes = np.asarray(self.factor_sizes, dtype=np.int64)
    return (index[..., None] // self._strides()) % sizes

  def _check_factors(self, factors: np.ndarray) -> None:
    if factors.ndim != 2 or factors.shape[1] != self.num_factors:
      raise ValueError(
          f"factors must have shape (N, {self.num_factors}) for {self.name} "
          f"({', '.join(self.factor_names)}); got {factors.shape}")
    sizes = np.asarray(self.factor_sizes)
    if factors.size and ((factors < 0).any() or (factors >= sizes).any()):
      bad = [n for j, n in enumerate(self.factor_names)
             if (factors[:, j] < 0).any() or (factors[:, j] >= sizes[j]).any()]
      raise ValueError(f"factor classes out of range for {bad}; sizes are "
                       f"{dict(zip(self.factor_names, self.factor_sizes))}")

  def sample_factors(self, rng: jax.Array, n: int) -> jax.Array:
    """n factor combinations drawn uniformly from the grid, int32 of shape (n, K)."""
    keys = jax.random.split(rng, self.num_factors)
    cols = [jax.random.randint(k, (n,), 0, s) for k, s in zip(keys, self.factor_sizes)]
    return jnp.stack(cols, axis=1).astype(jnp.int32)

  def sample(self, rng: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """(factors (n, K), images (n, H, W, C)) drawn uniformly from the grid."""
    factors = self.sample_factors(rng, n)
    return factors, self.images_from_factors(factors)

  def batch_factors(self, seed: int, step: int, start: int, size: int) -> jax.Array:
    """Factors of examples [start, start + size) of the global batch of `step`.

    Each example's factors depend only on (seed, step, its global index), so any split of the
    global batch over processes or devices sees the same examples.
    """
    keys = per_example_keys(step_key(seed, step, salt=rng_streams.GROUND_TRUTH_DATA), rng_streams.example_indices(start, size))
    one = lambda k: self.sample_factors(k, 1)[0]
    return jax.vmap(one)(keys)

  def batch(self, seed: int, step: int, start: int, size: int) -> dict[str, jax.Array]:
    """Training batch: {'image', 'factors', 'index'} for global examples [start, start + size)."""
    factors = self.batch_factors(seed, step, start, size)
    return {
        "image": self.images_from_factors(factors),
        "factors": factors,
        "index": rng_streams.example_indices(start, size, jnp.int32),
    }


def describe(data: GroundTruthData) -> str:
  parts = ", ".join(f"{n}={s}" for n, s in zip(data.factor_names, data.factor_sizes))
  return f"{data.name}: {data.num_combinations:,} combinations ({parts}), images {data.observation_shape}"


def check_factor_names(names: Sequence[str], data: GroundTruthData) -> None:
  unknown = [n for n in names if n not in data.factor_names]
  if unknown:
    raise ValueError(f"unknown factor(s) {unknown} for {data.name}; known: {data.factor_names}")
