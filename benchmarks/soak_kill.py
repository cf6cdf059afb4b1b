"""Crash safety, measured: SIGKILL training N times at random moments, resume, compare.

  python benchmarks/soak_kill.py [--kills=20] [--config=configs/sae_vlm_synthetic.py] \
      [--root=runs/soak] [--seed=0] [--devices=2] [--config.KEY=VALUE ...]

1. An uninterrupted reference run (``python -m launch.train`` in a subprocess).
2. The same command on a second workdir, killed with SIGKILL N times and restarted each time,
   then let finish. The kills rotate over three moments: (a) a uniformly random moment up to
   0.5 s after the restarted run commits its next checkpoint (training, logging, the next
   asynchronous save), (b) as soon as an Orbax save is in flight (a temporary checkpoint folder
   exists), (c) a uniformly random moment of start-up (imports, restore, compilation: up to the
   time the first restart took to commit a checkpoint). The runs checkpoint every step, so (b) and (c) hit
   saves often; kills that landed while a save was in flight are counted.
3. Compares the final state (every leaf of the last checkpoint, bitwise) and metrics.jsonl (every
   line, less the evaluators' wall-clock ``.../seconds``) with the reference. Resume is exact in
   this engine (batches and noise are functions of (seed, step, example)), so "equal" means
   bitwise.

Printed (and returned by ``soak``): kills survived (the run resumed and finished after each),
states equal, checkpoints lost (a committed checkpoint seen before a kill that the next start did
not resume from), kills that landed during a save, and restarts that failed to resume.
The default config is a tiny SAE checkpointing every step, so most of the time is start-up
(JAX import, compilation from the persistent cache): ~10 s per kill on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_SAE = {"train.num_steps": 80, "train.batch_size": 32, "train.log_every": 1,
            "train.checkpoint_every": 1, "train.keep_checkpoints": 3, "model.dict_size": 64,
            "model.init_batch": 64, "evals.dictionary.num_pairs": 64, "optimizer.warmup_steps": 5}


def _command(config, workdir, overrides, devices):
  return [sys.executable, "-m", "launch.train", f"--config={config}", f"--workdir={workdir}",
          f"--devices={devices}"] + [f"--config.{k}={v}" for k, v in overrides.items()]


def _env(cache_dir):
  env = dict(os.environ)
  env.setdefault("JAX_PLATFORMS", "cpu")
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  # Restarts recompile the same step; the persistent cache turns that into a file read. Turned on
  # explicitly: an inherited JAX_ENABLE_COMPILATION_CACHE=false (tests/conftest.py sets it for the
  # subprocesses of the other tests) would otherwise leave every restart compiling cold.
  env["JAX_ENABLE_COMPILATION_CACHE"] = "true"
  env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def committed_steps(workdir):
  """Finished checkpoints: Orbax writes a step into a temporary folder and renames it when done."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def temporary_folders(workdir):
  """Orbax's in-progress checkpoint folders (a kill mid-save leaves one behind)."""
  directory = os.path.join(workdir, "checkpoints")
  return {name for name in os.listdir(directory) if "tmp" in name} if os.path.isdir(directory) else set()


def _run_to_end(command, env, log_path, timeout):
  with open(log_path, "a") as log:
    process = subprocess.run(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                             timeout=timeout, check=False)
  return process.returncode


def _read_from(path, offset):
  with open(path) as f:
    f.seek(offset)
    return f.read()


def _resumed_from(log_text):
  found = re.findall(r"resumed .* from step (\d+)", log_text)
  return int(found[-1]) if found else None


def _comparable(records):
  """metrics.jsonl lines without wall-clock timings (evaluators log how long they took)."""
  return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]


def final_state(workdir):
  """Every leaf of the latest checkpoint as numpy (loaded in this process)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  _, _, state, step = restore_latest(workdir)
  return step, [np.asarray(leaf) for leaf in jax.tree.leaves(state)]


def soak(root, kills=20, config="configs/sae_vlm_synthetic.py", overrides=None, seed=0,
         devices=2, timeout=600, log=print):
  """Run the soak; returns a dict of the figures (see the module docstring)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  overrides = dict(TINY_SAE if overrides is None else overrides)
  config = os.path.join(ROOT, config) if not os.path.isabs(config) else config
  shutil.rmtree(root, ignore_errors=True)
  os.makedirs(root)
  env = _env(os.path.join(root, "jit-cache"))
  reference, soaked = os.path.join(root, "reference"), os.path.join(root, "soaked")
  log_path = os.path.join(root, "soaked.log")
  chooser = random.Random(seed)

  start = time.time()
  with open(os.path.join(root, "reference.log"), "w") as handle:
    process = subprocess.Popen(_command(config, reference, overrides, devices), env=env, cwd=ROOT,
                               stdout=handle, stderr=subprocess.STDOUT)
    metrics_path = os.path.join(reference, "metrics.jsonl")
    while process.poll() is None and not (os.path.exists(metrics_path) and
                                          os.path.getsize(metrics_path)):
      time.sleep(0.01)
    if process.wait(timeout=timeout):
      raise RuntimeError(f"the reference run failed; see {root}/reference.log")
  log(f"[soak] reference run: {time.time() - start:.1f} s (compiles into the cache)")
  startup_seconds = None

  figures = {"kills": 0, "kills_during_save": 0, "checkpoints_lost": 0, "failed_resumes": 0}
  segments, newest_before_kill = [], []
  for kill in range(kills):
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    launched = time.time()
    leftovers = temporary_folders(soaked)  # from earlier kills: not this start's saves
    with open(log_path, "a") as handle:
      process = subprocess.Popen(_command(config, soaked, overrides, devices), env=env, cwd=ROOT,
                                 stdout=handle, stderr=subprocess.STDOUT)
      moment = ("after a save", "during a save", "start-up")[kill % 3]
      deadline = time.time() + chooser.uniform(0.0, startup_seconds or 1.0)
      newest_at_start = max(committed_steps(soaked), default=-1)
      after_save = chooser.uniform(0.0, 0.5)
      give_up = time.time() + timeout
      while process.poll() is None and time.time() < give_up:
        if moment == "start-up" and (time.time() >= deadline or max(
            committed_steps(soaked), default=-1) > newest_at_start):
          break  # at the deadline, or when start-up is over (its first new checkpoint)
        if moment == "during a save" and temporary_folders(soaked) - leftovers:
          break
        if moment == "after a save" and max(committed_steps(soaked), default=-1) > newest_at_start:
          startup_seconds = startup_seconds or time.time() - launched
          time.sleep(after_save)
          break
        time.sleep(0.002)
      during_save = bool(temporary_folders(soaked) - leftovers)
      finished_before_kill = process.poll() is not None
      if not finished_before_kill:
        process.send_signal(signal.SIGKILL)
      process.wait()
    seen = committed_steps(soaked)
    segments.append(_read_from(log_path, offset))
    newest_before_kill.append(max(seen) if seen else None)
    figures["kills"] += int(not finished_before_kill)
    figures["kills_during_save"] += int(during_save and not finished_before_kill)
    if finished_before_kill and seen and max(seen) >= int(overrides["train.num_steps"]):
      log("[soak] the run finished before all kills were made; raise train.num_steps")
      break
    log(f"[soak] kill {kill + 1}/{kills} ({moment}): committed checkpoints {seen}"
        f"{' (a save was in flight)' if during_save else ''}"
        f"{' (the run had already finished: not counted)' if finished_before_kill else ''}")

  offset = os.path.getsize(log_path)
  code = _run_to_end(_command(config, soaked, overrides, devices), env, log_path, timeout)
  segments.append(_read_from(log_path, offset))
  figures["failed_resumes"] = sum("[jaxdisent] error" in text for text in segments)
  # After kill k, the first later start that got as far as restoring must resume from the newest
  # checkpoint committed before kill k (no start in between got far enough to write a new one).
  for k, newest in enumerate(newest_before_kill):
    if newest is None:
      continue
    later = [_resumed_from(text) for text in segments[k + 1:]]
    resumed = next((step for step in later if step is not None), None)
    if resumed is None or resumed < newest:
      figures["checkpoints_lost"] += 1
  figures["finished"] = code == 0
  figures["temporary_folders_left"] = len(temporary_folders(soaked))
  # A kill is survived when the following start resumed without an error (the last one: the
  # final run finished).
  figures["survived"] = max(0, figures["kills"] - figures["failed_resumes"] - int(code != 0))

  ref_step, ref_leaves = final_state(reference)
  got_step, got_leaves = final_state(soaked)
  figures["states_equal"] = (ref_step == got_step and len(ref_leaves) == len(got_leaves) and all(
      a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(ref_leaves, got_leaves)))
  with open(os.path.join(reference, "metrics.jsonl")) as f:
    ref_metrics = [json.loads(line) for line in f]
  with open(os.path.join(soaked, "metrics.jsonl")) as f:
    got_metrics = [json.loads(line) for line in f]
  figures["metrics_equal"] = _comparable(ref_metrics) == _comparable(got_metrics)
  figures["seconds"] = round(time.time() - start, 1)
  log(f"[soak] kills survived {figures['survived']}/{figures['kills']} "
      f"({figures['kills_during_save']} during a save), final state equal: "
      f"{figures['states_equal']}, metrics.jsonl equal: {figures['metrics_equal']}, "
      f"checkpoints lost: {figures['checkpoints_lost']}, failed resumes: "
      f"{figures['failed_resumes']}, temporary checkpoint folders left: "
      f"{figures['temporary_folders_left']} ({figures['seconds']} s)")
  return figures


def main(argv):
  options = {"kills": "20", "config": "configs/sae_vlm_synthetic.py",
             "root": os.path.join("runs", "soak"), "seed": "0", "devices": "2"}
  overrides = dict(TINY_SAE)
  for arg in argv:
    name, _, value = arg.lstrip("-").partition("=")
    if name.startswith("config."):
      overrides[name[len("config."):]] = value
    elif name in options:
      options[name] = value
    else:
      print(f"unknown option {arg!r}; known: {', '.join('--' + o for o in options)}, "
            "--config.KEY=VALUE", file=sys.stderr)
      return 2
  if options["config"] != "configs/sae_vlm_synthetic.py" and not any(
      a.startswith("--config.") for a in argv):
    overrides = {"train.num_steps": 80, "train.log_every": 1, "train.checkpoint_every": 1}
  figures = soak(options["root"], int(options["kills"]), options["config"], overrides,
                 int(options["seed"]), int(options["devices"]))
  ok = figures["finished"] and figures["states_equal"] and figures["metrics_equal"]
  return 0 if ok and not figures["checkpoints_lost"] else 1


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
