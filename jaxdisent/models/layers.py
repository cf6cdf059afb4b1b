"""Layers that compute exactly what flax's layers compute, in forms XLA:CPU runs faster.

Both rewrite a stride-2 4x4 (transposed) convolution as a *stride-1 2x2* convolution on a
re-arranged tensor, with the same parameters (flax's 4x4xIxO 'kernel' and 'bias', same
initialisers) and the same output up to float rounding (each output is the same sum of the same
products, accumulated in a different order):

* ``SpaceToDepthConv``: ``nn.Conv(O, (k, k), strides=(2, 2), padding='SAME')`` for even k and even
  input sizes = pad (k-2)/2, space-to-depth by 2 (2x2 pixel blocks -> 4x the channels), then a
  stride-1 VALID convolution with a (k/2)x(k/2)x4IxO kernel (a pure re-indexing of the 4x4 one).
* ``SubpixelConvTranspose``: ``nn.ConvTranspose(O, (4, 4), strides=(2, 2), padding='SAME')`` =
  pad 1, one stride-1 2x2 convolution with 4*O outputs (one set per output phase), then the four
  phases interleaved (depth-to-space with a one-pixel shift per phase).

Why: on XLA:CPU a strided convolution's input gradient is a convolution with a dilated input,
and a transposed convolution is one in the forward pass; both miss the fast convolution kernels
(10-20x slower per FLOP here). The rewritten forms, and their gradients, are plain stride-1
convolutions without dilation, and they do no more multiply-adds than the originals. See
docs/performance.md for the measurements.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

_DIMS = ("NHWC", "HWIO", "NHWC")


def space_to_depth2(x_BxHxWxC):
  """(B, H, W, C) -> (B, H/2, W/2, 4C); channel index (a*2 + b)*C + c holds pixel (2i+a, 2j+b)."""
  b, h, w, c = x_BxHxWxC.shape
  x = x_BxHxWxC.reshape(b, h // 2, 2, w // 2, 2, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, h // 2, w // 2, 4 * c)


def depth_to_space2(x_BxHxWx4C):
  """Inverse of :func:`space_to_depth2`."""
  b, h, w, c4 = x_BxHxWx4C.shape
  c = c4 // 4
  x = x_BxHxWx4C.reshape(b, h, w, 2, 2, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, 2 * h, 2 * w, c)


def space_to_depth_kernel(kernel_KxKxIxO):
  """KxKxIxO kernel -> (K/2)x(K/2)x4IxO: k2[r, s, (a, b, i), o] = K[2r + a, 2s + b, i, o]."""
  k, _, i, o = kernel_KxKxIxO.shape
  h = k // 2
  kernel = kernel_KxKxIxO.reshape(h, 2, h, 2, i, o)
  return jnp.transpose(kernel, (0, 2, 1, 3, 4, 5)).reshape(h, h, 4 * i, o)


def phase_kernel(kernel_4x4xIxO):
  """4x4xIxO transposed-conv kernel -> 2x2xIx4O: k2[r, s, i, (a, b, o)] = K[2r + a, 2s + b, i, o].

  For ConvTranspose(k=4, s=2, 'SAME') (lax.conv_transpose, kernel not flipped) one axis obeys
    y[2p]   = K[0] x[p-1] + K[2] x[p]
    y[2p+1] = K[1] x[p]   + K[3] x[p+1]
  i.e. with x padded by one pixel (xp[u] = x[u-1]), y[2p + a] = sum_r K[2r + a] xp[p + a + r]:
  a 2-tap stride-1 correlation per output phase a, evaluated at the shifted position p + a.
  """
  _, _, i, o = kernel_4x4xIxO.shape
  kernel = kernel_4x4xIxO.reshape(2, 2, 2, 2, i, o)
  return jnp.transpose(kernel, (0, 2, 4, 1, 3, 5)).reshape(2, 2, i, 4 * o)


def interleave_phases(y_BxH1xW1x4O, height: int, width: int):
  """(B, H+1, W+1, 4O) phase outputs -> (B, 2H, 2W, O) with out[2p+a, 2q+b] = y[p+a, q+b, (a, b)]."""
  b, _, _, o4 = y_BxH1xW1x4O.shape
  o = o4 // 4
  y = y_BxH1xW1x4O.reshape(b, height + 1, width + 1, 2, 2, o)
  rows = [jnp.stack([y[:, a:a + height, c:c + width, a, c] for c in range(2)], axis=3)
          for a in range(2)]                                       # a: (B, H, W, 2, O)
  return jnp.stack(rows, axis=2).reshape(b, 2 * height, 2 * width, o)


class SpaceToDepthConv(nn.Module):
  """Drop-in for ``nn.Conv(features, (k, k), strides=(2, 2), padding='SAME')``, k even.

  Same parameters ('kernel' kxkxIxO, 'bias'); needs even input height and width (then SAME pads
  (k-2)/2 on each side). Computed as space-to-depth + a stride-1 (k/2)x(k/2) VALID convolution
  over 4x the channels (k=2: a 1x1 convolution, i.e. one matmul).
  """

  features: int
  kernel_size: int = 4
  use_bias: bool = True
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x_BxHxWxC):
    k = self.kernel_size
    _, height, width, channels = x_BxHxWxC.shape
    if k % 2 or height % 2 or width % 2:
      raise ValueError(f"SpaceToDepthConv needs an even kernel and even input sizes; got kernel "
                       f"{k} on {height}x{width} (use nn.Conv for odd sizes)")
    kernel = self.param("kernel", self.kernel_init, (k, k, channels, self.features))
    x = x_BxHxWxC.astype(self.dtype)
    pad = (k - 2) // 2
    if pad:
      x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    y = lax.conv_general_dilated(space_to_depth2(x),
                                 space_to_depth_kernel(kernel.astype(self.dtype)), (1, 1),
                                 "VALID", dimension_numbers=_DIMS)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,))
      y = y + bias.astype(self.dtype)
    return y


class SubpixelConvTranspose(nn.Module):
  """Drop-in for ``nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')``.

  Same parameters (a 4x4xIxO 'kernel' and a 'bias', same initialisers) and the same output up to
  float rounding, computed as one stride-1 2x2 convolution with 4*O outputs over the input padded
  by one pixel, then the four output phases interleaved (see :func:`phase_kernel`). It does the
  transposed convolution's multiply-adds and no more (an earlier 3x3 sub-pixel form did 9/4 as
  many); its gradients are stride-1 convolutions too.
  """

  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x_BxHxWxC):
    _, height, width, channels = x_BxHxWxC.shape
    kernel = self.param("kernel", self.kernel_init, (4, 4, channels, self.features))
    x = jnp.pad(x_BxHxWxC.astype(self.dtype), ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = lax.conv_general_dilated(x, phase_kernel(kernel.astype(self.dtype)), (1, 1), "VALID",
                                 dimension_numbers=_DIMS)
    y = interleave_phases(y, height, width)
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (self.features,))
      y = y + bias.astype(self.dtype)
    return y
