"""Sparse autoencoders: BatchTopK (Bussmann et al. 2024), TopK (Gao et al. 2024), ReLU + L1,
JumpReLU (Rajamanoharan et al. 2024).

All share pre-activations ``relu(W_enc (x - b_dec) + b_enc)`` and a linear decoder
``z W_dec + b_dec`` whose rows (atoms) are kept at unit norm by the method. The modules only hold
parameters and the pure pieces; sparsification that needs batch-wide statistics (BatchTopK) lives
in :mod:`jaxdisent.losses.sae` so it can run across devices.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _unit_rows(key, shape, dtype=jnp.float32):
  w = jax.random.normal(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=1, keepdims=True)


class SparseAutoencoder(nn.Module):
  """Parameters: W_enc (d, M), b_enc (M), W_dec (M, d) with unit rows, b_dec (d), and with
  `jumprelu_params` (JumpReLU) log_threshold (M). W_enc starts as W_dec's transpose. Which kind
  sparsifies the pre-activations is the method's business (jaxdisent.losses.sae_kinds)."""

  d_in: int
  dict_size: int
  jumprelu_params: bool = False
  jumprelu_init_threshold: float = 0.001

  def setup(self):
    self.W_dec = self.param("W_dec", _unit_rows, (self.dict_size, self.d_in))
    self.W_enc = self.param("W_enc", lambda key, shape: self.W_dec.T, (self.d_in, self.dict_size))
    self.b_enc = self.param("b_enc", nn.initializers.zeros_init(), (self.dict_size,))
    self.b_dec = self.param("b_dec", nn.initializers.zeros_init(), (self.d_in,))
    if self.jumprelu_params:
      self.log_threshold = self.param(
          "log_threshold", nn.initializers.constant(jnp.log(self.jumprelu_init_threshold)),
          (self.dict_size,))

  def pre_acts(self, x_BxD):
    return jax.nn.relu((x_BxD - self.b_dec) @ self.W_enc + self.b_enc)

  def decode(self, z_BxM):
    return z_BxM @ self.W_dec + self.b_dec

  def threshold(self):
    return jnp.exp(self.log_threshold)

  def __call__(self, x_BxD):
    return self.pre_acts(x_BxD)
