"""The disentanglement_lib convolutional VAE (Locatello et al. 2019, table 1).

Encoder (SAME padding, ReLU): conv 32 k4 s2, conv 32 k4 s2, conv 64 k``last_kernel`` s2,
conv 64 k``last_kernel`` s2, dense 256, then two dense heads (mean, log-variance).
Decoder: dense 256, dense 4*4*64, reshape, conv-transpose 64, 32, 32, C (k4 s2), Bernoulli logits.

The papers describe 4x4 kernels everywhere; disentanglement_lib's code uses 2x2 in the last two
encoder convolutions. We default to the code (``last_kernel=2``) so parameter counts match the
reference checkpoints; set ``model.last_kernel=4`` for the papers' variant.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdisent.models.layers import SpaceToDepthConv, SubpixelConvTranspose


class ConvEncoder(nn.Module):
  """``space_to_depth=True`` computes each stride-2 convolution as space-to-depth + a stride-1
  convolution (same params and outputs as nn.Conv, faster on XLA:CPU, above all its gradients;
  see layers.SpaceToDepthConv). Parameter names are nn.Conv's (Conv_0..Conv_3) either way."""

  latent_dim: int = 10
  last_kernel: int = 2
  space_to_depth: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images_BxHxWxC):
    x = images_BxHxWxC.astype(self.dtype)
    layers = ((32, 4), (32, 4), (64, self.last_kernel), (64, self.last_kernel))
    for i, (features, kernel) in enumerate(layers):
      even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0 and kernel % 2 == 0
      if self.space_to_depth and even:
        conv = SpaceToDepthConv(features, kernel, dtype=self.dtype, name=f"Conv_{i}")
      else:
        conv = nn.Conv(features, (kernel, kernel), strides=(2, 2), padding="SAME",
                       dtype=self.dtype, name=f"Conv_{i}")
      x = nn.relu(conv(x))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(256, dtype=self.dtype)(x))
    mean = nn.Dense(self.latent_dim, name="mean", dtype=self.dtype)(x)
    logvar = nn.Dense(self.latent_dim, name="logvar", dtype=self.dtype)(x)
    return mean.astype(jnp.float32), logvar.astype(jnp.float32)


class DeconvDecoder(nn.Module):
  """``subpixel=True`` computes each transposed conv as conv + depth-to-space (same params and
  outputs as nn.ConvTranspose, faster on XLA:CPU; see layers.SubpixelConvTranspose)."""

  output_shape: Sequence[int] = (64, 64, 1)
  subpixel: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, codes_BxD):
    height, width, channels = self.output_shape
    if height != 64 or width != 64:
      raise ValueError(f"the disentanglement_lib decoder makes 64x64 images, not {height}x{width}")
    x = nn.relu(nn.Dense(256, dtype=self.dtype)(codes_BxD.astype(self.dtype)))
    x = nn.relu(nn.Dense(4 * 4 * 64, dtype=self.dtype)(x))
    x = x.reshape(x.shape[0], 4, 4, 64)
    for features in (64, 32, 32):
      x = nn.relu(self._upsample(features)(x))
    logits = self._upsample(channels)(x)
    return logits.astype(jnp.float32)

  def _upsample(self, features):
    if self.subpixel:
      return SubpixelConvTranspose(features, dtype=self.dtype)
    return nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME", dtype=self.dtype)


class VAE(nn.Module):
  """Gaussian encoder + Bernoulli decoder. ``__call__`` returns (logits, mean, logvar, z)."""

  latent_dim: int = 10
  output_shape: Sequence[int] = (64, 64, 1)
  last_kernel: int = 2
  subpixel: bool = True
  space_to_depth: bool = True
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.encoder = ConvEncoder(self.latent_dim, self.last_kernel, self.space_to_depth, self.dtype)
    self.decoder = DeconvDecoder(tuple(self.output_shape), self.subpixel, self.dtype)

  def encode(self, images):
    return self.encoder(images)

  def decode(self, codes):
    return self.decoder(codes)

  def __call__(self, images, noise_BxD):
    mean, logvar = self.encoder(images)
    z = mean + jnp.exp(0.5 * logvar) * noise_BxD
    return self.decoder(z), mean, logvar, z


# ---- evaluation programs -----------------------------------------------------------------------
# The model is a static argument (flax modules compare and hash by their fields) and the
# parameters are data: one compiled program per model definition and input shape, reused by every
# evaluation and checkpoint. (A jit of a closure over the parameters compiled them in as constants,
# so each evaluation compiled its programs again.)


@functools.partial(jax.jit, static_argnums=0)
def encode_mean(model: VAE, params, images_NxHxWxC: jax.Array) -> jax.Array:
  """The encoder's means (N, latent_dim) for images (N, H, W, C) in [0, 1]."""
  return model.apply({"params": params}, images_NxHxWxC, method=VAE.encode)[0]


@functools.partial(jax.jit, static_argnums=0)
def encode_gaussian(model: VAE, params, images_NxHxWxC: jax.Array):
  """The encoder's (mean, log-variance), each (N, latent_dim)."""
  return model.apply({"params": params}, images_NxHxWxC, method=VAE.encode)


@functools.partial(jax.jit, static_argnums=0)
def decode_mean(model: VAE, params, codes_NxD: jax.Array) -> jax.Array:
  """The decoder's Bernoulli means (N, H, W, C) in [0, 1] for codes (N, latent_dim)."""
  return jax.nn.sigmoid(model.apply({"params": params}, codes_NxD, method=VAE.decode))


@dataclasses.dataclass(frozen=True)
class _EncoderMean:
  """``(params, images) -> means`` for one model; equal (and hashed) by the model's definition."""

  model: VAE

  def __call__(self, params, images_NxHxWxC):
    return encode_mean(self.model, params, images_NxHxWxC)


def representation_fn(model: VAE, params) -> jax.tree_util.Partial:
  """``images (N, H, W, C) -> encoder means (N, latent_dim)``: disentanglement_lib's
  representation function, as a ``jax.tree_util.Partial`` whose leaves are the parameters.

  Called on images it runs :func:`encode_mean`. Passed *as an argument* into a jitted function (as
  ``metrics.sample_codes_and_factors`` does when it renders and encodes in one program), its
  parameters stay arguments of that program too, so a later evaluation with other parameters
  reuses the compiled program.
  """
  return jax.tree_util.Partial(_EncoderMean(model), params)
