"""Controlled synthetic bimodal data (redundancy, uniqueness, synergy, heterogeneity).

Follows the alignment-emergence paper (Tjandrasuwita et al. 2025 [tjandrasuwita2025]; docs/references.md):

* 8 shared bits s and 4 unique bits per modality u1, u2 (bits are +-1); modality m observes
  x_m = [s, u_m] (12-d).
* The label depends on 8 selected bits: ``8 - num_unique`` shared bits (redundancy) and
  ``num_unique`` unique bits (uniqueness U), taken alternately from u1 and u2 so both modalities
  hold unique label information. logits = bits @ W + b with W ~ N(0, 1) (8 x C), and
  y ~ softmax(logits / T) with T = 0.05 (near-deterministic). The biases b are solved so that
  p(y) is uniform over the 2^8 equally likely bit patterns (the paper rebalances to uniform p(y)).
* ``synergy=True`` (beyond the released code): the unique label bits are XORs u1[j] * u2[j] (in
  +-1 coding), so they are invisible to either modality alone and need both jointly
  (num_unique <= 4).
* Heterogeneity: modality 2 (or both with ``heterogeneity_both``) passes through a fixed random
  tanh MLP of ``heterogeneity_depth`` layers (width 12, weights N(0, 1/fan_in)); depth 0 leaves
  it unchanged.

Everything is a pure function of the PRNG key; :func:`make_bimodal` returns the arrays and the
ground truth.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp

NUM_SHARED = 8
NUM_UNIQUE_PER_MODALITY = 4
NUM_LABEL_BITS = 8


def _label_bits(shared, unique1, unique2, num_unique: int, synergy: bool):
  """The 8 bits the label depends on: (8 - U) shared, then U unique (alternating u1 / u2)."""
  parts = [shared[..., :NUM_LABEL_BITS - num_unique]]
  if synergy:
    parts.append(unique1[..., :num_unique] * unique2[..., :num_unique])
  else:
    for j in range(num_unique):
      source = unique1 if j % 2 == 0 else unique2
      parts.append(source[..., j // 2: j // 2 + 1])
  return jnp.concatenate(parts, axis=-1)


def _balanced_biases(weights_8xC, temperature: float, iterations: int = 200):
  """Biases making p(y) uniform over all 2^8 equally likely label-bit patterns."""
  patterns = jnp.asarray(list(itertools.product([-1.0, 1.0], repeat=NUM_LABEL_BITS)))
  logits = patterns @ weights_8xC
  classes = weights_8xC.shape[1]

  def step(bias, _):
    marginal = jax.nn.softmax((logits + bias) / temperature, axis=1).mean(axis=0)
    return bias - temperature * jnp.log(marginal * classes), None

  bias, _ = jax.lax.scan(step, jnp.zeros(classes), None, length=iterations)
  return bias


def heterogeneity_mlp(key, depth: int, width: int = 12):
  """Weights of the fixed random tanh MLP (list of (W, b))."""
  layers = []
  for k in jax.random.split(key, max(depth, 1))[:depth]:
    kw, kb = jax.random.split(k)
    layers.append((jax.random.normal(kw, (width, width)) / jnp.sqrt(width),
                   0.1 * jax.random.normal(kb, (width,))))
  return layers


def apply_mlp(layers, x):
  for w, b in layers:
    x = jnp.tanh(x @ w + b)
  return x


@functools.partial(jax.jit, static_argnames=("n", "num_unique", "heterogeneity_depth", "synergy",
                                             "heterogeneity_both", "num_classes"))
def make_bimodal(key, n: int, num_unique: int, heterogeneity_depth: int = 0, *,
                 synergy: bool = False, heterogeneity_both: bool = False,
                 temperature: float = 0.05, num_classes: int = 4,
                 task_key=None):
  """Sample n examples. Returns a dict with x1, x2 (n x 12), y (n,) and the ground truth.

  ``task_key`` fixes the label function and the heterogeneity MLPs (defaults to ``key``), so
  train and evaluation sets of one task share them: pass the same task_key with different keys.
  """
  if not 0 <= num_unique <= NUM_LABEL_BITS:
    raise ValueError(f"num_unique must be in [0, 8], got {num_unique}")
  if synergy and num_unique > NUM_UNIQUE_PER_MODALITY:
    raise ValueError(f"synergy uses XORs of paired unique bits: num_unique <= 4, got {num_unique}")
  task_key = key if task_key is None else task_key
  k_w, k_h1, k_h2 = jax.random.split(task_key, 3)
  k_bits, k_label = jax.random.split(key)
  bits = jnp.where(jax.random.bernoulli(k_bits, 0.5, (n, NUM_SHARED + 2 * NUM_UNIQUE_PER_MODALITY)),
                   1.0, -1.0)
  shared = bits[:, :NUM_SHARED]
  unique1 = bits[:, NUM_SHARED:NUM_SHARED + NUM_UNIQUE_PER_MODALITY]
  unique2 = bits[:, NUM_SHARED + NUM_UNIQUE_PER_MODALITY:]
  weights = jax.random.normal(k_w, (NUM_LABEL_BITS, num_classes))
  bias = _balanced_biases(weights, temperature)
  label_bits = _label_bits(shared, unique1, unique2, num_unique, synergy)
  logits = (label_bits @ weights + bias) / temperature
  y = jax.random.categorical(k_label, logits)
  x1 = jnp.concatenate([shared, unique1], axis=1)
  x2 = jnp.concatenate([shared, unique2], axis=1)
  mlp2 = heterogeneity_mlp(k_h2, heterogeneity_depth)
  x2 = apply_mlp(mlp2, x2)
  if heterogeneity_both:
    x1 = apply_mlp(heterogeneity_mlp(k_h1, heterogeneity_depth), x1)
  return {"x1": x1, "x2": x2, "y": y.astype(jnp.int32), "shared": shared, "unique1": unique1,
          "unique2": unique2, "label_bits": label_bits, "label_weights": weights,
          "label_bias": bias}


def bayes_accuracy(label_bits, weights, bias, temperature: float = 0.05) -> float:
  """Accuracy of predicting y from the label bits themselves (the best any model can do)."""
  p = jax.nn.softmax((label_bits @ weights + bias) / temperature, axis=1)
  return float(jnp.mean(jnp.max(p, axis=1)))


