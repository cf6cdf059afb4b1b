"""Correlated dSprites: dSprites factors drawn from a linear structural model (Gaussian copula).

Structural model (our choice, in the spirit of Traeuble et al. 2021's correlated dSprites):

    x = B^T x + e,   e ~ N(0, I_5)   =>   x = (I - B^T)^{-1} e

over the five dSprites factors (shape, scale, orientation, posX, posY), with ``B[i, j]`` the weight
of the relation i -> j. Cycles are allowed (the model is the equilibrium of a linear feedback
system) as long as the spectral radius of B is below 1. Each x_k is Gaussian with variance
``Sigma_kk`` (Sigma = M M^T, M = (I - B^T)^{-1}); the factor class is
``floor(Phi(x_k / sqrt(Sigma_kk)) * size_k)``, so every factor keeps dSprites' *uniform marginal*
and only the dependencies between factors change. The ground-truth weighted adjacency is B.

Default edges (``data.edges``; ``i->j:w`` comma-separated): shape -> scale 0.8, scale -> posY 0.7,
posX -> orientation 0.6 and orientation -> posX 0.3 (a two-way relation with different weights);
nothing else (so, e.g., shape and posX are independent).

Correlation strength (Traeuble et al. 2021's knob): ``data.correlation = rho`` in [0, 1) replaces
``data.edges`` by the pairs of ``data.correlated_pairs`` (default ``shape->scale,posX->posY``), each
edge with weight ``w = rho / sqrt(1 - rho^2)``: for a -> b, x_b = w x_a + e_b, so the Gaussian
latents of the pair have correlation exactly rho (the factor classes, after the copula, somewhat
less: shape has three classes). rho = 0 gives independent factors and an empty graph.
``data.correlation < 0`` (the default, -1) keeps ``data.edges``.

The pool image of index n is rendered by the procedural dSprites renderer
(:mod:`jaxdisent.data.dsprites`) from classes drawn with the key ``fold_in(key(data.seed), n)``
(stream GRAPH_DATA), so the pool does not depend on the training seed and a scores file stays
valid across training runs. Factor values handed to oracles are ``class / (size - 1)`` in [0, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent import rng as rng_streams
from jaxdisent.data.dsprites import DSprites, _images_from_factors
from jaxdisent.data.graph_source import GraphSource, check_adjacency

DEFAULT_EDGES = "shape->scale:0.8,scale->posY:0.7,posX->orientation:0.6,orientation->posX:0.3"
DEFAULT_PAIRS = "shape->scale,posX->posY"


def edges_for_correlation(pairs: str, correlation: float) -> str:
  """``data.edges`` text whose pairs have latent correlation ``correlation`` (module docstring)."""
  rho = float(correlation)
  if not 0.0 <= rho < 1.0:
    raise ValueError(f"data.correlation={correlation} must be in [0, 1) (or < 0 to use data.edges)")
  items = [t.strip() for t in (pairs or "").split(",") if t.strip()]
  if not items or any(":" in t or "->" not in t for t in items):
    raise ValueError(f"data.correlated_pairs={pairs!r}: write 'a->b,c->d' over the factor names "
                     "(no weights: data.correlation sets them), e.g. 'shape->scale,posX->posY'")
  weight = rho / np.sqrt(1.0 - rho * rho)
  return ",".join(f"{t}:{weight:.12g}" for t in items)


def parse_edges(text: str, names) -> np.ndarray:
  """'a->b:w,...' -> (A, A) weights. Unknown names and malformed entries are errors."""
  weights = np.zeros((len(names), len(names)))
  for item in [t.strip() for t in text.split(",") if t.strip()]:
    try:
      pair, weight = item.split(":")
      source, target = [s.strip() for s in pair.split("->")]
      weight = float(weight)
    except ValueError as error:
      raise ValueError(f"malformed edge {item!r} in data.edges; write 'source->target:weight', "
                       "e.g. 'shape->scale:0.8'") from error
    unknown = [n for n in (source, target) if n not in names]
    if unknown:
      raise ValueError(f"unknown factor name(s) {unknown} in data.edges; known: {list(names)}")
    weights[names.index(source), names.index(target)] = weight
  return check_adjacency(weights, names)


class CorrelatedDSprites(GraphSource):
  """dSprites with factors drawn from a structural model; see the module docstring."""

  name = "correlated_dsprites"

  def __init__(self, edges: str = DEFAULT_EDGES, pool_size: int = 100_000, seed: int = 0,
               pairs: str = DEFAULT_PAIRS):
    self.grid = DSprites()  # uniform grid: what the disentanglement metrics sample
    self._names = DSprites.FACTOR_NAMES
    self.edges = edges
    self.weights = parse_edges(edges, list(self._names))
    self.pairs_text = pairs
    radius = float(np.max(np.abs(np.linalg.eigvals(self.weights))))
    if radius >= 1.0:
      raise ValueError(f"the structural model in data.edges is unstable (spectral radius of the "
                       f"weights {radius:.3f} >= 1); lower the weights of the cycle")
    if pool_size < 1:
      raise ValueError(f"data.pool_size must be positive, got {pool_size}")
    self._pool_size = int(pool_size)
    self.seed = int(seed)
    mixing = np.linalg.inv(np.eye(len(self._names)) - self.weights.T)
    std = np.sqrt(np.diag(mixing @ mixing.T))
    self._mixing = jnp.asarray(mixing / std[:, None], jnp.float32)  # rows give unit-variance x
    self._sizes = jnp.asarray(DSprites.FACTOR_SIZES, jnp.int32)

  @classmethod
  def from_config(cls, data_config):
    edges = data_config.get("edges", DEFAULT_EDGES)
    correlation = float(data_config.get("correlation", -1.0))
    if correlation >= 0:
      edges = edges_for_correlation(data_config.get("correlated_pairs", DEFAULT_PAIRS), correlation)
    return cls(edges=edges, pairs=data_config.get("correlated_pairs", DEFAULT_PAIRS),
               pool_size=int(data_config.get("pool_size", 100_000)),
               seed=int(data_config.get("seed", 0)))

  @property
  def attribute_names(self):
    return self._names

  @property
  def pool_size(self):
    return self._pool_size

  @property
  def observation_shape(self):
    return self.grid.observation_shape

  def settings(self):
    return {"edges": self.edges, "seed": self.seed}

  def true_adjacency(self):
    return self.weights.copy()

  def correlated_pairs(self) -> list[tuple[int, int]]:
    """Factor-index pairs the pair measures score: the true graph's edges (each unordered pair
    once), or, when it has none (data.correlation=0), the pairs of data.correlated_pairs."""
    a, b = np.nonzero(self.weights)
    pairs = sorted({(min(i, j), max(i, j)) for i, j in zip(a.tolist(), b.tolist()) if i != j})
    if pairs:
      return pairs
    names = list(self._names)
    text = edges_for_correlation(self.pairs_text, 0.0)
    return [tuple(sorted(names.index(n.strip()) for n in item.split(":")[0].split("->")))
            for item in text.split(",")]

  def pool_factors(self, index_N) -> jax.Array:
    """int32 (N, 5) dSprites factor classes of pool images `index_N`."""
    base = jax.random.fold_in(jax.random.key(self.seed), rng_streams.GRAPH_DATA)
    noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(base, i), (5,)))(
        jnp.asarray(index_N, jnp.int32))
    x = noise @ self._mixing.T
    uniform = jax.scipy.stats.norm.cdf(x)
    classes = jnp.floor(uniform * self._sizes).astype(jnp.int32)
    return jnp.clip(classes, 0, self._sizes - 1)

  def pool_values(self, index_N) -> jax.Array:
    return self.pool_factors(index_N).astype(jnp.float32) / (self._sizes - 1).astype(jnp.float32)

  def pool_images(self, index_N) -> jax.Array:
    return _images_from_factors(self.pool_factors(index_N))
