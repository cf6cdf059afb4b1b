"""The engine's reliability: checkpoint verification, classified errors, nothing silently lost.

(1 vs N devices, pmap vs shard_map, exact resume, preemption and restore on other device counts
run for every method in tests/test_engine_contract.py.)
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from jaxdisent.runs import fit
from jaxdisent.train import CheckpointError, NonFiniteLossError
from jaxdisent.train.config import load_config
from jaxdisent.train.logging import read_metrics
from jaxdisent.runs import restore_latest

from conftest import ROOT, tiny_vae_config


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def data_files(step_dir):
  """The largest files of a checkpoint step (the array data, not the metadata)."""
  files = [os.path.join(r, n) for r, _, names in os.walk(step_dir) for n in names]
  return sorted(files, key=os.path.getsize, reverse=True)


def flip_bytes(path, count=400, offset=None):
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    start = len(data) // 2 if offset is None else offset
    for i in range(start, min(start + count, len(data))):
      data[i] ^= 0xFF
    f.seek(0)
    f.write(data)


@pytest.mark.slow
def test_metrics_logged_after_last_checkpoint_are_replaced_on_resume(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 3}), workdir, quiet=True)  # ckpts 2 and 3
  shutil.rmtree(os.path.join(workdir, "checkpoints", "3"))          # died before saving 3
  result = fit(tiny_vae_config(), workdir, quiet=True)
  assert result.resumed_from == 2
  steps = [m["step"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in m]
  assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_flipped_bytes_are_detected_and_training_falls_back(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  straight = fit(tiny_vae_config(), str(tmp_path / "straight"), quiet=True)
  fit(tiny_vae_config(), workdir, quiet=True)                        # checkpoints 2 and 4
  flip_bytes(data_files(os.path.join(workdir, "checkpoints", "4"))[0])  # same size, wrong bytes
  with pytest.raises(CheckpointError, match="step 4 .*corrupt.*--step=2") as error:
    restore_latest(workdir)
  assert error.value.kind == "corrupt"
  result = fit(tiny_vae_config(), workdir)                             # retrains step 4 from 2
  err = capsys.readouterr().err
  assert "corrupt" in err and "falling back to step 2" in err
  assert result.resumed_from == 2 and result.step == 4
  assert os.path.isdir(os.path.join(workdir, "corrupt_checkpoints", "4"))
  for x, y in zip(leaves(straight.state), leaves(result.state), strict=True):
    np.testing.assert_array_equal(x, y)
  _, _, state, step = restore_latest(workdir)                         # the rebuilt step verifies
  assert step == 4


@pytest.mark.slow
def test_unreadable_step_is_one_line_corrupt_error_naming_the_earlier_step(tmp_path, monkeypatch):
  """Flipped bytes land either in array data (the checksum catches them) or in a compressed chunk
  Orbax cannot decompress; then TensorStore raises with a multi-line spec of the store in its text
  (seen on a fresh machine). The message must still be one line naming the step and the way back."""
  import orbax.checkpoint as ocp
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(), workdir, quiet=True)                        # checkpoints 2 and 4

  def unreadable(self, step, *args, **kwargs):
    raise ValueError(f"FAILED_PRECONDITION: Error reading 'params.decoder.Dense_1.kernel/0.0' in "
                     f"step {step}: ZSTD_decompressStream() failed\nTensorStore({{\n  'base': {{\n"
                     "    'driver': 'zarr',\n  }},\n}})")

  monkeypatch.setattr(ocp.CheckpointManager, "restore", unreadable)
  with pytest.raises(CheckpointError, match="step 4 .*corrupt.*--step=2") as error:
    restore_latest(workdir)
  assert error.value.kind == "corrupt" and "\n" not in str(error.value)
  assert "ZSTD_decompressStream() failed TensorStore({ 'base'" in str(error.value)


@pytest.mark.slow
def test_garbled_metadata_is_called_corrupt_not_another_config(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  step_dir = os.path.join(workdir, "checkpoints", "2")
  metadata = [p for p in data_files(step_dir) if os.path.basename(p) == "_METADATA"]
  assert metadata
  for path in metadata:
    with open(path, "w") as f:
      f.write("{ this is not json")
  with pytest.raises(CheckpointError) as error:
    restore_latest(workdir)
  assert error.value.kind == "corrupt" and "different config" not in str(error.value)


@pytest.mark.slow
def test_incompatible_config_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  with pytest.raises(ValueError, match="model.latent_dim: 10 -> 6.*new --workdir"):
    fit(tiny_vae_config(**{"model.latent_dim": 6}), workdir, quiet=True)
  # a config.json hand-edited to look compatible still cannot load mismatched arrays: the
  # checkpoint's manifest names the first array that differs, before any file is read
  path = os.path.join(workdir, "config.json")
  saved = json.load(open(path))
  saved["model"]["latent_dim"] = 6
  json.dump(saved, open(path, "w"))
  with pytest.raises(CheckpointError, match="different config") as error:
    fit(tiny_vae_config(**{"model.latent_dim": 6}), workdir, quiet=True)
  assert error.value.kind == "config" and "(6,)" in str(error.value) or "6)" in str(error.value)
  assert os.path.isdir(os.path.join(workdir, "checkpoints", "2"))     # nothing was moved


@pytest.mark.slow
def test_a_crashed_first_run_does_not_block_the_corrected_command(tmp_path):
  workdir = str(tmp_path / "run")
  with pytest.raises(ValueError, match="latent_dim=0"):
    fit(tiny_vae_config(**{"model.latent_dim": 0}), workdir, quiet=True)
  assert not os.path.exists(os.path.join(workdir, "config.json"))
  # a config.json left by an older version, with no checkpoint, is simply replaced
  os.makedirs(workdir, exist_ok=True)
  json.dump({"method": "beta_vae", "model": {"latent_dim": 3}}, open(os.path.join(workdir, "config.json"), "w"))
  assert fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True).step == 2


@pytest.mark.slow
def test_half_written_metrics_line_does_not_block_resume(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 3, "loss": 12')                              # a crash mid-write
  result = fit(tiny_vae_config(), workdir)
  assert result.step == 4 and "half-written" in capsys.readouterr().err
  steps = [m["step"] for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "loss" in m]
  assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize("key,value,message", [
    ("train.keep_checkpoints", 0, "keep no checkpoint"),
    ("train.num_steps", 0, "num_steps=0 must be an integer >= 1"),
    ("train.num_steps", -5, "num_steps=-5"),
    ("train.checkpoint_every", 0, "checkpoint_every=0"),
    ("train.log_every", 0, "log_every=0"),
    ("train.batch_size", 0, "batch_size=0"),
    ("train.batch_size", -8, "batch_size=-8"),
    ("optimizer.learning_rate", -1e-3, "learning_rate=-0.001 must be a finite number >= 0"),
    ("model.latent_dim", 0, "latent_dim=0 must be an integer >= 1"),
])
def test_bad_settings_fail_before_any_work(tmp_path, key, value, message):
  workdir = str(tmp_path / "run")
  with pytest.raises(ValueError, match=message):
    fit(tiny_vae_config(**{key: value}), workdir, quiet=True)
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))


@pytest.mark.slow
def test_nan_loss_names_the_step_and_keeps_the_last_verified_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  # (loss.beta=nan no longer gets this far: the config's domains refuse it.) A learning rate
  # that blows the parameters up makes the loss non-finite within a step or two of the resume.
  bad = tiny_vae_config(**{"optimizer.learning_rate": 1e30, "train.num_steps": 6})
  with pytest.raises(NonFiniteLossError, match="at step [345].*last good checkpoint \\(step 2, verified\\)"):
    fit(bad, workdir, quiet=True)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "manifests"]


def test_batch_not_divisible_by_devices(tmp_path):
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    fit(tiny_vae_config(**{"train.batch_size": 6}), str(tmp_path / "run"), quiet=True)


def test_unknown_config_key():
  with pytest.raises(KeyError, match="unknown config key 'train.num_stepz'.*num_steps"):
    load_config(os.path.join(ROOT, "configs", "beta_vae_dsprites.py"), {"train.num_stepz": 3})


@pytest.mark.slow
def test_periodic_evaluation_writes_a_record_per_step(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.eval_every": 2, "evals.reconstruction.num_examples": 16}),
      workdir, quiet=True)
  records = sorted(os.listdir(os.path.join(workdir, "eval")))
  assert {"step_2.json", "step_4.json", "latest.json"} <= set(records)
  evals = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl"))
           if "eval/reconstruction/reconstruction" in m]
  assert [m["step"] for m in evals] == [2, 4]


@pytest.mark.slow
def test_the_engine_fit_needs_the_method_and_runs_fit_builds_it(tmp_path):
  from jaxdisent.methods import make_method
  from jaxdisent.train import fit as engine_fit
  config = tiny_vae_config(**{"train.num_steps": 1, "train.eval_at_end": False,
                              "train.plots_at_end": False})
  with pytest.raises(ValueError, match=r"needs the method.*make_method.*jaxdisent.runs.fit"):
    engine_fit(config, str(tmp_path / "a"))
  assert not os.path.exists(str(tmp_path / "a"))            # refused before anything is written
  a = engine_fit(config, str(tmp_path / "a"), method=make_method(config), quiet=True)
  b = fit(config, str(tmp_path / "b"), quiet=True)          # jaxdisent.runs.fit
  for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
