"""Several processes through jax.distributed (127.0.0.1, gloo CPU collectives) vs one process.

What is guaranteed, and so what is asserted:

* The data is: every example is a pure function of (seed, step, global index), and the engine
  renders each device's shard with one call of the shard's size in every layout
  (``DataParallel.local_batch``), so each device sees bitwise the same inputs whether its rows
  were rendered by process 0 or process 1.
* Collectives over 2 devices are exact in any implementation: a 2-term sum is a single IEEE
  addition and addition is commutative (a + b == b + a bitwise), the division of pmean by 2 is
  exact, and gathers / maxima move or compare values without arithmetic. So 2 processes x 1 device
  run the same computation as 1 process x 2 devices, and losses, metrics and every leaf of the
  final state must agree bitwise - also across a resume that switches layout.
* Over 4 devices, gloo's ring all-reduce adds the 4 per-device terms in another order than the
  in-process all-reduce (((g0 + g1) + g2) + g3). Both results are within gamma_3 * sum|g_i| of the
  exact sum (gamma_3 = 3u / (1 - 3u), u = 2^-24, Higham's bound for 3 additions), so they differ
  by at most 2 gamma_3 sum|g_i|. For the first step (same parameters in both runs, so identical
  per-device losses l_i >= 0) the mean loss may differ by 2 gamma_3 * mean(l_i) = 2 gamma_3 * loss.
  After that the parameters differ and no a-priori bound exists, so later steps are not compared.
  Per-device code must also be the same: XLA:CPU was observed to compile the beta-VAE's last
  transposed convolution differently in a process that holds 4 devices than in one holding 1 or 2
  (256 gradient entries differ by up to 2e-6 on the same shard), so that check uses the SAE, whose
  dense per-device computation does not depend on the process's device count, and the beta-VAE's
  1-process reference runs in a subprocess with exactly 2 devices.

Checkpoints are written once (one folder per step, each process contributing its shards), and
config.json, metrics.jsonl and plots only by process 0. Every subprocess has a timeout, and ports
are picked free, so a broken collective fails the test instead of hanging it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import ROOT
from launch import multiprocess

pytestmark = pytest.mark.slow  # real multi-process runs: the full suite (CI) runs them

TIMEOUT = 420  # seconds per launch; a healthy one takes ~10-40 s on 2 shared cores

SAE = ("configs/sae_vlm_synthetic.py",
       {"train.batch_size": 16, "model.dict_size": 64, "model.init_batch": 64,
        "optimizer.warmup_steps": 0, "evals.dictionary.num_pairs": 32, "train.log_every": 1,
        "train.checkpoint_every": 2})
DECALIGN = ("configs/decalign_synthetic.py",
            {"train.batch_size": 8, "data.synthetic.split_sizes": (64, 32, 32),
             "train.eval_at_end": False,  # the SAE run covers evaluation across processes
             "train.log_every": 1, "train.checkpoint_every": 2})
BETA_VAE = ("configs/beta_vae_dsprites.py",
            {"train.batch_size": 8, "train.log_every": 1, "train.checkpoint_every": 2,
             "train.eval_at_end": False})  # plots only: the SAE run covers evaluation


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  # JAX_ENABLE_COMPILATION_CACHE=false comes with os.environ (conftest.py): each process
  # compiles cold, like a user's. (A cache shared by a test's launches saved nothing measurable,
  # 71.3 s -> 69.5 s for this file; jax_share_binary_between_hosts on top hung the 2-process runs.)
  return env


def _args(spec, workdir, num_steps):
  config, overrides = spec
  return ([f"--config={os.path.join(ROOT, config)}", f"--workdir={workdir}"] +
          [f"--config.{k}={v}" for k, v in dict(overrides, **{"train.num_steps": num_steps}).items()])


def _multi(spec, workdir, num_steps, num_processes=2, devices_per_process=1):
  log_path = f"{workdir}.log"
  with open(log_path, "w") as log:
    codes = multiprocess.run(_args(spec, workdir, num_steps), num_processes, devices_per_process,
                             timeout=TIMEOUT, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             base_env=_env())
  with open(log_path) as f:
    output = f.read()
  assert codes == [0] * num_processes, f"exit codes {codes}:\n{output[-3000:]}"
  return output


def _single(spec, workdir, num_steps, devices):
  """1 process with exactly `devices` CPU devices (a subprocess: XLA flags are per process)."""
  env = _env()
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if "device_count" not in f)
  done = subprocess.run([sys.executable, "-m", "launch.train", *_args(spec, workdir, num_steps),
                         f"--devices={devices}"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=TIMEOUT, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stderr


def _in_process(spec, workdir, num_steps, devices):
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import fit  # pylint: disable=g-import-not-at-top
  config, overrides = spec
  config = load_config(os.path.join(ROOT, config), dict(overrides, **{"train.num_steps": num_steps}))
  fit(config, str(workdir), devices=jax.devices()[:devices], quiet=True)


def _metrics(workdir):
  """metrics.jsonl without wall-clock timings (evaluators log how long they took)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [{k: v for k, v in json.loads(line).items() if not k.endswith("seconds")} for line in f]


def _state(workdir):
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  _, _, state, step = restore_latest(str(workdir))
  return step, jax.tree_util.tree_leaves_with_path(state)


def _assert_same_run(got, want):
  assert _metrics(got) == _metrics(want)
  got_step, got_leaves = _state(got)
  want_step, want_leaves = _state(want)
  assert got_step == want_step
  for (path, a), (_, b) in zip(got_leaves, want_leaves):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))


def _rewound_copy(workdir, target, last_step):
  """A copy of a finished run without its last checkpoint: re-running it resumes one step back."""
  shutil.copytree(workdir, target)
  shutil.rmtree(os.path.join(target, "checkpoints", str(last_step)))
  return target


def _assert_written_once(workdir, output, num_steps, checkpoint_steps):
  records = _metrics(workdir)
  steps = [m["step"] for m in records if "loss" in m]
  assert steps == list(range(1, num_steps + 1))  # one line per step: one writer
  assert len(records) <= num_steps + 1  # plus at most one end-of-run evaluation line
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  assert sorted(int(n) for n in names if n.isdigit()) == checkpoint_steps, names
  assert not [n for n in names if "tmp" in n or "process" in n], names  # no per-process copies
  assert not [n for n in os.listdir(workdir) if ".tmp" in n]
  assert output.count("] finished at step") == 2  # both processes ran to the end ...
  assert output.count("[jaxdisent] resumed") <= 1  # ... but only process 0 logs


def test_sae_two_processes_equal_one_process_and_resume_across_layouts(tmp_path):
  """2 x 1 and 1 x 2 devices, bitwise; resuming 2-process checkpoints in 1 process and back."""
  reference = tmp_path / "one_process"
  _in_process(SAE, reference, 4, devices=2)

  two = tmp_path / "two_processes"
  output = _multi(SAE, two, 4)
  _assert_written_once(two, output, 4, [2, 4])
  assert os.path.exists(two / "config.json")
  _assert_same_run(two, reference)

  # The 2-process checkpoint of step 2, finished in 1 process.
  switch = _rewound_copy(two, tmp_path / "two_then_one", 4)
  _in_process(SAE, switch, 4, devices=2)
  _assert_same_run(switch, reference)

  # The 1-process checkpoint of step 2, finished in 2 processes.
  back = _rewound_copy(reference, tmp_path / "one_then_two", 4)
  output = _multi(SAE, back, 4)
  assert "resumed" in output and "from step 2" in output
  _assert_same_run(back, reference)


def test_decalign_two_processes_equal_one_process(tmp_path):
  reference = tmp_path / "one_process"
  _in_process(DECALIGN, reference, 3, devices=2)
  two = tmp_path / "two_processes"
  output = _multi(DECALIGN, two, 3)
  _assert_written_once(two, output, 3, [2, 3])
  _assert_same_run(two, reference)


def test_beta_vae_two_processes_equal_one_process(tmp_path):
  reference = tmp_path / "one_process"
  _single(BETA_VAE, reference, 3, devices=2)  # see the module docstring: not in this 4-device process
  two = tmp_path / "two_processes"
  output = _multi(BETA_VAE, two, 3)
  _assert_written_once(two, output, 3, [2, 3])
  assert output.count("[jaxdisent] plots:") == 1  # plots rendered by process 0 only
  assert os.path.exists(two / "plots" / "traversals.png")
  _assert_same_run(two, reference)


def test_sae_four_devices_first_step_within_summation_bound(tmp_path):
  """2 processes x 2 devices vs 1 x 4: step-1 loss within 2 gamma_3 * loss (module docstring)."""
  reference = tmp_path / "one_process"
  _in_process(SAE, reference, 1, devices=4)
  two = tmp_path / "two_processes"
  _multi(SAE, two, 1, num_processes=2, devices_per_process=2)
  want, got = _metrics(reference)[0]["loss"], _metrics(two)[0]["loss"]
  u = 2.0 ** -24
  gamma_3 = 3 * u / (1 - 3 * u)
  assert want > 0 and abs(got - want) <= 2 * gamma_3 * want, (got, want)


def test_bad_distributed_settings_are_named():
  from jaxdisent.train import distributed  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="set both"):
    distributed.initialize({"num_processes": 2})
  with pytest.raises(ValueError, match="outside"):
    distributed.initialize({"num_processes": 2, "process_id": 2,
                            "coordinator_address": "127.0.0.1:1"})
  with pytest.raises(ValueError, match="coordinator"):
    distributed.initialize({"num_processes": 2, "process_id": 0})


def test_sigterm_to_one_process_stops_all_at_one_checkpoint(tmp_path):
  """Preemption: SIGTERM reaches one process; JAX's preemption service makes both save one step."""
  workdir = tmp_path / "run"
  args = _args(SAE, workdir, 100_000) + ["--config.train.checkpoint_every=100000",
                                         "--config.train.distributed=true"]
  port = multiprocess.free_port()
  logs = [open(tmp_path / f"process_{i}.log", "w") for i in range(2)]
  processes = [subprocess.Popen([sys.executable, "-m", "launch.train", *args], cwd=ROOT,
                                env=multiprocess.process_env(i, 2, port, 1, base_env=_env()),
                                stdout=logs[i], stderr=subprocess.STDOUT) for i in range(2)]
  try:
    deadline = time.time() + TIMEOUT
    metrics = workdir / "metrics.jsonl"
    while not (metrics.exists() and metrics.stat().st_size) and time.time() < deadline:
      assert all(p.poll() is None for p in processes), "a process died before training"
      time.sleep(0.2)
    processes[1].send_signal(signal.SIGTERM)
    codes = [p.wait(timeout=TIMEOUT) for p in processes]
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
    for log in logs:
      log.close()
  assert codes == [0, 0], (tmp_path / "process_0.log").read_text()[-2000:]
  saved = [int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()]
  assert len(saved) == 1 and 0 < saved[0] < 100_000
  assert [m["step"] for m in _metrics(workdir)] == list(range(1, saved[0] + 1))
