import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.losses import vae as L
from jaxdisent.models.layers import SubpixelConvTranspose
from jaxdisent.models.vae import VAE


def test_kl_is_zero_at_prior_and_matches_closed_form():
  zeros = jnp.zeros((3, 4))
  np.testing.assert_allclose(L.gaussian_kl(zeros, zeros), 0.0, atol=1e-7)
  mean, logvar = jnp.array([[1.0, -2.0]]), jnp.array([[0.5, -1.0]])
  expected = [0.5 * (m * m + math.exp(v) - v - 1) for m, v in zip([1.0, -2.0], [0.5, -1.0])]
  np.testing.assert_allclose(L.gaussian_kl(mean, logvar)[0], expected, rtol=1e-6)


def test_kl_matches_monte_carlo():
  mean, logvar = jnp.array([0.7]), jnp.array([-0.4])
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(jax.random.key(0), (200_000, 1))
  mc = jnp.mean(L.gaussian_log_density(z, mean, logvar) - L.gaussian_log_density(z, 0.0, 0.0))
  np.testing.assert_allclose(mc, L.gaussian_kl(mean, logvar)[0], rtol=0.02)


def test_bernoulli_reconstruction():
  images = jnp.array([[[[0.0], [1.0]]]])  # one 1x2 image
  logits = jnp.array([[[[-2.0], [3.0]]]])
  expected = math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-3.0))
  np.testing.assert_allclose(L.bernoulli_reconstruction(logits, images), [expected], rtol=1e-6)
  # grey targets: a perfect reconstruction costs zero (entropy subtracted, as disentanglement_lib)
  grey = jnp.full((1, 2, 2, 1), 0.3)
  perfect = jnp.log(grey / (1 - grey))
  np.testing.assert_allclose(L.bernoulli_reconstruction(perfect, grey), [0.0], atol=1e-4)


def total_correlation_loop(z, mean, logvar):
  """Straight transcription of the minibatch-weighted-sampling estimator, one sample at a time."""
  z, mean, logvar = map(np.asarray, (z, mean, logvar))
  out = []
  for i in range(len(z)):
    log_q = -0.5 * (np.log(2 * np.pi) + logvar + (z[i] - mean) ** 2 / np.exp(logvar))  # PxD
    joint = np.log(np.exp(log_q.sum(axis=1)).sum())
    marginals = np.log(np.exp(log_q).sum(axis=0)).sum()
    out.append(joint - marginals)
  return np.array(out)


def test_total_correlation_matches_loop_and_orders_dependence():
  key = jax.random.key(1)
  mean = jax.random.normal(key, (32, 3))
  logvar = jnp.full((32, 3), -1.0)
  z = mean + 0.3 * jax.random.normal(jax.random.key(2), (32, 3))
  np.testing.assert_allclose(L.total_correlation(z, mean, logvar),
                             total_correlation_loop(z, mean, logvar), rtol=1e-4, atol=1e-4)
  # perfectly dependent latents (all dims equal) have larger TC than independent ones
  dep_mean = jnp.repeat(mean[:, :1], 3, axis=1)
  dep_z = jnp.repeat(z[:, :1], 3, axis=1)
  tc_dep = jnp.mean(L.total_correlation(dep_z, dep_mean, logvar))
  tc_ind = jnp.mean(L.total_correlation(z, mean, logvar))
  assert tc_dep > tc_ind + 1.0


def test_objectives():
  recon = jnp.array([10.0, 20.0])
  kl = jnp.array([[1.0, 2.0], [3.0, 0.0]])
  loss, metrics = L.vae_objective("beta_vae", recon, kl, beta=4.0)
  np.testing.assert_allclose(loss, 15.0 + 4.0 * 3.0)
  assert float(metrics["kl"]) == 3.0
  loss, metrics = L.vae_objective("beta_tcvae", recon, kl, beta=6.0, tc_B=jnp.array([1.0, 3.0]))
  np.testing.assert_allclose(loss, 15.0 + 3.0 + 5.0 * 2.0)
  loss, metrics = L.vae_objective("annealed_vae", recon, kl, step=jnp.int32(50), c_max=10.0,
                                  gamma=100.0, iteration_threshold=100)
  np.testing.assert_allclose(metrics["capacity"], 5.0)
  np.testing.assert_allclose(loss, 15.0 + 100.0 * abs(3.0 - 5.0))
  np.testing.assert_allclose(L.anneal_capacity(jnp.int32(500), 10.0, 100), 10.0)
  with pytest.raises(ValueError, match="loss.objective=.*use one of"):
    L.vae_objective("dip_vae", recon, kl)


@pytest.mark.parametrize("shape,features", [((2, 4, 4, 64), 64), ((3, 8, 8, 32), 32),
                                            ((2, 16, 16, 32), 1), ((1, 5, 7, 3), 6)])
@pytest.mark.slow
def test_subpixel_transposed_conv_equals_flax(shape, features):
  x = jax.random.normal(jax.random.key(0), shape)
  reference = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME")
  params = reference.init(jax.random.key(1), x)
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  ours = SubpixelConvTranspose(features)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x), atol=2e-5, rtol=1e-5)
  g_ours = jax.grad(lambda p: jnp.sum(ours.apply(p, x) ** 2))(params)
  g_ref = jax.grad(lambda p: jnp.sum(reference.apply(p, x) ** 2))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3), g_ours, g_ref)


def test_vae_shapes_and_parameter_count():
  model = VAE(latent_dim=10)
  images = jnp.zeros((2, 64, 64, 1))
  params = model.init(jax.random.key(0), images, jnp.zeros((2, 10)))["params"]
  logits, mean, logvar, z = model.apply({"params": params}, images, jnp.ones((2, 10)))
  assert logits.shape == (2, 64, 64, 1) and mean.shape == logvar.shape == z.shape == (2, 10)
  np.testing.assert_allclose(z, mean + jnp.exp(0.5 * logvar))
  count = sum(p.size for p in jax.tree.leaves(params))
  encoder = (16 * 1 * 32 + 32) + (16 * 32 * 32 + 32) + (4 * 32 * 64 + 64) + (4 * 64 * 64 + 64) \
      + (1024 * 256 + 256) + 2 * (256 * 10 + 10)
  decoder = (10 * 256 + 256) + (256 * 1024 + 1024) + (16 * 64 * 64 + 64) + (16 * 64 * 32 + 32) \
      + (16 * 32 * 32 + 32) + (16 * 32 * 1 + 1)
  assert count == encoder + decoder


@pytest.mark.slow
def test_loss_gradient_is_finite_and_nonzero(vae_config):
  from jaxdisent.methods import make_method
  for objective in ("beta_vae", "beta_tcvae", "annealed_vae"):
    method = make_method(vae_config(**{"loss.objective": objective}))
    params, state = method.init(jax.random.key(0))
    batch = method.local_batch(0, 0, 0, 8)
    # jitted: op by op, each of the many primitives would compile on its own (~6 s per objective)
    (loss, (metrics, _)), grads = jax.jit(jax.value_and_grad(method.loss, has_aux=True))(
        params, state, batch, jax.random.key(1), jnp.int32(0))
    assert np.isfinite(float(loss)) and float(metrics["recon"]) > 0
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and sum(norms) > 0
