"""GEM through the shared engine: 1 vs 4 devices, exact resume, the oracle stage, bad inputs."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdisent.runs import fit
from jaxdisent.train.config import load_config
from jaxdisent.train.logging import read_metrics

from conftest import ROOT


def gem_config(**overrides):
  base = {"train.batch_size": 8, "train.num_steps": 2, "train.log_every": 1,
          "train.checkpoint_every": 1, "oracle.num_images": 500, "data.pool_size": 2000,
          "evals.graph_recovery.num_images": 32}
  base.update(overrides)
  config = load_config(os.path.join(ROOT, "configs", "gem_dsprites.py"), base)
  return config


def no_evals(config):
  for name in list(config.evals.keys()):
    del config.evals[name]
  return config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.slow
def test_batches_identical_across_device_splits():
  from jaxdisent.methods import make_method
  method = make_method(gem_config())
  whole = method.local_batch(0, 3, 0, 8)
  halves = [method.local_batch(0, 3, s, 4) for s in (0, 4)]
  for key in whole:
    np.testing.assert_array_equal(np.asarray(whole[key]),
                                  np.concatenate([np.asarray(h[key]) for h in halves]))


# 1 vs 4 devices (in float64), pmap == shard_map, exact resume and preemption, restore on other
# device counts: tests/test_engine_contract.py runs them for GEM (conftest.TINY_CONFIGS["gem"]).


@pytest.mark.slow
def test_train_leaves_graph_pictures_and_evaluation(tmp_path):
  workdir = str(tmp_path / "run")
  fit(gem_config(), workdir, quiet=True)
  for name in ("graph.png", "relations.png", "recovery_curves.png", "traversals.png"):
    assert os.path.exists(os.path.join(workdir, "plots", name)), name
  from jaxdisent.evals import read_record
  record = read_record(workdir)["evals"]["graph_recovery"]
  assert 0.0 <= record["learned_auroc"] <= 1.0 and 0.0 <= record["prior_auroc"] <= 1.0
  metrics = read_metrics(os.path.join(workdir, "metrics.jsonl"))
  train_rows = [m for m in metrics if "loss" in m]
  assert {"graph_prior", "sparsity", "discriminator", "generator"} <= set(train_rows[-1])
  assert any("eval/graph_recovery/learned_auroc" in m for m in metrics)  # the loop's writer


@pytest.mark.slow
def test_oracle_stage_then_training_from_scores_file(tmp_path):
  out = str(tmp_path / "scores.npz")
  env = dict(os.environ, PYTHONPATH=ROOT)
  command = [sys.executable, "-m", "launch.oracle", f"--config={ROOT}/configs/gem_dsprites.py",
             f"--out={out}", "--num_images=300", "--config.data.pool_size=2000",
             "--config.oracle.missing_rate=0.1"]
  result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  config = no_evals(gem_config(**{"oracle.scores_path": out, "train.num_steps": 1}))
  from jaxdisent.methods import make_method
  method = make_method(config)
  batch = method.local_batch(0, 0, 0, 8)
  assert np.asarray(batch["pool_index"]).max() < 300  # training draws the scored images
  fit(config, str(tmp_path / "run"), quiet=True)
  # a scores file for another dataset is refused with the fix in the message
  other = gem_config(**{"oracle.scores_path": out, "data.edges": "shape->scale:0.5"})
  with pytest.raises(ValueError, match="re-run launch.oracle"):
    make_method(other)
  bad = subprocess.run(command[:-3] + ["--config.oracle.kind=chat",
                                       "--config.oracle.base_url=http://127.0.0.1:9/v1",
                                       "--config.oracle.model=m",
                                       "--config.oracle.max_retries=0"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and "connection failed" in bad.stderr


def test_bad_configs():
  from jaxdisent.methods import make_method
  with pytest.raises(ValueError, match=r"unknown attribute name\(s\) \['colour'\]"):
    make_method(gem_config(**{"oracle.attributes": "shape,colour"}))
  with pytest.raises(ValueError, match="raise model.latent_dim"):
    make_method(gem_config(**{"model.latent_dim": 3}))
  with pytest.raises(ValueError, match="unknown oracle.kind"):
    make_method(gem_config(**{"oracle.kind": "gpt"}))
  with pytest.raises(ValueError, match="launch.oracle"):
    make_method(gem_config(**{"oracle.kind": "chat"}))
  with pytest.raises(ValueError, match="unknown graph data source data.source=.mnist.; use one of: correlated_dsprites"):
    make_method(gem_config(**{"data.source": "mnist"}))


@pytest.mark.slow
def test_statistical_and_pendulum_variants_train(tmp_path):
  config = no_evals(gem_config(**{"oracle.kind": "statistical", "loss.structure_weight": 1.0,
                                  "model.kind": "none", "loss.adversarial_weight": 0.0,
                                  "train.num_steps": 1}))
  result = fit(config, str(tmp_path / "stat"), quiet=True)
  assert np.isfinite(np.asarray(result.state.model_state["prior"])).all()
  pendulum = load_config(os.path.join(ROOT, "configs", "gem_pendulum.py"),
                         {"train.batch_size": 8, "train.num_steps": 1, "train.log_every": 1,
                          "oracle.num_images": 500})
  fit(no_evals(pendulum), str(tmp_path / "pend"), quiet=True)
