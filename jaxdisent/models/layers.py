"""Layers that compute exactly what flax's layers compute, in forms XLA:CPU runs faster."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

# For ConvTranspose(k=4, s=2, 'SAME') (lax.conv_transpose, kernel not flipped) one output axis obeys
#   y[2p]   = K[0] x[p-1] + K[2] x[p]
#   y[2p+1] = K[1] x[p]   + K[3] x[p+1]
# so output phase a uses, at window offsets (-1, 0, +1), these taps of K (None = zero):
_PHASE_TAPS = ((0, 2, None), (None, 1, 3))


def _phase_gather():
  """Index and mask that turn a 4x4 kernel into a 3x3 kernel per output phase (a, b)."""
  index = np.zeros((3, 3, 4, 2), np.int32)  # (row tap, col tap, phase a*2+b, (ki, kj))
  mask = np.zeros((3, 3, 4), np.float32)
  for a in range(2):
    for b in range(2):
      for r, ki in enumerate(_PHASE_TAPS[a]):
        for c, kj in enumerate(_PHASE_TAPS[b]):
          if ki is not None and kj is not None:
            index[r, c, a * 2 + b] = (ki, kj)
            mask[r, c, a * 2 + b] = 1.0
  return index, mask


_INDEX, _MASK = _phase_gather()


def subpixel_kernel(kernel_4x4xIxO):
  """3x3 x I x (4*O) stride-1 kernel whose output, depth-to-space'd, is the transposed conv."""
  k = kernel_4x4xIxO[_INDEX[..., 0], _INDEX[..., 1]]  # (3, 3, 4, I, O)
  k = k * _MASK[..., None, None].astype(k.dtype)
  k = jnp.transpose(k, (0, 1, 3, 2, 4))             # (3, 3, I, 4, O)
  return k.reshape(3, 3, k.shape[2], 4 * k.shape[4])


def depth_to_space2(x_BxHxWx4C):
  b, h, w, c4 = x_BxHxWx4C.shape
  c = c4 // 4
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, 2 * h, 2 * w, c)


class SubpixelConvTranspose(nn.Module):
  """Drop-in for ``nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')``.

  Same parameters (a 4x4xIxO 'kernel' and a 'bias', same initialisers) and the same output up to
  float rounding, computed as one stride-1 3x3 convolution with 4*O outputs followed by
  depth-to-space. Transposed convolutions (dilated inputs) are slow on XLA:CPU, above all their
  gradients; this form is several times faster there.
  """

  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features))
    k3 = subpixel_kernel(kernel.astype(self.dtype))
    y = lax.conv_general_dilated(x.astype(self.dtype), k3, (1, 1), "SAME",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = depth_to_space2(y)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,))
      y = y + bias.astype(self.dtype)
    return y
