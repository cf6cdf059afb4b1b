"""GEM's structured latent prior (model.prior='scm'): the closed-form KL against an explicit
Gaussian KL, the acyclicity term, the stability check, pinned nodes and supervision, and that the
data move A through the KL (1 and 4 devices alike)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.losses import graph as G
from jaxdisent.losses import vae as vae_losses
from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config

from conftest import ROOT


def _config(**overrides):
  base = {"train.batch_size": 8, "train.num_steps": 3, "train.log_every": 1,
          "train.checkpoint_every": 100, "oracle.num_images": 500, "data.pool_size": 2000,
          "evals.graph_recovery.num_images": 32, "train.eval_at_end": False,
          "train.plots_at_end": False, "model.prior": "scm", "loss.supervision_weight": 1.0,
          "loss.adversarial_weight": 0.0}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), base)


def _gaussian_kl(mean, var, cov):
  """KL(N(mean, diag(var)) || N(0, cov)) the textbook way, float64 NumPy."""
  d = len(mean)
  inv = np.linalg.inv(cov)
  return 0.5 * (np.trace(inv @ np.diag(var)) + mean @ inv @ mean - d
                + np.linalg.slogdet(cov)[1] - np.sum(np.log(var)))


def test_scm_kl_equals_the_explicit_gaussian_kl():
  rng = np.random.default_rng(0)
  d = 5
  a = rng.normal(size=(d, d)) * 0.3 * (1 - np.eye(d))
  assert G.scm_spectral_radius(a) < 1
  i_minus_at_inv = np.linalg.inv(np.eye(d) - a.T)
  cov = i_minus_at_inv @ i_minus_at_inv.T          # covariance of z = (I - A^T)^-1 eps
  mean = rng.normal(size=(4, d))
  logvar = rng.normal(size=(4, d)) * 0.5
  with jax.enable_x64(True):
    ours = np.asarray(G.scm_kl(jnp.asarray(mean), jnp.asarray(logvar), jnp.asarray(a)))
    standard = np.asarray(jnp.sum(vae_losses.gaussian_kl(jnp.asarray(mean), jnp.asarray(logvar)), 1))
    at_zero = np.asarray(G.scm_kl(jnp.asarray(mean), jnp.asarray(logvar), jnp.zeros((d, d))))
  want = [_gaussian_kl(m, np.exp(v), cov) for m, v in zip(mean, logvar)]
  np.testing.assert_allclose(ours, want, rtol=1e-10)
  np.testing.assert_allclose(at_zero, standard, rtol=1e-12)   # A = 0: the plain VAE's KL
  # the sampled covariance of the SCM matches Sigma_A (the convention A[i, j] = weight of i -> j)
  eps = rng.normal(size=(200_000, d))
  z = eps @ i_minus_at_inv.T
  np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03)
  z_again = np.linalg.solve(np.eye(d) - a.T, eps.T).T   # z_j = sum_i A[i, j] z_i + eps_j
  np.testing.assert_allclose(z_again, z, atol=1e-10)
  np.testing.assert_allclose(z_again - z_again @ a, eps, atol=1e-10)


def test_acyclicity_is_zero_exactly_on_dags():
  dag = np.array([[0, 0.8, 0.5], [0, 0, 0.7], [0, 0, 0]], np.float32)
  assert abs(float(G.acyclicity(jnp.asarray(dag)))) < 1e-6
  cycle = dag + np.array([[0, 0, 0], [0, 0, 0], [0.6, 0, 0]], np.float32)
  assert float(G.acyclicity(jnp.asarray(cycle))) > 0.1
  assert G.scm_spectral_radius(dag) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_unstable_prior_and_bad_settings_are_refused():
  # the dSprites oracle prior has spectral radius ~1.38: at scale 1 the SCM does not exist
  with pytest.raises(ValueError, match=r"spectral radius is 1\.\d+ \(>= 1\).*scm_prior_scale"):
    make_method(_config(**{"model.scm_prior_scale": 1.0}))
  with pytest.raises(ValueError, match="unknown model.prior 'dag'"):
    make_method(_config(**{"model.prior": "dag"}))
  with pytest.raises(ValueError, match="supervision_weight pins latent nodes.*model.prior='scm'"):
    make_method(_config(**{"model.prior": "gnn_decoder"}))
  with pytest.raises(ValueError, match="acyclicity_weight=-1.0 must be"):
    make_method(_config(**{"loss.acyclicity_weight": -1.0}))
  method = make_method(_config())
  clean = make_method(_config(**{"model.prior": "gnn_decoder", "loss.supervision_weight": 0.0}))
  np.testing.assert_allclose(method.oracle.relations, 0.5 * clean.oracle.relations, rtol=1e-6)
  assert not method.use_gnn


@pytest.mark.slow
def test_scm_training_moves_the_graph_and_keeps_nodes_pinned(tmp_path):
  """No graph-prior pull: the KL alone must move A away from P; nodes stay pinned; 1 device and 4
  devices train the same numbers (batch statistics and the supervision count are global)."""
  over = {"loss.graph_prior_weight": 0.0, "loss.sparsity_weight": 0.0,
          "optimizer.graph_learning_rate": 1e-2}
  from test_engine_contract import Float64, _tolerance
  config = _config(**over)
  with jax.enable_x64(True):   # the engine contract's form: float64, the derived Adam bound
    results = {n: fit(config, str(tmp_path / f"d{n}"), devices=jax.devices()[:n], quiet=True,
                      method=Float64(make_method(config))) for n in (1, 4)}
  state = results[1].state
  method = results[1].method
  assert jax.tree.leaves(state.params)[0].dtype == np.float64
  delta = np.asarray(state.params["adjacency_delta"]) * (1 - np.eye(method.latent_dim))
  assert np.abs(delta).max() > 1e-3          # the KL's gradient reached the graph
  np.testing.assert_array_equal(np.asarray(state.model_state["node_of_attribute"]),
                                np.arange(method.num_attributes))
  # the graph's own Adam runs at 1e-2: the bound uses the larger of the two learning rates
  tol = _tolerance(config, 3) * 1e-2 / float(config.optimizer.learning_rate)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(results[4].state.params),
                  strict=True):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(float(np.max(np.abs(a))), 1.0))
  from jaxdisent.train.logging import read_metrics
  rows = [r for r in read_metrics(str(tmp_path / "d1" / "metrics.jsonl")) if "loss" in r]
  assert all(np.isfinite(r["supervision"]) and np.isfinite(r["scm_logabsdet"]) for r in rows)
  check = method.scm_check(state.params, state.model_state)
  assert check["scm_stable"] and check["scm_spectral_radius"] < 1


@pytest.mark.slow
def test_supervision_pulls_pinned_nodes_toward_the_scores():
  method = make_method(_config())
  params, state = method.init(jax.random.key(0))
  batch = jax.tree.map(jnp.asarray, method.local_batch(0, 0, 0, 8))
  a = method.num_attributes
  # moments of a standardised score: centre 5, std 2
  match = dict(state["match"])
  match["n"] = jnp.ones_like(match["n"])
  match["ss"] = jnp.full_like(match["ss"], 5.0)
  match["sss"] = jnp.full_like(match["sss"], 29.0)
  state = dict(state, match=match)
  scores = batch["scores"]
  perfect = jnp.zeros((8, method.latent_dim)).at[:, :a].set((scores - 5.0) / 2.0)
  ident = lambda x: x
  assert float(method._supervision(perfect, batch, state, ident)) == pytest.approx(0.0, abs=1e-10)
  off = perfect.at[:, 0].add(1.0)
  valid = np.asarray(batch["valid"])
  want = valid[:, 0].sum() / valid.sum()
  assert float(method._supervision(off, batch, state, ident)) == pytest.approx(want, rel=1e-5)
