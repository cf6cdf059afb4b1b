"""The shared engine: sharding equivalence, pmap, resume, preemption, resharding, bad input."""

import json
import os
import shutil
import signal

import jax
import numpy as np
import pytest

from jaxdisent.train import CheckpointError, NonFiniteLossError, fit
from jaxdisent.train.config import load_config
from jaxdisent.train.logging import read_metrics

from conftest import ROOT, tiny_vae_config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def assert_trees_close(a, b, atol=1e-4):
  # Different device counts reduce in a different order; Adam turns those rounding differences in
  # near-zero gradients into ~1e-5 parameter differences after a few steps.
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


def assert_trees_equal(a, b):
  for x, y in zip(leaves(a), leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("objective", ["beta_vae", "beta_tcvae"])
def test_one_vs_four_devices_same_parameters(tmp_path, objective):
  config = tiny_vae_config(**{"loss.objective": objective, "train.num_steps": 3,
                              "train.checkpoint_every": 100})
  one = fit(config, str(tmp_path / "one"), devices=jax.devices()[:1], quiet=True)
  four = fit(config, str(tmp_path / "four"), devices=jax.devices()[:4], quiet=True)
  assert_trees_close(one.state.params, four.state.params)
  l1 = [m["loss"] for m in read_metrics(str(tmp_path / "one" / "metrics.jsonl"))]
  l4 = [m["loss"] for m in read_metrics(str(tmp_path / "four" / "metrics.jsonl"))]
  np.testing.assert_allclose(l1, l4, rtol=1e-5)


def test_pmap_and_shard_map_agree(tmp_path):
  config = tiny_vae_config(**{"train.num_steps": 3, "train.checkpoint_every": 100})
  sharded = fit(config, str(tmp_path / "s"), quiet=True)
  config.train.parallel = "pmap"
  pmapped = fit(config, str(tmp_path / "p"), quiet=True)
  assert_trees_close(sharded.state.params, pmapped.state.params)
  assert_trees_close(sharded.state.opt_state, pmapped.state.opt_state)


def test_resume_is_exact(tmp_path):
  straight = fit(tiny_vae_config(), str(tmp_path / "straight"), quiet=True)
  config = tiny_vae_config()
  # first half: stop at step 2 as if killed right after the checkpoint
  fit(tiny_vae_config(**{"train.num_steps": 2}), str(tmp_path / "resumed"), quiet=True)
  resumed = fit(config, str(tmp_path / "resumed"), quiet=True)
  assert resumed.resumed_from == 2
  assert_trees_equal(straight.state.params, resumed.state.params)
  assert_trees_equal(straight.state.opt_state, resumed.state.opt_state)
  a = read_metrics(str(tmp_path / "straight" / "metrics.jsonl"))
  b = read_metrics(str(tmp_path / "resumed" / "metrics.jsonl"))
  assert [m["step"] for m in a] == [m["step"] for m in b] == [1, 2, 3, 4]
  assert [m["loss"] for m in a] == [m["loss"] for m in b]


def test_metrics_logged_after_last_checkpoint_are_replaced_on_resume(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 3}), workdir, quiet=True)  # ckpts 2 and 3
  shutil.rmtree(os.path.join(workdir, "checkpoints", "3"))          # died before saving 3
  result = fit(tiny_vae_config(), workdir, quiet=True)
  assert result.resumed_from == 2
  steps = [m["step"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))]
  assert steps == [1, 2, 3, 4]


def test_sigterm_saves_and_stops(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_vae_config(**{"train.num_steps": 6, "train.checkpoint_every": 100})
  result = fit(config, workdir, quiet=True,
               step_callback=lambda s: s == 3 and os.kill(os.getpid(), signal.SIGTERM))
  assert result.preempted and result.step == 3
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]
  assert not os.path.exists(os.path.join(workdir, "plots"))
  resumed = fit(config, workdir, quiet=True)
  assert resumed.resumed_from == 3 and resumed.step == 6 and not resumed.preempted
  straight = fit(config, str(tmp_path / "straight"), quiet=True)
  assert_trees_equal(straight.state.params, resumed.state.params)


def test_restore_onto_a_different_device_count(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, devices=jax.devices()[:4], quiet=True)
  resumed = fit(tiny_vae_config(), workdir, devices=jax.devices()[:2], quiet=True)
  straight = fit(tiny_vae_config(), str(tmp_path / "straight"), devices=jax.devices()[:4], quiet=True)
  assert resumed.resumed_from == 2
  assert_trees_close(resumed.state.params, straight.state.params)


def test_incompatible_config_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  with pytest.raises(ValueError, match="model.latent_dim: 10 -> 6.*new --workdir"):
    fit(tiny_vae_config(**{"model.latent_dim": 6}), workdir, quiet=True)
  # a config.json hand-edited to look compatible still cannot load mismatched arrays
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    saved = json.load(f)
  saved["model"]["latent_dim"] = 6
  with open(path, "w") as f:
    json.dump(saved, f)
  with pytest.raises(CheckpointError, match="does not match"):
    fit(tiny_vae_config(**{"model.latent_dim": 6}), workdir, quiet=True)


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  step_dir = os.path.join(workdir, "checkpoints", "2")
  for root, _, files in os.walk(step_dir):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"garbage")
  with pytest.raises(CheckpointError, match="step 2"):
    fit(tiny_vae_config(), workdir, quiet=True)


def test_nan_loss_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  bad = tiny_vae_config(**{"loss.beta": float("nan"), "train.num_steps": 6})
  with pytest.raises(NonFiniteLossError, match="at step 2.*last good checkpoint \\(step 2\\)"):
    fit(bad, workdir, quiet=True)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]


def test_batch_not_divisible_by_devices(tmp_path):
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    fit(tiny_vae_config(**{"train.batch_size": 6}), str(tmp_path / "run"), quiet=True)


def test_unknown_config_key():
  with pytest.raises(KeyError, match="unknown config key 'train.num_stepz'.*num_steps"):
    load_config(os.path.join(ROOT, "configs", "beta_vae_dsprites.py"), {"train.num_stepz": 3})
