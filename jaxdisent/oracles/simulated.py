"""The simulated oracle: a noisy MLLM attribute scorer built from the true factor values.

Per image n and attribute a (our model of an MLLM answering "rate <attribute> from 0 to 10"):

* with probability ``accuracy`` the answer is informed: ``round_to_levels(10 * v[n, a] +
  noise_std * eps)`` clipped to [0, 10], with v in [0, 1] the true factor value, eps ~ N(0, 1) and
  ``levels`` equally spaced answer values (11 = integers 0..10);
* otherwise it is a uniformly random answer among the levels (a wrong reading of the image);
* independently, with probability ``missing_rate`` there is no answer (valid = False).

``accuracy`` is the probability of an informed answer; GEM reports 88.4% mean accuracy for GPT-4o
on 16 CelebA attributes, which is our default. Every draw is keyed by (oracle seed, ORACLE stream,
pool index), so scores are a pure function of the image's pool index: the data pipeline can
recompute them and a scores file written by launch/oracle.py holds the same numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent import rng as rng_streams
from jaxdisent.oracles.base import SCALE_MAX, Scores


def check_settings(accuracy: float, noise_std: float, levels: int, missing_rate: float):
  if not 0.0 <= accuracy <= 1.0:
    raise ValueError(f"oracle.accuracy must be in [0, 1], got {accuracy}")
  if not 0.0 <= missing_rate < 1.0:
    raise ValueError(f"oracle.missing_rate must be in [0, 1), got {missing_rate}")
  if noise_std < 0:
    raise ValueError(f"oracle.noise_std must be >= 0, got {noise_std}")
  if levels < 2:
    raise ValueError(f"oracle.levels must be >= 2 (11 = integer answers 0..10), got {levels}")


def simulated_scores(values_NxA, pool_index_N, *, seed: int, accuracy: float, noise_std: float,
                     levels: int, missing_rate: float):
  """(scores (N, A) with NaN where missing, valid (N, A)); jit-friendly (settings static)."""
  values = jnp.asarray(values_NxA, jnp.float32)
  base = jax.random.fold_in(jax.random.key(seed), rng_streams.ORACLE)
  keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(pool_index_N, jnp.int32))
  step = SCALE_MAX / (levels - 1)

  def one(key, v):
    k_informed, k_noise, k_random, k_missing = jax.random.split(key, 4)
    shape = v.shape
    informed = jax.random.uniform(k_informed, shape) < accuracy
    noisy = SCALE_MAX * v + noise_std * jax.random.normal(k_noise, shape)
    answer = jnp.clip(jnp.round(noisy / step), 0, levels - 1) * step
    random = jax.random.randint(k_random, shape, 0, levels).astype(jnp.float32) * step
    valid = jax.random.uniform(k_missing, shape) >= missing_rate
    score = jnp.where(informed, answer, random)
    return jnp.where(valid, score, jnp.nan), valid

  return jax.vmap(one)(keys, values)


# One program per settings and shape, shared by every oracle (a jit per oracle object traced and
# lowered it again for each new one).
_simulated_scores_jit = jax.jit(simulated_scores, static_argnames=(
    "seed", "accuracy", "noise_std", "levels", "missing_rate"))


class SimulatedOracle:
  kind = "simulated"

  def __init__(self, source, *, seed=0, accuracy=0.884, noise_std=0.5, levels=11,
               missing_rate=0.0):
    check_settings(accuracy, noise_std, levels, missing_rate)
    self.source = source
    self.settings = dict(seed=int(seed), accuracy=float(accuracy), noise_std=float(noise_std),
                         levels=int(levels), missing_rate=float(missing_rate))

  @classmethod
  def from_config(cls, source, oracle_config):
    return cls(source, seed=oracle_config.get("seed", 0),
               accuracy=oracle_config.get("accuracy", 0.884),
               noise_std=oracle_config.get("noise_std", 0.5),
               levels=oracle_config.get("levels", 11),
               missing_rate=oracle_config.get("missing_rate", 0.0))

  def score_indices(self, pool_index_N) -> Scores:
    index = self.source.check_index(pool_index_N)
    scores, valid = _simulated_scores_jit(self.source.pool_values(index), index, **self.settings)
    return Scores(np.asarray(scores), np.asarray(valid), self.source.attribute_names, index,
                  {"oracle": "simulated", **self.settings})
