"""The README's quick-start command, shrunk: runs, writes plots, resumes, rejects bad keys."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def run_train(workdir, *extra):
  command = [sys.executable, "-m", "launch.train", "--config=configs/beta_vae_dsprites.py",
             f"--workdir={workdir}", "--devices=2", "--config.train.batch_size=8",
             "--config.train.num_steps=4", "--config.train.log_every=2",
             "--config.train.checkpoint_every=2", *extra]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_quick_start_command(tmp_path):
  workdir = tmp_path / "run"
  done = run_train(workdir)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "on 2 device(s)" in done.stderr
  for name in ("reconstructions.png", "traversals.png"):
    assert (workdir / "plots" / name).stat().st_size > 1000
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines] == [2, 4]
  assert {"loss", "recon", "kl"} <= set(lines[0])
  assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 4
  again = run_train(workdir, "--config.train.num_steps=6", "--config.eval.run_at_end=true",
                    "--config.eval.num_train=100", "--config.eval.num_eval=50",
                    "--config.eval.dci_importance=random_forest")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resumed" in again.stderr and "from step 4" in again.stderr
  assert json.loads((workdir / "eval.json").read_text())["step"] == 6


def test_unknown_key_on_the_command_line(tmp_path):
  done = run_train(tmp_path / "run", "--config.train.num_stepz=3")
  assert done.returncode != 0
  assert "num_stepz" in done.stderr
