"""Honest measurement of GEM (issue 22 part 1): corrupted priors, the graph's own optimiser group,
learned_minus_prior_* and the untrained control."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.oracles import corrupt_prior
from jaxdisent.train.config import load_config

from conftest import ROOT


def _prior_and_truth():
  truth = np.zeros((4, 4))
  truth[0, 2] = truth[1, 2] = truth[2, 3] = 1.0
  prior = np.array([[0.0, 0.1, 0.9, 0.2],
                    [0.0, 0.0, 0.6, 0.0],
                    [0.3, 0.0, 0.0, 1.0],
                    [0.0, 0.0, 0.4, 0.0]])
  return prior, truth


def test_corrupt_prior_known_answers():
  prior, truth = _prior_and_truth()
  np.testing.assert_array_equal(corrupt_prior(prior, truth, "none"), prior.astype(np.float32))
  np.testing.assert_array_equal(corrupt_prior(prior, None, "reversed"), prior.T.astype(np.float32))
  np.testing.assert_array_equal(corrupt_prior(prior, None, "uniform"), 1.0 - np.eye(4))
  shuffled = corrupt_prior(prior, None, "random", seed=3)
  off = ~np.eye(4, dtype=bool)
  np.testing.assert_array_equal(np.sort(shuffled[off]), np.sort(prior[off]).astype(np.float32))
  assert not np.diag(shuffled).any()
  # drop_k: the k true edges the prior ranks highest (2->3 at 1.0, then 0->2 at 0.9) go to 0
  dropped = corrupt_prior(prior, truth, "drop_k", k=2)
  expected = prior.copy()
  expected[2, 3] = expected[0, 2] = 0.0
  np.testing.assert_array_equal(dropped, expected.astype(np.float32))
  # spurious_k: k pairs with no true edge either way (0-1, 1-3, 0-3 and reverses) set to the max
  added = corrupt_prior(prior, truth, "spurious_k", k=3, seed=0)
  changed = np.argwhere(added != prior.astype(np.float32))
  assert len(changed) <= 3 and (added[tuple(changed.T)] == 1.0).all()
  assert ((added == 1.0) & off & ~((truth + truth.T) > 0)).sum() == 3


def test_corrupt_prior_bad_inputs():
  prior, truth = _prior_and_truth()
  with pytest.raises(ValueError, match="unknown model.prior_corruption 'flipped'"):
    corrupt_prior(prior, truth, "flipped")
  with pytest.raises(ValueError, match="needs a dataset with a known graph"):
    corrupt_prior(prior, None, "drop_k")
  with pytest.raises(ValueError, match=r"prior_corruption_k=4 must be an integer in 1..3"):
    corrupt_prior(prior, truth, "drop_k", k=4)
  with pytest.raises(ValueError, match=r"in 1..6 \(the pairs without a true edge"):
    corrupt_prior(prior, truth, "spurious_k", k=0)


def _config(**overrides):
  base = {"train.batch_size": 8, "train.num_steps": 2, "train.log_every": 1,
          "train.checkpoint_every": 1, "oracle.num_images": 500, "data.pool_size": 2000,
          "evals.graph_recovery.num_images": 32}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), base)


@pytest.mark.slow
def test_method_uses_the_corrupted_prior_and_the_graph_optimiser_group():
  from jaxdisent.methods import make_method
  clean = make_method(_config())
  reversed_ = make_method(_config(**{"model.prior_corruption": "reversed",
                                     "optimizer.learning_rate": 1e-4,
                                     "optimizer.graph_learning_rate": 1e-2}))
  np.testing.assert_array_equal(reversed_.oracle.relations, clean.oracle.relations.T)
  params, state = reversed_.init(jax.random.key(0))
  a = reversed_.num_attributes
  np.testing.assert_array_equal(np.asarray(state["prior"])[:a, :a], clean.oracle.relations.T)
  # one Adam step on gradients of ones moves every parameter by its group's learning rate
  opt = reversed_.optimizer()
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = opt.update(grads, opt.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["adjacency_delta"]), -1e-2, rtol=1e-4)
  for leaf in jax.tree.leaves(updates["vae"]):
    np.testing.assert_allclose(np.asarray(leaf), -1e-4, rtol=1e-4)
  # default (0): one Adam for everything at optimizer.learning_rate, as before
  same = make_method(_config(**{"optimizer.learning_rate": 1e-4}))
  updates, _ = same.optimizer().update(grads, same.optimizer().init(params), params)
  np.testing.assert_allclose(np.asarray(updates["adjacency_delta"]), -1e-4, rtol=1e-4)
  with pytest.raises(ValueError, match="graph_learning_rate=-1.0 must be a finite number >= 0"):
    make_method(_config(**{"optimizer.graph_learning_rate": -1.0})).optimizer()
  with pytest.raises(ValueError, match="oracle.kind='statistical' has none"):
    make_method(_config(**{"oracle.kind": "statistical", "model.prior_corruption": "uniform"}))


@pytest.mark.slow
def test_ablation_untrained_control_equals_its_prior(tmp_path):
  import json
  from launch.gem_ablation import main
  root = str(tmp_path / "abl")
  argv = ["--config=configs/gem_dsprites.py", f"--workdir={root}", "--variants=untrained",
          "--accuracies=", "--config.oracle.num_images=500", "--config.data.pool_size=2000",
          "--config.evals.graph_recovery.num_images=64",
          "--config.evals.gem_disentanglement.num_train=200",
          "--config.evals.gem_disentanglement.num_eval=100"]
  assert main(argv) == 0
  with open(os.path.join(root, "ablation.json")) as f:
    row = json.load(f)["rows"][0]
  assert row["variant"] == "untrained"
  # the untrained DisGraph is exactly its prior: training added nothing
  assert row["learned_auroc"] == row["prior_auroc"]
  assert row["learned_minus_prior_auroc"] == 0.0 and row["learned_minus_prior_shd"] == 0.0


@pytest.mark.slow
def test_ablation_trains_its_variants_through_the_shared_runner(tmp_path):
  """The trained variants are run_cells cells: ROOT/<variant>_seed<s>, evaluated by both GEM
  evaluators, resumable (a second run trains nothing and gives the same rows)."""
  import json
  from launch.gem_ablation import main
  root = str(tmp_path / "abl")
  argv = ["--config=configs/gem_dsprites.py", f"--workdir={root}", "--variants=full,untrained",
          "--accuracies=", "--config.oracle.num_images=500", "--config.data.pool_size=2000",
          "--config.train.num_steps=2", "--config.train.batch_size=8",
          "--config.train.checkpoint_every=2", "--config.train.plots_at_end=false",
          "--config.evals.graph_recovery.num_images=64",
          "--config.evals.gem_disentanglement.num_train=200",
          "--config.evals.gem_disentanglement.num_eval=100"]
  assert main(argv) == 0
  with open(os.path.join(root, "ablation.json")) as f:
    rows = json.load(f)["rows"]
  assert [r["variant"] for r in rows] == ["full", "untrained"]
  full = rows[0]
  assert {"learned_auroc", "prior_auroc", "mig"} <= set(full)  # graph_recovery + gem_disentanglement
  assert os.path.isdir(os.path.join(root, "full_seed0", "checkpoints", "2"))
  assert main(argv) == 0  # finished cells are skipped, not retrained
  with open(os.path.join(root, "ablation.json")) as f:
    again = json.load(f)["rows"]
  assert again[0]["learned_auroc"] == full["learned_auroc"]
