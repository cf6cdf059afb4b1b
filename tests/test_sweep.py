"""launch.sweep: one sweep for every method, reading each cell's evaluation record."""

import json
import os
import sys

import pytest

from jaxdisent.runs import parse_grid
from launch.sweep import main as sweep_main

from conftest import ROOT

TINY_VAE = ["--config.train.batch_size=8", "--config.train.num_steps=2",
            "--config.train.log_every=1", "--config.train.checkpoint_every=2",
            "--config.evals.reconstruction.num_examples=16"]
TINY_SAE = ["--config.data.synthetic.dim=16", "--config.model.dict_size=32", "--config.model.k=2",
            "--config.model.init_batch=128", "--config.train.batch_size=32",
            "--config.train.num_steps=2", "--config.train.log_every=1",
            "--config.evals.dictionary.num_pairs=64", "--config.evals.dictionary.plots=false"]


def test_grid_parsing():
  assert parse_grid("loss.beta=1,4;seed=0") == [{"loss.beta": "1", "seed": "0"},
                                                {"loss.beta": "4", "seed": "0"}]
  assert parse_grid("") == [{}]


@pytest.mark.parametrize("config,extra,grid,key", [
    ("configs/beta_vae_dsprites.py", TINY_VAE, "loss.beta=1,4", "eval/reconstruction/reconstruction"),
    ("configs/sae_vlm_synthetic.py", TINY_SAE, "model.k=1,2", "eval/dictionary/fvu"),
])
@pytest.mark.slow
def test_sweep_any_method(tmp_path, monkeypatch, config, extra, grid, key):
  monkeypatch.chdir(ROOT)
  assert sweep_main([f"--config={config}", f"--workdir={tmp_path}", f"--grid={grid}",
                     "--seeds=0", *extra]) == 0
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert len(summary["rows"]) == 2 and all(key in row for row in summary["rows"])
  assert summary["rows"][0][key] != summary["rows"][1][key]        # the grid value mattered
  assert key.split("/", 2)[-1] in (tmp_path / "summary.md").read_text()
  # re-running finds the finished cells and only re-reads them
  assert sweep_main([f"--config={config}", f"--workdir={tmp_path}", f"--grid={grid}",
                     "--seeds=0", *extra]) == 0


@pytest.mark.parametrize("args,message", [
    (["--grid=loss.beta"], "has no values: write KEY=V1,V2"),
    (["--grid=loss.betta=1,2"], "Did you mean loss.beta"),
    (["--seeds=a"], "--seeds=a: expected an integer"),
    (["--evaluate=maybe"], "use true or false"),
])
def test_sweep_errors_before_any_training(tmp_path, monkeypatch, capsys, args, message):
  monkeypatch.chdir(ROOT)
  assert sweep_main(["--config=configs/beta_vae_dsprites.py", f"--workdir={tmp_path}/s", *args]) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "s").exists()


def test_sweep_missing_config(tmp_path, capsys):
  assert sweep_main(["--config=configs/missing.py", f"--workdir={tmp_path}"]) == 2
  assert "not found" in capsys.readouterr().err


def _bench_sweep():
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import bench_sweep  # pylint: disable=g-import-not-at-top
  return bench_sweep


@pytest.mark.parametrize("argv,message", [
    (["--set=data.synthetic.dim"], "is not key=value"),
    (["--cells=0"], "--cells=0 must be an integer >= 1"),
    (["--bogus=1"], "unknown or empty flag"),
])
def test_bench_sweep_bad_flags_are_one_line(capsys, argv, message):
  bench_sweep = _bench_sweep()
  with pytest.raises(SystemExit) as error:
    flags, _ = bench_sweep._flags(["--step_only=true", *argv])
    bench_sweep._overrides(flags["set"])
  assert error.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("[jaxdisent] error: ") and message in err and err.count("\n") == 1


def test_bench_sweep_overrides_go_through_the_launchers_typed_path():
  bench_sweep = _bench_sweep()
  pairs = bench_sweep._overrides("data.synthetic.dim=768,optimizer.learning_rate=3e-4")
  assert pairs == [("data.synthetic.dim", "768"), ("optimizer.learning_rate", "3e-4")]
  from jaxdisent.runs import load_config_with_overrides  # pylint: disable=g-import-not-at-top
  config = load_config_with_overrides(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), pairs)
  assert config.data.synthetic.dim == 768 and config.optimizer.learning_rate == 3e-4


def test_bench_sweep_unknown_override_key_is_one_line(capsys):
  bench_sweep = _bench_sweep()
  flags, _ = bench_sweep._flags(["--step_only=true", "--set=data.synthetic.dims=768"])
  assert bench_sweep.step_only(flags) == 2
  err = capsys.readouterr().err
  assert err.startswith("[jaxdisent] error: unknown config key --config.data.synthetic.dims")
  assert err.count("\n") == 1
