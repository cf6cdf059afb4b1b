"""launch.evaluate on a tiny trained run: eval.json keys, plots, and clear errors."""

import json
import os

import pytest

from jaxdisent.train import fit
from launch.evaluate import evaluate_workdir, main as evaluate_main

from conftest import tiny_vae_config

KEYS = ["mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness",
        "factor_vae_score", "beta_vae_score", "modularity", "explicitness", "irs",
        "gaussian_total_correlation", "mutual_info_between_codes"]


def test_evaluate_writes_flat_scores_and_plots(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  results = evaluate_workdir(workdir, num_train=200, num_eval=100, dci_importance="random_forest")
  with open(os.path.join(workdir, "eval.json")) as f:
    saved = json.load(f)
  assert saved["step"] == 2
  for key in KEYS:
    assert isinstance(saved[key], float), key
    assert saved[key] == pytest.approx(results[key])
  assert 0.0 <= saved["factor_vae_score"] <= 1.0 and 0.0 <= saved["mig"] <= 1.0
  assert len(saved["captured_factor"]) == 10
  for name in ("mutual_information.png", "traversals_labelled.png"):
    assert os.path.getsize(os.path.join(workdir, "plots", name)) > 1000


def test_evaluate_errors(tmp_path, capsys):
  assert evaluate_main([f"--workdir={tmp_path / 'missing'}"]) == 2
  assert "not a jaxdisent run directory" in capsys.readouterr().err
  workdir = tmp_path / "no_ckpt"
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(tiny_vae_config().to_dict()))
  assert evaluate_main([f"--workdir={workdir}"]) == 2
  assert "no checkpoints" in capsys.readouterr().err
  other = json.loads((workdir / "config.json").read_text())
  other["method"] = "sae"
  (workdir / "config.json").write_text(json.dumps(other))
  (workdir / "checkpoints").mkdir()
  assert evaluate_main([f"--workdir={workdir}"]) == 2
  assert "no finished checkpoint" in capsys.readouterr().err
  assert evaluate_main(["--workdir=x", "--dci_importance=lasso"]) == 2
  assert "gbt or random_forest" in capsys.readouterr().err
