"""Correlated dSprites with a strength knob, the pair measures, the true-graph oracle and the
pair_disentanglement evaluator (issue 22 part 5)."""

import os

import numpy as np
import pytest

from jaxdisent import metrics
from jaxdisent.data.correlated_dsprites import CorrelatedDSprites, edges_for_correlation


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_the_knob_sets_the_latent_correlation_of_each_pair_exactly(rho):
  source = CorrelatedDSprites(edges=edges_for_correlation("shape->scale,posX->posY", rho))
  mixing = np.linalg.inv(np.eye(5) - source.weights.T)
  sigma = mixing @ mixing.T
  corr = sigma / np.sqrt(np.outer(np.diag(sigma), np.diag(sigma)))
  np.testing.assert_allclose([corr[0, 1], corr[3, 4]], [rho, rho], atol=1e-12)
  np.testing.assert_allclose(corr[0, 3], 0.0, atol=1e-12)       # the pairs stay independent


def test_class_correlation_grows_with_the_knob_and_the_config_key_reaches_the_source():
  from configs import gem_dsprites
  import jax.numpy as jnp
  config = gem_dsprites.get_config()
  observed = []
  for rho in (0.0, 0.5, 0.9):
    config.data.correlation = rho
    source = CorrelatedDSprites.from_config(config.data)
    values = np.asarray(source.pool_values(jnp.arange(5000)))
    observed.append(np.corrcoef(values[:, 3], values[:, 4])[0, 1])   # posX, posY: 32 classes each
    assert source.correlated_pairs() == [(0, 1), (3, 4)]            # also at rho 0 (empty graph)
  assert abs(observed[0]) < 0.05 and observed[0] < observed[1] < observed[2]
  assert observed[2] > 0.8


@pytest.mark.parametrize("rho, pairs, match", [
    (1.0, "shape->scale", r"\[0, 1\)"), (0.5, "shape->scale:0.5", "no weights"),
    (0.5, "", "no weights"), (0.5, "shape->size", "unknown factor")])
def test_bad_knob_settings_are_one_clear_error(rho, pairs, match):
  with pytest.raises(ValueError, match=match):
    CorrelatedDSprites(edges=edges_for_correlation(pairs, rho))


def test_pair_separation_known_answers():
  entropy = np.array([1.0, 2.0, 0.5])
  separated = np.array([[1.0, 0.0, 0.1], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5]])
  out = metrics.pair_separation(separated, entropy, [(0, 1)])
  assert out["separation"] == [1.0] and out["pairs"] == [(0, 1)]
  # one code carries both factors fully: each factor's best code knows the other as well -> 0
  shared = np.array([[1.0, 2.0, 0.0], [0.2, 0.2, 0.0]])
  assert metrics.pair_separation(shared, entropy, [(0, 1)])["mean"] == pytest.approx(0.0)
  # normalised by the entropies: code 0 = (0.9, 0), code 1 = (0.8, 1.0). Factor 0's best code is
  # code 0 (margin 0.9 - 0); factor 1's best code, code 1, also carries factor 0 (1.0 - 0.8)
  mixed = np.array([[0.9, 0.0, 0.0], [0.8, 2.0, 0.0]])
  assert metrics.pair_separation(mixed, entropy, [(0, 1), (1, 2)])["separation"][0] == (
      pytest.approx(np.mean([0.9 - 0.0, 1.0 - 0.8])))


def test_pair_separation_on_codes_separated_vs_rotated():
  rng = np.random.default_rng(0)
  factors = rng.integers(0, 10, size=(4000, 2))
  noise = rng.normal(size=(4000, 2)) * 0.05
  own = factors + noise
  rotated = np.stack([factors[:, 0] + factors[:, 1], factors[:, 0] - factors[:, 1]], 1) + noise
  score = lambda codes: metrics.pair_separation(metrics.mutual_info_matrix(codes, factors, 20),
                                                metrics.discrete_entropy(factors), [(0, 1)])["mean"]
  assert score(own) > 0.9
  assert score(rotated) < 0.5 * score(own)


def test_pair_dci_known_answers_and_bad_pairs():
  assert metrics.pair_dci_disentanglement(np.eye(3), [(0, 1)])["mean"] == pytest.approx(1.0)
  both = np.array([[1.0, 1.0, 5.0], [2.0, 2.0, 0.0]])       # every code splits the pair 50/50
  assert metrics.pair_dci_disentanglement(both, [(0, 1)])["mean"] == pytest.approx(0.0, abs=1e-9)
  for pairs, match in (([(0, 0)], "two different"), ([(0, 3)], "two different"), ([], "empty"),
                       (["ab"], "factor-index")):
    with pytest.raises(ValueError, match=match):
      metrics.pair_dci_disentanglement(both, pairs)
  with pytest.raises(ValueError, match="zero entropy"):
    metrics.pair_separation(np.ones((2, 2)), np.array([0.0, 1.0]), [(0, 1)])


def _tiny(overrides):
  from conftest import ROOT
  from jaxdisent.train.config import load_config
  return load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), {
      "train.batch_size": 8, "train.num_steps": 1, "train.checkpoint_every": 100,
      "oracle.num_images": 500, "data.pool_size": 2000, "evals.graph_recovery.num_images": 32,
      "train.eval_at_end": False, "train.plots_at_end": False,
      "evals.pair_disentanglement.num_train": 200, "evals.pair_disentanglement.num_eval": 100,
      **overrides})


def test_truth_oracle_prior_is_the_true_graph():
  from jaxdisent.methods import make_method
  method = make_method(_tiny({"oracle.kind": "truth", "data.correlation": 0.9}))
  truth = np.abs(method.data.true_adjacency())
  np.testing.assert_allclose(method.oracle.relations, truth / truth.max(), rtol=1e-6)
  assert method.oracle.batch_scores is not None       # nodes matched on the exact values


@pytest.mark.slow
def test_evaluator_on_a_tiny_run_and_an_empty_graph(tmp_path):
  """rho = 0: the graph is empty, graph_recovery draws without AUROC instead of failing, and the
  pair measures score the configured pairs."""
  from jaxdisent.runs import evaluate_workdir
  from jaxdisent.runs import fit
  config = _tiny({"data.correlation": 0.0})
  workdir = str(tmp_path / "rho0")
  fit(config, workdir, quiet=True)
  out = evaluate_workdir(workdir, only=["graph_recovery", "pair_disentanglement"],
                         log=lambda *a: None)
  assert "learned_auroc" not in out["graph_recovery"]
  pairs = out["pair_disentanglement"]
  for key in ("pair_separation", "pair_dci_disentanglement", "grid_mig",
              "pair_separation_shape_scale", "pair_separation_posX_posY",
              "pair_dci_disentanglement_posX_posY"):
    assert np.isfinite(pairs[key]), (key, pairs)
  assert pairs["pair_separation"] == pytest.approx(
      np.mean([pairs["pair_separation_shape_scale"], pairs["pair_separation_posX_posY"]]))
  assert -1 <= pairs["pair_separation"] <= 1 and 0 <= pairs["pair_dci_disentanglement"] <= 1


@pytest.mark.slow
def test_notears_from_the_covariance_equals_notears_on_the_samples():
  from jaxdisent.oracles import notears as N
  for seed in (0, 1):
    rng = np.random.default_rng(seed)
    weights = N.simulate_parameter(N.simulate_dag(8, 8, rng), rng)
    x = N.simulate_linear_sem(weights, 200, rng)
    centred = x - x.mean(0)
    from_cov = N.notears_linear_from_covariance(centred.T @ centred / len(x))
    from_x = N.notears_linear(x)
    np.testing.assert_array_equal(from_cov != 0, from_x != 0)
    np.testing.assert_allclose(from_cov, from_x, atol=0.02)   # two float paths of one L-BFGS-B
  for bad, match in ((np.ones((3, 2)), r"\(D, D\)"), (np.full((2, 2), np.nan), "NaN")):
    with pytest.raises(ValueError, match=match):
      N.notears_linear_from_covariance(bad)


def _statistical(**overrides):
  from conftest import tiny_gem_config
  return tiny_gem_config(**{"oracle.kind": "statistical", "oracle.refresh_every": 2,
                            "loss.structure_weight": 1.0, "train.eval_at_end": False,
                            "train.plots_at_end": False, **overrides})


@pytest.mark.slow
def test_statistical_notears_prior_is_notears_on_the_code_moments_on_one_and_four_devices(tmp_path):
  """After the refresh at step 2 (refresh_every 2, 3 steps) the prior is exactly the host NOTEARS
  of the correlation of the psum'd code moments held in the state (recomputed here from the state
  of step 3's input is not possible, so 3 steps with the last refresh at 2 are compared with a
  2-step run whose final moments fed that refresh). 1 vs 4 devices (float64): same support; values
  within 0.02, since L-BFGS-B's line searches amplify the summation-order differences of its input
  (no tighter bound follows from the computation)."""
  import jax
  import jax.numpy as jnp
  from jaxdisent.methods import make_method
  from jaxdisent.methods.gem import code_correlation
  from jaxdisent.oracles.notears import is_dag, notears_linear_from_covariance
  from jaxdisent.runs import fit
  from test_engine_contract import Float64
  config = _statistical(**{"train.num_steps": 3, "train.checkpoint_every": 100})
  with jax.enable_x64(True):
    one = fit(config, str(tmp_path / "one"), devices=jax.devices()[:1], quiet=True,
              method=Float64(make_method(config)))
    four = fit(config, str(tmp_path / "four"), devices=jax.devices()[:4], quiet=True,
               method=Float64(make_method(config)))
  prior_one = np.asarray(one.state.model_state["prior"])
  prior_four = np.asarray(four.state.model_state["prior"])
  assert prior_one.dtype == np.float64 and prior_one.max() == 1.0 and is_dag(prior_one)
  np.testing.assert_array_equal(prior_one != 0, prior_four != 0)
  np.testing.assert_allclose(prior_one, prior_four, atol=0.02)
  # the refresh is the host solver on the state's code moments: record the solver's input
  import jaxdisent.methods.gem as gem_module
  calls = []

  def recording(corr, **kwargs):
    calls.append(np.array(corr))
    return notears_linear_from_covariance(corr, **kwargs)
  config = _statistical(**{"train.num_steps": 1, "train.checkpoint_every": 100})
  try:
    gem_module.notears_linear_from_covariance = recording
    state = fit(config, str(tmp_path / "first"), quiet=True).state.model_state
  finally:
    gem_module.notears_linear_from_covariance = notears_linear_from_covariance
  assert len(calls) == jax.device_count()       # step 0 only (refresh_every 2), once per device
  for call in calls[1:]:
    np.testing.assert_array_equal(call, calls[0])              # the psum'd, replicated input
  expected = np.abs(notears_linear_from_covariance(calls[0]))
  np.testing.assert_array_equal(np.asarray(state["prior"]),
                                (expected / expected.max()).astype(np.float32))
  corr = np.asarray(code_correlation(jax.tree.map(jnp.asarray, state["codes"])))
  np.testing.assert_allclose(calls[0], corr, atol=1e-5)       # ... of the moments in the state


@pytest.mark.slow
def test_statistical_notears_resume_is_exact_and_correlation_switch_is_the_former_prior(tmp_path):
  from jaxdisent.runs import fit
  config = _statistical(**{"train.num_steps": 4, "train.checkpoint_every": 2})
  straight = fit(config, str(tmp_path / "straight"), quiet=True)
  half = _statistical(**{"train.num_steps": 2, "train.checkpoint_every": 2})
  fit(half, str(tmp_path / "resumed"), quiet=True)
  resumed = fit(config, str(tmp_path / "resumed"), quiet=True)
  np.testing.assert_array_equal(np.asarray(straight.state.model_state["prior"]),
                                np.asarray(resumed.state.model_state["prior"]))
  old = fit(_statistical(**{"oracle.statistical_estimator": "correlation", "train.num_steps": 1}),
            str(tmp_path / "old"), quiet=True)
  import jax
  import jax.numpy as jnp
  from jaxdisent.methods.gem import code_correlation
  from jaxdisent.oracles import relations_from_correlation
  state = old.state.model_state
  expected = relations_from_correlation(
      np.asarray(code_correlation(jax.tree.map(jnp.asarray, state["codes"])), np.float64))
  np.testing.assert_allclose(np.asarray(state["prior"]), expected / expected.max(), atol=1e-3)  # f32
  for key, value, match in (("oracle.statistical_estimator", "pc", "notears"),
                            ("oracle.refresh_every", 0, "refresh_every")):
    from jaxdisent.methods import make_method
    with pytest.raises(ValueError, match=match):
      make_method(_statistical(**{key: value}))


def test_truth_oracle_refuses_data_without_a_known_graph():
  import ml_collections
  from jaxdisent.data.correlated_dsprites import CorrelatedDSprites
  from jaxdisent.oracles import make_oracle_view

  class NoGraph(CorrelatedDSprites):
    def true_adjacency(self):
      return None
  with pytest.raises(ValueError, match="oracle.kind='truth' needs data with a known graph"):
    make_oracle_view(NoGraph(pool_size=100), ml_collections.ConfigDict({"kind": "truth"}))
