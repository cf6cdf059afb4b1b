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


def test_evaluator_on_a_tiny_run_and_an_empty_graph(tmp_path):
  """rho = 0: the graph is empty, graph_recovery draws without AUROC instead of failing, and the
  pair measures score the configured pairs."""
  from jaxdisent.runs import evaluate_workdir
  from jaxdisent.train import fit
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
