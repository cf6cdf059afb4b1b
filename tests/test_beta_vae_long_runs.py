"""The long-run drivers of issue 25 (benchmarks/beta_vae_curve.py, benchmarks/beta_vae_zoo.py):
their tables from evaluation records, and their bad-input errors. Training itself is the engine's
(tested elsewhere); the records here are written with the evaluators' own writer."""

import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import beta_vae_curve  # noqa: E402  pylint: disable=g-import-not-at-top
import beta_vae_zoo  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxdisent.evals.base import write_record  # noqa: E402  pylint: disable=g-import-not-at-top


def _scores(mig):
  scores = {k: mig + i / 100 for i, k in enumerate(beta_vae_curve.METRICS)}
  return {"disentanglement": {**scores, "seconds": 1.0},
          "reconstruction": {"reconstruction": 100.0 - mig, "kl": 5.0}}


def test_curve_table_orders_steps_and_keeps_the_untrained_control(tmp_path, capsys):
  work = tmp_path / "curve"
  write_record(str(work / "run"), 3000, _scores(0.1))
  write_record(str(work / "run"), 10000, _scores(0.2))
  write_record(str(work / "untrained"), 0, _scores(0.01))
  (work / "train_seconds.json").write_text(json.dumps({"3000": 250.0}))
  out = tmp_path / "out" / "curve"
  args = beta_vae_curve._parse([f"--workdir={work}", "--steps=10000,3000,30000", f"--out={out}"])
  assert args.steps == [3000, 10000, 30000]
  rows = beta_vae_curve.collect(args)
  assert [r["step"] for r in rows] == [0, 3000, 10000]          # 30000 not evaluated yet
  assert rows[0]["model"].startswith("untrained") and rows[1]["mig"] == pytest.approx(0.1)
  assert rows[1]["train_seconds"] == 250.0 and "train_seconds" not in rows[2]
  saved = json.loads((tmp_path / "out" / "curve.json").read_text())
  assert saved["setting"]["beta"] == 16.0 and saved["setting"]["learning_rate"] == 1e-4
  table = (tmp_path / "out" / "curve.md").read_text()
  assert "| 0 (untrained) | 0.010 |" in table and "| 10,000 | 0.200 |" in table
  assert "disentanglement_lib's sizes" in table
  assert (tmp_path / "out" / "curve.png").stat().st_size > 1000


@pytest.mark.parametrize("argv,message", [
    (["--steps=a"], "comma-separated list of integers"),
    (["--steps=0,5"], "positive step counts"),
    (["--learning_rate=0"], "--learning_rate > 0"),
    (["--num_eval=1"], "--num_eval must be >= 2"),
])
def test_curve_bad_input_is_one_line(tmp_path, capsys, argv, message):
  with pytest.raises(SystemExit) as error:
    beta_vae_curve._parse([f"--workdir={tmp_path}", *argv])
  assert error.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("[jaxdisent] error: ") and message in err and err.count("\n") == 1


def test_a_second_curve_command_on_a_busy_workdir_is_one_line(tmp_path, capsys):
  """Two curve commands on one workdir would both train the same run: the second is refused at
  once with one line naming the holder, before it trains or writes anything."""
  import subprocess  # pylint: disable=g-import-not-at-top
  work = tmp_path / "curve"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
       "from jaxdisent.train.lock import workdir_lock\n"
       "with workdir_lock(sys.argv[2], 'holding for the test'):\n"
       "  print('held', flush=True); time.sleep(60)", ROOT, str(work)],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SystemExit) as exit_info:
      beta_vae_curve.main([f"--workdir={work}", "--steps=3000", f"--out={tmp_path / 'out'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[jaxdisent] error: ")
    assert str(holder.pid) in err[0] and "holding for the test" in err[0]
    assert not (work / "run").exists() and not (tmp_path / "out.json").exists()
  finally:
    holder.kill()
    holder.wait()


@pytest.mark.parametrize("module", [beta_vae_curve, beta_vae_zoo], ids=["curve", "zoo"])
@pytest.mark.parametrize("argv,message", [
    (["--train_only"], "--train_only needs --export_dir"),
    (["--import_dir=/nonexistent/folder"], "is not a directory"),
])
def test_train_elsewhere_bad_input_is_one_line(tmp_path, capsys, module, argv, message):
  with pytest.raises(SystemExit) as error:
    module._parse([f"--workdir={tmp_path}", *argv])
  assert error.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("[jaxdisent] error: ") and message in err and err.count("\n") == 1


@pytest.mark.slow
def test_curve_trained_on_one_machine_is_restored_bitwise_on_another(tmp_path, capsys):
  """--train_only --export_dir (the GPU half, benchmarks/gpu_long_runs.sh) writes one archive per
  target as it is reached and skips targets already exported; --import_dir unpacks them into a
  new workdir whose checkpoints restore bitwise. An archive holding anything else is refused."""
  import tarfile  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  export = tmp_path / "export"
  argv = [f"--workdir={tmp_path / 'gpu'}", "--steps=2,3", "--checkpoint_every=1", "--train_only",
          f"--export_dir={export}"]
  assert beta_vae_curve.main(argv) == 0
  assert sorted(os.listdir(export)) == ["step_2.tar.gz", "step_3.tar.gz"]
  with tarfile.open(export / "step_3.tar.gz") as tar:
    names = tar.getnames()
  assert {"checkpoints/3", "checkpoints/manifests/3.json", "config.json", "metrics.jsonl",
          "train_seconds.json"} <= set(names)
  assert not [n for n in names if n.startswith("checkpoints/2")]   # one step per archive
  assert not (tmp_path / "gpu" / "run" / "eval").exists()           # nothing evaluated there
  capsys.readouterr()
  assert beta_vae_curve.main(argv) == 0                              # every target exported:
  assert "resumed" not in capsys.readouterr().err                    # nothing trains again

  args = beta_vae_curve._parse([f"--workdir={tmp_path / 'cpu'}", "--steps=2,3",
                                f"--import_dir={export}"])
  timing = {}
  assert beta_vae_curve._import(args, str(tmp_path / "cpu" / "run"), timing) == [2, 3]
  assert set(timing) == {"2", "3"}
  for step in (2, 3):   # the exporting run keeps both (train.keep_checkpoints is 3)
    _, _, theirs, _ = restore_latest(str(tmp_path / "gpu" / "run"), step)
    _, _, ours, got = restore_latest(str(tmp_path / "cpu" / "run"), step)
    assert got == step
    for a, b in zip(jax.tree.leaves(theirs), jax.tree.leaves(ours), strict=True):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  # an import never replaces another run's files or log lines
  other = tmp_path / "other_run"
  other.mkdir()
  config = json.loads((tmp_path / "cpu" / "run" / "config.json").read_text())
  (other / "config.json").write_text(json.dumps({**config, "seed": config["seed"] + 1}))
  (other / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
  with pytest.raises(SystemExit):
    beta_vae_curve.import_checkpoint(str(export / "step_3.tar.gz"), str(other), 3)
  assert "holds another run" in capsys.readouterr().err
  (other / "config.json").write_text(json.dumps(config))
  with pytest.raises(SystemExit):
    beta_vae_curve.import_checkpoint(str(export / "step_3.tar.gz"), str(other), 3)
  assert "has lines that step_3.tar.gz's log does not" in capsys.readouterr().err
  assert (other / "metrics.jsonl").read_text() == '{"step": 1, "loss": 1.0}\n'
  assert not (other / "checkpoints").exists()

  bad = tmp_path / "bad"
  bad.mkdir()
  with tarfile.open(bad / "step_5.tar.gz", "w:gz") as tar:
    tar.add(__file__, arcname="../escape.py")
  args = beta_vae_curve._parse([f"--workdir={tmp_path / 'other'}", "--steps=5",
                                f"--import_dir={bad}"])
  with pytest.raises(SystemExit) as error:
    beta_vae_curve._import(args, str(tmp_path / "other" / "run"), {})
  assert error.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1].startswith("[jaxdisent] error: ") and "refusing to unpack" in err[-1]
  assert not (tmp_path / "escape.py").exists()


def test_zoo_export_writes_one_file_per_model_and_the_seed_summary(tmp_path):
  work = tmp_path / "zoo"
  args = beta_vae_zoo._parse([f"--workdir={work}", "--betas=1,16", "--seeds=0,1",
                              "--num_steps=3000", f"--out={tmp_path / 'out'}"])
  names = [name for _, _, name, _ in beta_vae_zoo._cells(args)]
  assert names == ["beta=1_seed0", "beta=1_seed1", "beta=16_seed0", "beta=16_seed1"]
  for name, mig in zip(names[:3], (0.1, 0.3, 0.2)):   # beta=16_seed1 has not finished
    write_record(str(work / name), 3000, _scores(mig))
    (work / name / "config.json").write_text(json.dumps({"loss": {"beta": 1.0}}))
  write_record(str(work / names[3]), 1000, _scores(0.9))  # an earlier step is not the zoo's
  rows = beta_vae_zoo.export(args)
  assert [(r["beta"], r["seed"]) for r in rows] == [(1.0, 0), (1.0, 1), (16.0, 0)]
  files = sorted(os.listdir(tmp_path / "out"))
  assert files == ["beta16_seed0.json", "beta1_seed0.json", "beta1_seed1.json", "summary.json",
                   "summary.md"]
  model = json.loads((tmp_path / "out" / "beta1_seed1.json").read_text())
  assert model["step"] == 3000 and model["evals"]["disentanglement"]["mig"] == pytest.approx(0.3)
  assert "--config.loss.beta=1 --config.seed=1" in model["command"]
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  first = summary["table"][0]
  assert first["seeds"] == 2 and first["mig"]["mean"] == pytest.approx(0.2)
  assert first["mig"]["std"] == pytest.approx(0.1)                      # population std of .1, .3
  assert summary["table"][1]["seeds"] == 1
  assert "| 1 | 2 | 0.200 +- 0.100 |" in (tmp_path / "out" / "summary.md").read_text()


def test_zoo_default_out_is_one_folder_per_schedule(tmp_path):
  for steps, folder in (("3000", "3k"), ("30000", "30k"), ("1500", "1500")):
    args = beta_vae_zoo._parse([f"--workdir={tmp_path}", f"--num_steps={steps}"])
    assert args.out == os.path.join(beta_vae_zoo.ROOT, "docs", "results", "zoo", folder)


def test_zoo_bad_input_is_one_line(tmp_path, capsys):
  for argv in (["--betas=a"], ["--seeds=-1"], ["--num_steps=0"]):
    with pytest.raises(SystemExit) as error:
      beta_vae_zoo._parse([f"--workdir={tmp_path}", *argv])
    assert error.value.code == 2
    assert capsys.readouterr().err.startswith("[jaxdisent] error: ")


@pytest.mark.slow
def test_zoo_trained_on_one_machine_is_imported_on_another(tmp_path):
  """--train_only --export_dir writes one archive per model, named as a device's $OUT keeps them
  (letters, digits, '.', '_', '-'); --import_dir unpacks it into the cell's folder, where the
  final checkpoint restores bitwise (the evaluation then runs here, as for any finished cell)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  export = tmp_path / "export"
  assert beta_vae_zoo.main([f"--workdir={tmp_path / 'gpu'}", "--betas=4", "--seeds=0",
                            "--num_steps=2", "--train_only", f"--export_dir={export}"]) == 0
  assert os.listdir(export) == ["beta4_seed0.tar.gz"]
  assert not (tmp_path / "gpu" / "beta=4_seed0" / "eval").exists()
  args = [f"--workdir={tmp_path / 'cpu'}", "--betas=4", "--seeds=0", "--num_steps=2",
          f"--import_dir={export}", "--export_only", f"--out={tmp_path / 'out'}"]
  assert beta_vae_zoo.main(args) == 0
  _, _, theirs, _ = restore_latest(str(tmp_path / "gpu" / "beta=4_seed0"))
  _, _, ours, step = restore_latest(str(tmp_path / "cpu" / "beta=4_seed0"))
  assert step == 2
  for a, b in zip(jax.tree.leaves(theirs), jax.tree.leaves(ours), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_curve_train_only_skips_a_passed_target_whose_checkpoint_rotated_out(tmp_path, capsys):
  """A GPU call starts with an empty $OUT: resuming a run that passed step 3000 in an earlier call
  (whose archive came back then) must go on to the later targets, not stop on the rotated-out
  checkpoint. Nothing trains here: every target is behind the run's newest checkpoint."""
  work = tmp_path / "curve"
  (work / "run" / "checkpoints" / "81205").mkdir(parents=True)
  code = beta_vae_curve.main([f"--workdir={work}", "--steps=3000,10000", "--train_only",
                              f"--export_dir={tmp_path / 'out'}"])
  assert code == 0
  err = capsys.readouterr().err
  assert "step 3000 is behind the run (step 81205)" in err
  assert "step 10000 is behind the run (step 81205)" in err
  assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("script,args,message", [
    ("gpu_session.sh", ["out"], "usage: bash benchmarks/gpu_session.sh"),
    ("gpu_session.sh", ["out", "abc", "curve"], "is not a whole number of seconds"),
    ("gpu_session.sh", ["out", "60", "curv"], "unknown stage 'curv'"),
    ("gpu_long_runs.sh", ["zoo"], "give what to train and the output folder first"),
    ("gpu_long_runs.sh", ["cruve", "out"], "'cruve' is neither curve nor zoo"),
])
def test_gpu_scripts_bad_input_is_one_line(tmp_path, script, args, message):
  """Checked before anything is installed, trained or written."""
  import subprocess  # pylint: disable=g-import-not-at-top
  done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", script),
                         *[str(tmp_path / a) if a == "out" else a for a in args]],
                        capture_output=True, text=True, timeout=60)
  assert done.returncode == 2
  assert done.stderr.startswith("[jaxdisent] error: ") and message in done.stderr
  assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
