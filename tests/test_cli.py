"""The README's quick-start command, shrunk: runs, writes plots, resumes, rejects bad keys."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT


def run_train(workdir, *extra, cache_dir=None):
  """Run the README's training command (XLA's default flags). ``cache_dir``: a persistent
  compilation cache the runs of one test share (they run one after another, so no two processes
  write it at once); the suite's own processes keep theirs private (conftest.py)."""
  command = [sys.executable, "-m", "launch.train", "--config=configs/beta_vae_dsprites.py",
             f"--workdir={workdir}", "--devices=2", "--config.train.batch_size=8",
             "--config.train.num_steps=4", "--config.train.log_every=2",
             "--config.train.checkpoint_every=2", *extra]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  env.pop("JAXDISENT_SKLEARN_JOBS", None)   # conftest.py's in-process fits: the user's default here
  if cache_dir is not None:
    env.update(JAX_ENABLE_COMPILATION_CACHE="true", JAX_COMPILATION_CACHE_DIR=str(cache_dir))
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_quick_start_command(tmp_path, capfd, monkeypatch):
  workdir, cache = tmp_path / "run", tmp_path / "compilation_cache"
  done = run_train(workdir, cache_dir=cache)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "on 2 device(s)" in done.stderr and "[jaxdisent] plots:" in done.stderr
  for name in ("reconstructions.png", "traversals.png"):
    assert (workdir / "plots" / name).stat().st_size > 1000
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4, 4]   # two logged steps + the end-of-run evaluation
  assert {"loss", "recon", "kl"} <= set(lines[0])
  assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 4
  # the cheap evaluator ran at the end and left its record and scalars
  assert json.loads((workdir / "eval" / "step_4.json").read_text())["evals"]["reconstruction"]
  assert "eval/reconstruction/reconstruction" in lines[-1]
  # The README's pmap == shard_map claim at XLA's default flags (the in-process tests compile at
  # -O0, conftest.py): the same command with train.parallel=pmap trains bitwise the same state.
  pmapped = run_train(tmp_path / "pmap", "--config.train.parallel=pmap",
                      "--config.train.eval_at_end=false", "--config.train.plots_at_end=false",
                      cache_dir=cache)
  assert pmapped.returncode == 0, pmapped.stderr[-3000:]
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  want, got = restore_latest(str(workdir))[2:], restore_latest(str(tmp_path / "pmap"))[2:]
  assert want[1] == got[1] == 4
  for a, b in zip(jax.tree.leaves(want[0]), jax.tree.leaves(got[0]), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # old key names still work (with a note); the slow evaluator can be switched into training;
  # train.plots_at_end=false leaves the plots as they were. The same entry point (launch.train's
  # main) with the same arguments, in this process: none of these switches depends on XLA's
  # flags, and a third cold process at XLA's defaults cost ~18 s of the suite.
  from launch.train import main  # pylint: disable=g-import-not-at-top
  drawn = (workdir / "plots" / "traversals.png").stat().st_mtime_ns
  monkeypatch.chdir(ROOT)
  capfd.readouterr()
  assert main(["--config=configs/beta_vae_dsprites.py", f"--workdir={workdir}", "--devices=2",
               "--config.train.batch_size=8", "--config.train.num_steps=6",
               "--config.train.log_every=2", "--config.train.checkpoint_every=2",
               "--config.eval.run_at_end=true", "--config.train.plots_at_end=false",
               "--config.eval.num_train=70", "--config.eval.num_eval=35",
               "--config.evals.disentanglement.dci_importance=random_forest"]) == 0
  again = capfd.readouterr()
  assert "deprecated" in again.err and "evals.disentanglement.run_in_training" in again.err
  assert "resumed" in again.err and "from step 4" in again.err
  record = json.loads((workdir / "eval" / "step_6.json").read_text())
  assert record["step"] == 6 and 0.0 <= record["evals"]["disentanglement"]["mig"] <= 1.0
  assert json.loads((workdir / "eval" / "latest.json").read_text())["step"] == 6
  assert (workdir / "plots" / "traversals.png").stat().st_mtime_ns == drawn
  assert "[jaxdisent] plots:" not in again.err


@pytest.mark.slow
def test_unknown_key_on_the_command_line(tmp_path):
  done = run_train(tmp_path / "run", "--config.train.num_stepz=3")
  assert done.returncode != 0
  assert "num_stepz" in done.stderr


BAD_TRAIN_INPUTS = [
    (["--config=configs"], "not a Python config file"),
    (["--config=README.md"], "not a Python config file"),
    (["--config=tests/conftest.py"], "defines no get_config()"),
    (["--config=configs/beta_vae_dsprites.py:small"], "has no variants"),
    (["--config=configs/nope.py"], "not found"),
    (["--config=configs/beta_vae_dsprites.py", "--devices=abc"], "--devices=abc: expected an integer"),
    (["--config=configs/beta_vae_dsprites.py", "--devices=0"], "--devices=0: must be >= 1"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.checkpoint_every=0"], "checkpoint_every=0"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.log_every=0"], "log_every=0"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.batch_size=-8"], "batch_size=-8"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.num_steps=0"], "num_steps=0"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.keep_checkpoints=0"], "keep no checkpoint"),
    (["--config=configs/beta_vae_dsprites.py", "--config.model.latent_dim=0"], "latent_dim=0"),
    (["--config=configs/beta_vae_dsprites.py", "--config.optimizer.learning_rate=-1"], "learning_rate=-1.0 must be"),
    (["--config=configs/beta_vae_dsprites.py", "--config.loss.objective=vae"], "loss.objective='vae'"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.parallel=dp"], "shard_map' or 'pmap'"),
    (["--config=configs/alignment_emergence.py"], "launch.alignment_study"),
    (["--config=configs/decalign_synthetic.py", "--config.loss.task=classification"], "num_classes >= 2"),
    (["--config=configs/sae_embeddings.py"], "data.path"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.num_steps=abc"],
     "--config.train.num_steps=abc: invalid literal for int() with base 10: 'abc' (expected an int"),
    (["--config=configs/beta_vae_dsprites.py", "--config.train.distributed=maybe"],
     "Non-boolean argument"),
    (["--config=configs/beta_vae_dsprites.py", "--config.data.source=imagenet"],
     "unknown ground_truth data source data.source='imagenet'; use one of: dsprites"),
]


@pytest.mark.parametrize("args,message", BAD_TRAIN_INPUTS)
def test_bad_train_inputs_get_one_line_and_status_2(tmp_path, capsys, monkeypatch, args, message):
  from launch.train import main
  monkeypatch.chdir(ROOT)
  workdir = tmp_path / "run"
  assert main([*args, f"--workdir={workdir}"]) == 2
  err = capsys.readouterr().err
  assert message in err, err
  assert "Traceback" not in err
  assert not (workdir / "config.json").exists()      # nothing written before the config is valid


def test_config_files_load_one_after_another_through_config_flags(tmp_path):
  """config_flags' loader re-executes into a module kept in sys.modules: without a fresh module a
  file with no get_config() would silently get the previous file's (and a sweep the wrong config)."""
  from jaxdisent.train.config import load_config
  (tmp_path / "a.py").write_text("import ml_collections\ndef get_config():\n"
                                 "  return ml_collections.ConfigDict({'a': 1})\n")
  (tmp_path / "b.py").write_text("import ml_collections\ndef get_config(variant):\n"
                                 "  return ml_collections.ConfigDict({'b': variant})\n")
  (tmp_path / "c.py").write_text("x = 1\n")
  assert load_config(str(tmp_path / "a.py")).to_dict() == {"a": 1}
  assert load_config(f"{tmp_path / 'b.py'}:small").to_dict() == {"b": "small"}
  with pytest.raises(ValueError, match="defines no get_config"):
    load_config(str(tmp_path / "c.py"))
  with pytest.raises(ValueError, match="needs a variant"):
    load_config(str(tmp_path / "b.py"))
  with pytest.raises(ValueError, match="has no variants"):
    load_config(f"{tmp_path / 'a.py'}:small")


def test_overrides_are_parsed_by_config_flags_types(monkeypatch, capsys):
  from launch.common import UsageError, apply_overrides
  from jaxdisent.train.config import load_config
  monkeypatch.chdir(ROOT)
  config = load_config("configs/decalign_synthetic.py")
  config = apply_overrides(config, [("data.synthetic.widths", "6,3,4"),
                                    ("loss.mmd_bandwidths", "(1.0, 2.0)"),
                                    ("train.num_steps", "7"), ("train.distributed", "false"),
                                    ("loss.alpha", "0.25")])          # DecAlign's old name
  assert config.data.synthetic.widths == (6, 3, 4)
  assert config.loss.mmd_bandwidths == (1.0, 2.0)
  assert config.train.num_steps == 7 and config.train.distributed is False
  assert config.loss.heterogeneity_weight == 0.25
  assert "loss.alpha is deprecated" in capsys.readouterr().err
  with pytest.raises(UsageError, match="Did you mean train.num_steps"):
    apply_overrides(config, [("train.num_stepz", "3")])
  with pytest.raises(UsageError, match="--config.model.width=1e3"):
    apply_overrides(config, [("model.width", "1e3")])
