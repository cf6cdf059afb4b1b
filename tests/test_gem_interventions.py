"""Interventions scored against the known graph (jaxdisent.metrics.graph: scm_do, ancestor_matrix,
interventional_effects, intervention_scores; the graph_interventions evaluator)."""

import os

import numpy as np
import pytest

from jaxdisent.metrics import graph as G

CHAIN = np.array([[0, 0.5, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])   # 0 -> 1 -> 2, 3


def test_ancestors_are_the_transitive_closure():
  np.testing.assert_array_equal(G.ancestor_matrix(CHAIN), [[0, 1, 1, 0], [0, 0, 1, 0],
                                                           [0, 0, 0, 0], [0, 0, 0, 0]])
  cycle = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
  np.testing.assert_array_equal(G.ancestor_matrix(cycle), 1 - np.eye(3))


def test_do_moves_descendants_along_the_path_weights_only():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(6, 4))
  out = G.scm_do(z, CHAIN, 1, 3.0)
  np.testing.assert_allclose(out[:, 0], z[:, 0])                 # an ancestor keeps its value
  np.testing.assert_allclose(out[:, 3], z[:, 3])                 # an unrelated node too
  np.testing.assert_allclose(out[:, 1], 3.0)
  np.testing.assert_allclose(out[:, 2] - z[:, 2], 2.0 * (3.0 - z[:, 1]), atol=1e-12)
  at_root = G.scm_do(z, CHAIN, 0, -1.0)                         # two steps down the chain
  np.testing.assert_allclose(at_root[:, 2] - z[:, 2], 2.0 * 0.5 * (-1.0 - z[:, 0]), atol=1e-12)
  # do() with the codes' own value changes nothing; propagate=False sets the coordinate only
  np.testing.assert_allclose(G.scm_do(z[:1], CHAIN, 1, z[0, 1]), z[:1], atol=1e-12)
  flat = G.scm_do(z, CHAIN, 1, 3.0, propagate=False)
  np.testing.assert_allclose(flat[:, 2], z[:, 2])


def test_effects_of_a_perfect_reader_rank_ancestors_first():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(32, 4))
  values = [np.linspace(-2, 2, 5)] * 4
  effects = G.interventional_effects(lambda c: c, z, CHAIN, [0, 1, 2, 3], values)
  # no upstream or sideways effect (up to the solve's rounding)
  assert max(effects[1, 0], effects[2, 1], effects[3, 2], effects[0, 3]) < 1e-12
  assert effects[0, 2] > 0 and effects[1, 2] > 0
  scores = G.intervention_scores(effects, CHAIN)
  assert scores["auroc"] == 1.0 and scores["effect_on_non_descendants"] < 1e-12
  assert scores["self_effect"] > 0
  # a reader that sees nothing scores chance
  blind = G.interventional_effects(lambda c: np.zeros_like(c), z, CHAIN, [0, 1, 2, 3], values)
  assert G.intervention_scores(blind, CHAIN)["auroc"] == 0.5
  with pytest.raises(ValueError, match="needs both edges and non-edges|AUROC / AUPRC need"):
    G.intervention_scores(effects, np.zeros((4, 4)))


@pytest.mark.slow
def test_evaluator_on_a_tiny_scm_run(tmp_path):
  from jaxdisent.evals import read_record
  from jaxdisent.runs import fit
  from jaxdisent.train.config import load_config
  from conftest import ROOT
  from jaxdisent.runs import evaluate_workdir
  config = load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), {
      "train.batch_size": 8, "train.num_steps": 2, "train.checkpoint_every": 100,
      "oracle.num_images": 500, "data.pool_size": 2000, "evals.graph_recovery.num_images": 32,
      "train.eval_at_end": False, "train.plots_at_end": False, "model.prior": "scm",
      "loss.supervision_weight": 1.0, "loss.adversarial_weight": 0.0,
      "evals.graph_interventions.num_images": 16, "evals.graph_interventions.num_reference": 200,
      "evals.graph_interventions.num_values": 3})
  workdir = str(tmp_path / "scm")
  fit(config, workdir, quiet=True)
  out = evaluate_workdir(workdir, only=["graph_interventions"], log=lambda *a: None)
  record = out["graph_interventions"]
  for key in ("intervention_auroc", "intervention_auprc", "effect_on_descendants",
              "effect_on_non_descendants", "reader_error", "intervention_self_effect"):
    assert np.isfinite(record[key]), (key, record)
  assert 0 <= record["intervention_auroc"] <= 1 and record["propagated"] == 1.0
  assert read_record(workdir, 2)["evals"]["graph_interventions"]["reader_error"] >= 0
  for name in ("intervention_effects.png", "intervention_grid.png"):
    assert os.path.getsize(os.path.join(workdir, "plots", name)) > 1000


@pytest.mark.slow
def test_an_older_workdir_gets_the_new_evaluator_with_its_defaults(tmp_path):
  """A GEM run written before graph_interventions existed (no config.evals section) is evaluated
  with the evaluator's defaults when --only names it, and its settings can be overridden."""
  import json
  from launch.evaluate import main
  from conftest import ROOT
  from jaxdisent.runs import fit
  from jaxdisent.train.config import load_config
  config = load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), {
      "train.batch_size": 8, "train.num_steps": 1, "train.checkpoint_every": 100,
      "oracle.num_images": 500, "data.pool_size": 2000, "evals.graph_recovery.num_images": 32,
      "train.eval_at_end": False, "train.plots_at_end": False})
  with config.unlocked():
    del config.evals["graph_interventions"]
  workdir = str(tmp_path / "old")
  fit(config, workdir, quiet=True)
  assert "graph_interventions" not in json.load(open(os.path.join(workdir, "config.json")))["evals"]
  assert main([f"--workdir={workdir}", "--only=graph_interventions",
               "--config.evals.graph_interventions.num_images=8",
               "--config.evals.graph_interventions.num_reference=100"]) == 0
  from jaxdisent.evals import read_record
  record = read_record(workdir, 1)["evals"]["graph_interventions"]
  assert record["propagated"] == 0.0 and np.isfinite(record["reader_error"])   # gnn_decoder form
