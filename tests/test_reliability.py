"""Nothing lost: one writer per workdir, a full disk, SIGTERM during the end-of-run evaluation."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import pytest

from conftest import ROOT, tiny_sae_config

TINY_SAE_FLAGS = ["--config=configs/sae_vlm_synthetic.py", "--config.data.synthetic.dim=16",
                  "--config.data.synthetic.num_shared=6", "--config.data.synthetic.num_image_only=5",
                  "--config.data.synthetic.num_text_only=5", "--config.model.dict_size=64",
                  "--config.model.k=3", "--config.model.init_batch=256",
                  "--config.train.batch_size=64", "--config.loss.dead_tokens=128",
                  "--config.train.log_every=1", "--config.train.eval_at_end=false",
                  "--config.train.plots_at_end=false"]


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def _snapshot(directory):
  out = {}
  for base, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(base, name)
      stat = os.stat(path)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = (stat.st_size, stat.st_mtime_ns, f.read())
  return out


def test_lock_is_reentrant_and_released(tmp_path):
  from jaxdisent.train import lock
  workdir = str(tmp_path / "w")
  with lock.workdir_lock(workdir, "testing"):
    with lock.workdir_lock(workdir, "nested"):
      assert lock.held(workdir)
    assert lock.held(workdir)
    info = json.load(open(os.path.join(workdir, ".lock")))
    assert info["pid"] == os.getpid() and info["purpose"] == "testing"
  assert not lock.held(workdir)


def test_lock_refuses_a_file_and_a_read_only_workdir(tmp_path):
  from jaxdisent.train import lock
  a_file = tmp_path / "f"
  a_file.write_text("x")
  with pytest.raises(ValueError, match="existing file"):
    lock.acquire(str(a_file))
  if os.geteuid() != 0:  # root ignores permission bits
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    with pytest.raises(ValueError, match="not writable"):
      lock.acquire(str(read_only))


@pytest.mark.slow
def test_second_writer_is_refused_before_writing(tmp_path):
  """A process holding the lock (like a running trainer) makes launch.train exit 2 at once."""
  workdir = tmp_path / "run"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from jaxdisent.train import lock; "
       f"lock.acquire({str(workdir)!r}, 'training'); print('held', flush=True); time.sleep(120)"],
      cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    before = _snapshot(workdir)
    second = subprocess.run([sys.executable, "-m", "launch.train", *TINY_SAE_FLAGS,
                             f"--workdir={workdir}", "--config.train.num_steps=3"],
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr
    lines = [l for l in second.stderr.splitlines() if l.startswith("[jaxdisent] error:")]
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "in use" in lines[0], second.stderr
    assert "Traceback" not in second.stderr
    assert _snapshot(workdir) == before  # nothing written, nothing touched
  finally:
    holder.kill()
    holder.wait()
  # The kernel released the killed holder's lock: the same command now trains.
  third = subprocess.run([sys.executable, "-m", "launch.train", *TINY_SAE_FLAGS,
                          f"--workdir={workdir}", "--config.train.num_steps=3"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
  assert third.returncode == 0, third.stderr


@pytest.mark.slow
def test_two_simultaneous_trainers(tmp_path):
  """Two trainers started together: one trains, the other exits 2; metrics steps increase.

  The run is long (the winner must still hold the lock when the slower process starts, whatever
  the machine's load); once the loser has exited, the winner is preempted with SIGTERM (it saves
  and exits 0, as a preempted job does).
  """
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "launch.train", *TINY_SAE_FLAGS, f"--workdir={workdir}",
             "--config.train.num_steps=100000", "--config.train.checkpoint_every=50"]
  processes = [subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
  deadline = time.time() + 300
  while all(p.poll() is None for p in processes) and time.time() < deadline:
    time.sleep(0.5)
  loser = next((p for p in processes if p.poll() is not None), None)
  winner = next(p for p in processes if p is not loser)
  try:
    assert loser is not None, "neither trainer was refused within 300 s"
    loser_err = loser.stderr.read()
    assert loser.returncode == 2, loser_err
    assert "in use by pid" in loser_err and "Traceback" not in loser_err
    while not (workdir / "metrics.jsonl").exists() and time.time() < deadline:
      time.sleep(0.5)
    time.sleep(2)
    winner.send_signal(signal.SIGTERM)
    assert winner.wait(timeout=300) == 0, winner.stderr.read()
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
  steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
  assert steps and steps == sorted(set(steps))


@pytest.mark.slow
def test_full_disk_is_one_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
  from jaxdisent.train import checkpoint as checkpoint_module
  from jaxdisent.train.checkpoint import CheckpointError
  from jaxdisent.runs import fit
  workdir = str(tmp_path / "w")
  config = tiny_sae_config(**{"train.num_steps": 2, "train.checkpoint_every": 1,
                              "train.eval_at_end": False, "train.plots_at_end": False})
  fit(config, workdir, quiet=True)
  real = checkpoint_module.shutil.disk_usage

  def almost_full(path):
    usage = real(path)
    return usage._replace(free=1000)
  monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", almost_full)
  config.train.num_steps = 4
  with pytest.raises(CheckpointError, match="not enough disk space.*step 2.*keep_checkpoints"):
    fit(config, workdir, quiet=True)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2", "manifests"]


def test_failed_async_save_becomes_one_error(tmp_path, monkeypatch):
  import errno
  from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
  checkpointer = Checkpointer(str(tmp_path / "c"), 2)

  def no_space(*args, **kwargs):
    raise ValueError("RESOURCE_EXHAUSTED: Failed to write: No space left on device "
                     "[os_error_code='28']") from OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(checkpointer._manager, "save", no_space)  # pylint: disable=protected-access
  with pytest.raises(CheckpointError, match="disk is full.*keep_checkpoints") as caught:
    checkpointer.save(1, {"a": __import__("numpy").zeros(3)})
  assert "\n" not in str(caught.value)
  checkpointer.close()  # a failed manager must not raise again on close


@pytest.mark.slow
def test_partial_save_is_removed_on_the_next_start(tmp_path):
  from jaxdisent.runs import fit
  workdir = tmp_path / "w"
  config = tiny_sae_config(**{"train.num_steps": 2, "train.checkpoint_every": 1,
                              "train.eval_at_end": False, "train.plots_at_end": False})
  fit(config, str(workdir), quiet=True)
  partial = workdir / "checkpoints" / "3.orbax-checkpoint-tmp"
  (partial / "default").mkdir(parents=True)
  (partial / "default" / "junk").write_bytes(b"0" * 100)
  config.train.num_steps = 4
  result = fit(config, str(workdir), quiet=True)
  assert result.step == 4 and result.resumed_from == 2
  assert not partial.exists()


@pytest.mark.slow
def test_sigterm_during_end_of_run_evaluation_finishes_it(tmp_path, monkeypatch, capsys):
  from jaxdisent import evals
  from jaxdisent.runs import fit
  real = evals.run_evaluations
  signalled = []

  def evaluate_then_get_sigterm(*args, **kwargs):
    if not kwargs.get("training", True) or args[2] == 2:  # the end-of-run evaluation
      os.kill(os.getpid(), signal.SIGTERM)
      signalled.append(True)
      time.sleep(0.05)
    return real(*args, **kwargs)
  monkeypatch.setattr(evals, "run_evaluations", evaluate_then_get_sigterm)
  workdir = str(tmp_path / "w")
  config = tiny_sae_config(**{"train.num_steps": 2, "train.plots_at_end": True})
  result = fit(config, workdir)
  assert signalled and not result.preempted and result.step == 2
  assert os.path.exists(os.path.join(workdir, "eval", "step_2.json"))
  assert "SIGTERM during the end-of-run evaluation" in capsys.readouterr().err
  assert not os.path.exists(os.path.join(workdir, "plots"))


def test_model_key_added_after_the_run_started_does_not_block_resume(tmp_path):
  """A run whose config.json predates a new model.* key resumes; a changed one is still refused."""
  from jaxdisent.train.config import check_and_write_workdir_config
  config = tiny_sae_config()
  workdir = str(tmp_path / "w")
  check_and_write_workdir_config(config, workdir, has_checkpoints=False)
  path = os.path.join(workdir, "config.json")
  saved = json.load(open(path))
  del saved["model"]["row_cap"]  # as if written before model.row_cap existed
  json.dump(saved, open(path, "w"))
  changed = check_and_write_workdir_config(config, workdir, has_checkpoints=True)
  assert "model.row_cap" in changed
  config.model.dict_size = 32
  with pytest.raises(ValueError, match="different method/model.*model.dict_size"):
    check_and_write_workdir_config(config, workdir, has_checkpoints=True)


@jax.jit
def _long_lived_program(a):
  return jnp.tanh(a @ a.T).sum() * jnp.sin(a[0]).mean()


def _compile_distinct_programs(count, offset):
  # One long-lived jitted function called on `count` new shapes: JAX's caches keep every compiled
  # program alive, as they keep the programs of the package's own long-lived functions.
  for i in range(count):
    _long_lived_program(jnp.ones((2, offset + i))).block_until_ready()


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc")
@pytest.mark.slow
def test_compiled_programs_are_released_before_the_map_limit():
  """JAX's caches keep compiled programs (and their memory mappings) alive: a process that fits
  many runs one after another aborted inside XLA at vm.max_map_count. The release drops them."""
  from jaxdisent.programs import map_count, map_limit, release_compiled_programs
  assert map_limit() > 0
  _compile_distinct_programs(60, 1)
  held = map_count()
  assert not release_compiled_programs(fraction=1.0)  # far from the limit: nothing is dropped
  assert map_count() >= held - 5
  _compile_distinct_programs(60, 61)
  before = map_count()
  lines = []
  assert release_compiled_programs(fraction=0.0, log=lines.append)
  after = map_count()
  # Each XLA:CPU program holds several mappings; 60 released programs free well over 60 of them.
  assert before - after > 60, (before, after)
  assert len(lines) == 1 and "released compiled programs" in lines[0]


def test_release_threshold_comes_from_the_environment(monkeypatch):
  from jaxdisent import programs  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv(programs.FRACTION_ENV, "1")
  assert programs.release_fraction() == 1.0
  assert not programs.release_compiled_programs()  # no process holds its whole limit here
  monkeypatch.setenv(programs.FRACTION_ENV, "")
  assert programs.release_fraction() == programs.DEFAULT_FRACTION == 0.25


@pytest.mark.parametrize("bad", ["0", "1.5", "half", "nan"])
def test_bad_release_threshold_fails_before_any_work(tmp_path, monkeypatch, bad):
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("JAXDISENT_RELEASE_PROGRAMS_AT", bad)
  with pytest.raises(ValueError, match=r"JAXDISENT_RELEASE_PROGRAMS_AT=.* must be a fraction in "
                                       r"\(0, 1\]"):
    fit(tiny_sae_config(), str(tmp_path / "run"), quiet=True)
  assert not (tmp_path / "run").exists()


def test_cpu_saves_write_each_replicated_array_from_one_replica(tmp_path, monkeypatch):
  """One process on CPU: a save cuts no replicated array into per-device slices (Orbax's
  replica-parallel default did, one eager op per array and device), and a checkpoint written the
  replica-parallel way restores bitwise through the same Checkpointer."""
  import numpy as np
  import orbax.checkpoint as ocp
  from jax.sharding import NamedSharding, PartitionSpec
  from jaxdisent.train.checkpoint import Checkpointer
  from jaxdisent.train.parallel import make_mesh
  replicated = NamedSharding(make_mesh(jax.devices()[:4]), PartitionSpec())
  host = {"w": np.arange(48, dtype=np.float32).reshape(8, 6), "b": np.linspace(-1, 1, 8, dtype=np.float32)}
  state = jax.device_put(host, replicated)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                          state)
  slices = []
  original = jax.lax.slice_in_dim
  monkeypatch.setattr(jax.lax, "slice_in_dim",
                      lambda *a, **k: slices.append(1) or original(*a, **k))
  ours = Checkpointer(str(tmp_path / "ours"), 2)
  ours.save(1, state)
  ours.wait()
  assert not slices
  assert ocp.type_handlers.get_type_handler(jax.Array)._use_replica_parallel is False  # pylint: disable=protected-access
  restored = ours.restore(1, abstract)
  for key in host:
    np.testing.assert_array_equal(np.asarray(restored[key]), host[key])
  ours.close()
  # the same state saved the replica-parallel way (Orbax's CPU default) reads back bitwise
  current = ocp.type_handlers.get_type_handler(jax.Array)
  try:
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=True), override=True)
    theirs = Checkpointer(str(tmp_path / "theirs"), 2)
    theirs.save(1, state)
    theirs.wait()
    theirs.close()
    assert slices   # this time each array was cut per replica
  finally:
    ocp.type_handlers.register_type_handler(jax.Array, current, override=True)
  again = Checkpointer(str(tmp_path / "theirs"), 2)
  restored = again.restore(1, abstract)
  for key in host:
    np.testing.assert_array_equal(np.asarray(restored[key]), host[key])
  again.close()
