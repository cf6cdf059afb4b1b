"""The XLA:CPU-friendly convolutions equal flax's on the same parameters (values and gradients).

Tolerances are the worst-case float32 summation bound, not tuned numbers: each output (or gradient
entry) is a sum of n products; computed in any order its error is at most n * eps * sum|products|,
so two orders differ by at most 2 n eps sum|products|. sum|products| is the same computation on
|x|, |kernel|, |cotangent| (done by the reference layer). An indexing error (a wrong tap, phase or
channel order) is an O(1) relative error and fails this bound.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.models.layers import (SpaceToDepthConv, SubpixelConvTranspose, depth_to_space2,
                                     space_to_depth2)
from jaxdisent.models.vae import VAE

EPS = float(jnp.finfo(jnp.float32).eps)


def _assert_within_sum_bound(ours, ref, abs_sum, num_terms):
  bound = 2.0 * num_terms * EPS * np.asarray(abs_sum) + 1e-30
  err = np.abs(np.asarray(ours) - np.asarray(ref))
  assert np.all(err <= bound), f"max err/bound {np.max(err / bound):.3g}"


def _check_layer(ours, reference, x, fan_in, outputs_per_weight):
  params = reference.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == \
      jax.tree.map(jnp.shape, params)
  abs_params = jax.tree.map(jnp.abs, params)
  y_ours, vjp_ours = jax.vjp(lambda p, v: ours.apply(p, v), params, x)
  y_ref, vjp_ref = jax.vjp(lambda p, v: reference.apply(p, v), params, x)
  # forward: fan_in products + the bias per output
  y_abs = reference.apply(abs_params, jnp.abs(x))
  _assert_within_sum_bound(y_ours, y_ref, y_abs, fan_in + 1)
  cotangent = jax.random.normal(jax.random.key(3), y_ref.shape)
  (gp_ours, gx_ours), (gp_ref, gx_ref) = vjp_ours(cotangent), vjp_ref(cotangent)
  _, vjp_abs = jax.vjp(lambda p, v: reference.apply(p, v), abs_params, jnp.abs(x))
  gp_abs, gx_abs = vjp_abs(jnp.abs(cotangent))
  # input gradient: at most (k*k*O) products per entry; kernel/bias: one per output position
  _assert_within_sum_bound(gx_ours, gx_ref, gx_abs, 16 * y_ref.shape[-1])
  for name in ("kernel", "bias"):
    _assert_within_sum_bound(gp_ours["params"][name], gp_ref["params"][name],
                             gp_abs["params"][name], outputs_per_weight)
  # a wrong tap would be far outside the bound: the check is not vacuous
  assert np.max(np.abs(y_ref)) > 100 * np.max(2 * (fan_in + 1) * EPS * np.asarray(y_abs))


@pytest.mark.parametrize("shape,features,kernel", [((2, 64, 64, 1), 32, 4), ((3, 32, 32, 32), 32, 4),
                                                   ((2, 16, 16, 32), 64, 2), ((2, 8, 8, 64), 64, 2),
                                                   ((1, 6, 10, 3), 5, 4)])
@pytest.mark.slow
def test_space_to_depth_conv_equals_flax_strided_conv(shape, features, kernel):
  x = jax.random.normal(jax.random.key(0), shape)
  reference = nn.Conv(features, (kernel, kernel), strides=(2, 2), padding="SAME")
  ours = SpaceToDepthConv(features, kernel)
  b, h, w, c = shape
  _check_layer(ours, reference, x, fan_in=kernel * kernel * c,
               outputs_per_weight=b * (h // 2) * (w // 2))


@pytest.mark.parametrize("shape,features", [((2, 4, 4, 64), 64), ((3, 8, 8, 32), 32),
                                            ((2, 16, 16, 32), 1), ((1, 5, 7, 3), 6)])
def test_phase_transposed_conv_equals_flax(shape, features):
  x = jax.random.normal(jax.random.key(0), shape)
  reference = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")
  b, h, w, c = shape
  # each output pixel sums 2x2 taps of the 4x4 kernel over c channels
  _check_layer(SubpixelConvTranspose(features), reference, x, fan_in=4 * c,
               outputs_per_weight=b * 4 * h * w)


def test_space_to_depth_round_trip_and_layout():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  s = space_to_depth2(x)
  assert s.shape == (2, 2, 3, 12)
  np.testing.assert_array_equal(depth_to_space2(s), x)
  # channel (a*2 + b)*C + c holds pixel (2i + a, 2j + b, c)
  np.testing.assert_array_equal(s[1, 1, 2, (1 * 2 + 0) * 3 + 2], x[1, 3, 4, 2])


def test_space_to_depth_conv_rejects_odd_sizes():
  with pytest.raises(ValueError, match="even"):
    SpaceToDepthConv(4).init(jax.random.key(0), jnp.zeros((1, 7, 8, 1)))


@pytest.mark.slow
def test_vae_fast_and_flax_layers_share_parameters_and_outputs():
  """Checkpoints are interchangeable: same param tree; outputs agree to float rounding.

  (The decoder's flax variant, subpixel=False, names its layers ConvTranspose_i, as before; the
  default decoder has always used SubpixelConvTranspose_i, so checkpoints keep loading.)"""
  images = jax.random.bernoulli(jax.random.key(0), 0.3, (2, 64, 64, 1)).astype(jnp.float32)
  noise = jax.random.normal(jax.random.key(1), (2, 10))
  fast, slow = VAE(), VAE(space_to_depth=False)
  params_fast = fast.init(jax.random.key(2), images, noise)["params"]
  params_slow = slow.init(jax.random.key(2), images, noise)["params"]
  assert jax.tree.map(jnp.shape, params_fast) == jax.tree.map(jnp.shape, params_slow)
  assert [k for k in params_fast["encoder"]] == ["Conv_0", "Conv_1", "Conv_2", "Conv_3",
                                                  "Dense_0", "mean", "logvar"]
  # same initialisers and names -> identical initial parameters
  jax.tree.map(np.testing.assert_array_equal, params_fast, params_slow)
  out_fast = fast.apply({"params": params_fast}, images, noise)
  out_slow = slow.apply({"params": params_fast}, images, noise)
  for a, b in zip(out_fast, out_slow):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.max(np.abs(b))))
