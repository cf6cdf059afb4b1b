"""launch.evaluate on tiny trained runs: the evaluation record, plots, and clear errors."""

import json
import os

import pytest

from jaxdisent.evals import read_record
from jaxdisent.runs import fit
from jaxdisent.train.logging import read_metrics
from jaxdisent.runs import evaluate_workdir
from launch.evaluate import main as evaluate_main

from conftest import tiny_sae_config, tiny_vae_config

KEYS = ["mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness",
        "factor_vae_score", "beta_vae_score", "modularity", "explicitness", "irs",
        "gaussian_total_correlation", "mutual_info_between_codes"]
SMALL = [("evals.disentanglement.num_train", "70"), ("evals.disentanglement.num_eval", "35"),
         ("evals.disentanglement.dci_importance", "random_forest")]


@pytest.mark.slow
def test_evaluate_writes_the_record_metrics_and_plots(tmp_path):
  workdir = str(tmp_path / "run")
  fit(tiny_vae_config(**{"train.num_steps": 2}), workdir, quiet=True)
  results = evaluate_workdir(workdir, overrides=SMALL)
  saved = read_record(workdir)
  assert saved["step"] == 2 and set(saved["evals"]) == {"reconstruction", "disentanglement"}
  scores = saved["evals"]["disentanglement"]
  for key in KEYS:
    assert isinstance(scores[key], float), key
    assert scores[key] == pytest.approx(results["disentanglement"][key])
  assert 0.0 <= scores["factor_vae_score"] <= 1.0 and 0.0 <= scores["mig"] <= 1.0
  details = json.load(open(os.path.join(workdir, "eval", "step_2", "disentanglement",
                                        "details.json")))
  assert len(details["captured_factor"]) == 10
  last = read_metrics(os.path.join(workdir, "metrics.jsonl"))[-1]
  assert last["step"] == 2 and last["eval/disentanglement/mig"] == scores["mig"]
  for name in ("mutual_information.png", "traversals_labelled.png"):
    assert os.path.getsize(os.path.join(workdir, "plots", name)) > 1000


@pytest.mark.slow
def test_evaluate_an_sae_run_and_reject_what_it_does_not_declare(tmp_path, capsys):
  workdir = str(tmp_path / "sae")
  fit(tiny_sae_config(**{"train.num_steps": 2, "evals.dictionary.num_pairs": 64}), workdir,
      quiet=True)
  assert evaluate_main([f"--workdir={workdir}"]) == 0
  assert "fvu" in read_record(workdir)["evals"]["dictionary"]
  assert evaluate_main([f"--workdir={workdir}", "--only=disentanglement"]) == 2
  assert "does not declare" in capsys.readouterr().err
  assert evaluate_main([f"--workdir={workdir}", "--config.model.dict_size=3"]) == 2
  assert "cannot change at evaluation" in capsys.readouterr().err


def test_evaluate_errors(tmp_path, capsys):
  assert evaluate_main([f"--workdir={tmp_path / 'missing'}"]) == 2
  assert "not a jaxdisent run directory" in capsys.readouterr().err
  workdir = tmp_path / "no_ckpt"
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(tiny_vae_config().to_dict()))
  assert evaluate_main([f"--workdir={workdir}"]) == 2
  assert "no checkpoints" in capsys.readouterr().err
  (workdir / "checkpoints").mkdir()
  assert evaluate_main([f"--workdir={workdir}"]) == 2
  assert "no finished checkpoint" in capsys.readouterr().err
  assert evaluate_main(["--workdir=x", "--num_train=abc"]) == 2
  assert "--num_train=abc: expected an integer" in capsys.readouterr().err
  assert evaluate_main(["--workdir=x", "--dci_importance=lasso"]) == 2
  assert "gbt or random_forest" in capsys.readouterr().err
  assert evaluate_main(["--workdir=x", "--step=abc"]) == 2
  assert "--step=abc: expected an integer" in capsys.readouterr().err
  assert evaluate_main(["--workdir=x", "--devices=0"]) == 2
  assert "--devices=0: must be >= 1" in capsys.readouterr().err


def test_evaluate_untrained_writes_the_step_0_control_once(tmp_path):
  """runs.evaluate_untrained (the control row of the GEM ablation and the beta-VAE curve): the
  model at initialisation scored by the named evaluators, written as eval/step_0.json; a second
  call returns that record without evaluating again."""
  from jaxdisent.runs import evaluate_untrained  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "untrained")
  config = tiny_vae_config()
  record = evaluate_untrained(config, workdir, only=["reconstruction"])
  assert record["step"] == 0 and set(record["evals"]) == {"reconstruction"}
  # an untrained Bernoulli decoder predicts ~0.5 everywhere: ~64*64*log(2) nats per image
  assert 2000 < record["evals"]["reconstruction"]["reconstruction"] < 4000
  path = os.path.join(workdir, "eval", "step_0.json")
  before = os.stat(path).st_mtime_ns
  assert evaluate_untrained(config, workdir, only=["reconstruction"]) == record
  assert os.stat(path).st_mtime_ns == before
