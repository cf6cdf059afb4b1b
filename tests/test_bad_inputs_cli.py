"""Launchers: every bad input is one line `[jaxdisent] error: ...`, exit 2, nothing written.

In-process through launch.common.run_main (the launchers' one entry point), so no JAX start-up
per case.
"""

import os

import pytest

from launch import sweep, train
from launch.common import UsageError, run_main

CONFIG = "configs/beta_vae_dsprites.py"


def _one_error_line(capsys):
  err = capsys.readouterr().err
  lines = [line for line in err.splitlines() if line.startswith("[jaxdisent] error:")]
  assert len(lines) == 1 and "Traceback" not in err, err
  return lines[0]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("body, expected", [
    ("def get_config(:\n  pass\n", "could not be loaded at line 1: SyntaxError"),
    ("import no_such_module_here\ndef get_config():\n  pass\n", "ModuleNotFoundError"),
    ("def get_config():\n  raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ("def get_config():\n  return {'a': 1}\n", "returned dict, not an ml_collections.ConfigDict"),
])
def test_broken_config_files(tmp_path, capsys, body, expected):
  path = tmp_path / "broken.py"
  path.write_text(body)
  workdir = tmp_path / "w"
  assert run_main(train.main, [f"--config={path}", f"--workdir={workdir}"]) == 2
  assert expected in _one_error_line(capsys)
  assert not workdir.exists()


@pytest.mark.parametrize("override, expected", [
    ("loss.beta=-4", "loss.beta=-4.0 must be a finite number >= 0"),
    ("loss.beta=nan", "loss.beta=nan is not a finite number"),
    ("loss.beta=inf", "loss.beta=inf is not a finite number"),
    ("model.latent_dim=-3", "model.latent_dim=-3 must be an integer >= 1"),
    ("optimizer.b2=1.0", "optimizer.b2=1.0 must be a finite number >= 0 and < 1"),
    ("evals.disentanglement.num_train=0", "num_train=0 must be an integer >= 1"),
    ("loss.capacity_weight=-1", "loss.capacity_weight=-1.0 must be a finite number >= 0"),
])
def test_values_outside_their_domain(tmp_path, capsys, override, expected):
  workdir = tmp_path / "w"
  assert run_main(train.main, [f"--config={CONFIG}", f"--workdir={workdir}",
                               f"--config.{override}"]) == 2
  line = _one_error_line(capsys)
  assert expected in line and f"--config.{override.split('=')[0]}=" in line, line
  assert not workdir.exists()


def test_domains_in_the_library(vae_config):
  from jaxdisent.train.config import validate_domains
  from jaxdisent.runs import fit
  config = vae_config(**{"loss.beta": -1.0})
  with pytest.raises(ValueError, match="loss.beta=-1.0 must be"):
    validate_domains(config)
  with pytest.raises(ValueError, match="loss.beta=-1.0 must be"):
    fit(config, "/nonexistent/never/written")
  validate_domains(vae_config())  # the shipped values pass


def test_shipped_configs_are_inside_their_domains():
  import glob
  from jaxdisent.train.config import load_config, validate_domains
  checked = 0
  for path in sorted(glob.glob("configs/*.py")):
    if os.path.basename(path) in ("__init__.py", "common.py"):
      continue
    try:
      config = load_config(path)
    except ValueError:  # a file that needs a variant
      continue
    validate_domains(config)
    checked += 1
  assert checked >= 6


def test_a_flag_given_twice(tmp_path, capsys):
  assert run_main(train.main, [f"--config={CONFIG}", "--config=configs/sae_vlm_synthetic.py",
                               f"--workdir={tmp_path / 'w'}"]) == 2
  assert "--config is given twice" in _one_error_line(capsys)
  assert run_main(train.main, [f"--config={CONFIG}", f"--workdir={tmp_path / 'w'}",
                               "--workdir=other"]) == 2
  assert "--workdir is given twice" in _one_error_line(capsys)


def test_workdir_that_is_a_file(tmp_path, capsys):
  a_file = tmp_path / "f"
  a_file.write_text("keep me")
  for launcher in (train.main, sweep.main):
    assert run_main(launcher, [f"--config={CONFIG}", f"--workdir={a_file}",
                               "--config.train.num_steps=1"]) == 2
    assert "is an existing file, not a directory" in _one_error_line(capsys)
  assert a_file.read_text() == "keep me"


def test_help_prints_usage(capsys):
  assert run_main(train.main, ["--help"], doc=train.__doc__) == 0
  assert "python -m launch.train" in capsys.readouterr().out


def test_a_bug_is_one_line_with_the_traceback_in_a_file(capsys):
  def broken(argv):
    del argv
    return [][1]
  assert run_main(broken, []) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "internal error IndexError" in err and "Traceback" not in err
  path = err.split("the traceback is in ")[1].split(",")[0]
  assert "IndexError" in open(path).read()
  os.remove(path)


def test_os_errors_name_the_path(capsys):
  def reads(argv):
    del argv
    open("/nonexistent/file.npz", "rb")
  assert run_main(reads, []) == 2
  assert "/nonexistent/file.npz" in _one_error_line(capsys)


def test_sweep_seed_axis_and_repeated_seeds():
  grid = sweep.parse_grid("loss.beta=1,4;seed=0,1")
  rest, seeds = sweep.split_seed_axis(grid, None)
  assert rest == [{"loss.beta": "1"}, {"loss.beta": "4"}] and seeds == "0,1"
  assert sweep.parse_seeds(seeds) == [0, 1]
  with pytest.raises(UsageError, match="seeds are given twice"):
    sweep.split_seed_axis(grid, "0")
  with pytest.raises(UsageError, match="repeats seed"):
    sweep.parse_seeds("0,0")
  with pytest.raises(UsageError, match="repeats a value"):
    sweep.parse_grid("loss.beta=1,1")
  with pytest.raises(UsageError, match="names 'loss.beta' twice"):
    sweep.parse_grid("loss.beta=1;loss.beta=4")


def test_grid_seed_axis_trains_distinct_seeds(tmp_path, monkeypatch):
  """--grid='seed=0,1' (the form the grid's own error suggests) gives cells seed 0 and seed 1."""
  calls = []
  monkeypatch.setattr(sweep, "run_cells", lambda config, workdir, cells, **kw: calls.extend(cells)
                      or [{"run": name, "seed": 0, "step": 1} for name, _ in cells])
  assert sweep.main([f"--config={CONFIG}", f"--workdir={tmp_path / 's'}", "--grid=seed=0,1"]) == 0
  seeds = [dict(overrides)["seed"] for _, overrides in calls]
  assert seeds == ["0", "1"] and [name for name, _ in calls] == ["seed0", "seed1"]


def test_parse_args_rejects_positional(capsys):
  assert run_main(train.main, ["runs/x"]) == 2
  assert "--help prints the usage" in _one_error_line(capsys)
