"""An 8-cell SAE sweep (4 seeds x 2 model.k) trained sequentially and vmapped, side by side.

  python benchmarks/bench_sweep.py [--num_steps=N] [--ks=4,8] [--seeds=0,1,2,3]
      [--config=configs/sae_vlm_synthetic.py] [--workdir=DIR] [--order=seq,vmap]
      [--model_axis=auto|map|vmap]
  python benchmarks/bench_sweep.py --step_only=true [--cells=4] [--steps=30] [--config=...]
      [--set=key=value,key=value]     (config overrides, e.g. --set=data.synthetic.dim=768)

Each variant is one fresh `python -m launch.sweep` process on an empty workdir, timed end to end
(start-up, data, compiles, training, checkpoints and every cell's end-of-run evaluation):

  sequential: --grid='model.k=4,8' --seeds=0,1,2,3               (8 fits, one after another)
  vmapped:    the same with --vmap_cells=true --model_axis=auto  (2 groups of 4 seeds; auto
              is lax.map over the cells on CPU, jax.vmap on accelerators)

The persistent compilation cache is switched off in both children, so each pays its compiles.
Prints both times, then the per-cell agreement of the final training losses, and as its last line
``vmapped vs sequential: R.RRx`` (sequential seconds / vmapped seconds).

``--step_only=true`` times the training step alone, in this process, on one device: one cell's
step (x cells), the group step with ``lax.map`` and with ``jax.vmap`` over the cells, two rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags(argv):
  flags = {"num_steps": None, "ks": "4,8", "seeds": "0,1,2,3",
           "config": os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), "workdir": None,
           "order": "seq,vmap", "model_axis": "auto", "step_only": "false", "cells": "4",
           "steps": "30", "set": ""}
  for arg in argv:
    if arg in ("-h", "--help"):
      print(__doc__)
      sys.exit(0)
    key, _, value = arg.lstrip("-").partition("=")
    if key not in flags or not value:
      print(f"[jaxdisent] error: unknown or empty flag {arg!r}; see --help", file=sys.stderr)
      sys.exit(2)
    flags[key] = value
  if flags["num_steps"] is not None and (not flags["num_steps"].isdigit()
                                         or int(flags["num_steps"]) < 1):
    print(f"[jaxdisent] error: --num_steps={flags['num_steps']} must be an integer >= 1",
          file=sys.stderr)
    sys.exit(2)
  for key in ("cells", "steps"):
    if not flags[key].isdigit() or int(flags[key]) < 1:
      print(f"[jaxdisent] error: --{key}={flags[key]} must be an integer >= 1", file=sys.stderr)
      sys.exit(2)
  if flags["step_only"] not in ("true", "false"):
    print(f"[jaxdisent] error: --step_only={flags['step_only']}: use true or false",
          file=sys.stderr)
    sys.exit(2)
  order = flags["order"].split(",")
  if sorted(order) != ["seq", "vmap"]:
    print(f"[jaxdisent] error: --order={flags['order']} must list seq and vmap once each",
          file=sys.stderr)
    sys.exit(2)
  return flags, order


def _run(flags, workdir, vmap):
  command = [sys.executable, "-m", "launch.sweep", f"--config={flags['config']}",
             f"--workdir={workdir}", f"--grid=model.k={flags['ks']}", f"--seeds={flags['seeds']}",
             f"--vmap_cells={'true' if vmap else 'false'}", f"--model_axis={flags['model_axis']}"]
  if flags["num_steps"]:
    command.append(f"--config.train.num_steps={flags['num_steps']}")
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  start = time.perf_counter()
  done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if done.returncode:
    print(done.stderr[-3000:], file=sys.stderr)
    raise SystemExit(f"[jaxdisent] error: {'vmapped' if vmap else 'sequential'} sweep failed "
                     f"(exit {done.returncode})")
  return seconds


def _final_losses(workdir):
  losses = {}
  for name in sorted(os.listdir(workdir)):
    path = os.path.join(workdir, name, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
      losses[name] = [r["loss"] for r in rows if "loss" in r][-1]
  return losses


def _overrides(text: str) -> list[tuple[str, str]]:
  """--set=a.b=1,c=name -> [('a.b', '1'), ('c', 'name')]: typed like the fields they replace by
  jaxdisent.runs.apply_overrides (the launchers' --config.KEY=VALUE path)."""
  pairs = []
  for item in filter(None, text.split(",")):
    key, sep, value = item.partition("=")
    if not sep or not key or not value:
      print(f"[jaxdisent] error: --set item {item!r} is not key=value, e.g. "
            "--set=data.synthetic.dim=768", file=sys.stderr)
      sys.exit(2)
    pairs.append((key, value))
  return pairs


def step_only(flags) -> int:
  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import load_config_with_overrides  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.model_axis import ModelAxis, stack  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top
  from jaxdisent.usage import UsageError  # pylint: disable=g-import-not-at-top
  cells, steps = int(flags["cells"]), int(flags["steps"])
  try:
    config = load_config_with_overrides(flags["config"], _overrides(flags["set"]))
  except UsageError as error:
    print(f"[jaxdisent] error: {error}", file=sys.stderr)
    return 2
  method = make_method(config)
  optimizer = method.optimizer()
  devices = jax.devices()[:1]
  single = DataParallel(method, optimizer, 0, devices=devices)
  params, model_state = method.init(jax.random.key(0))
  host = jax.tree.map(np.array, TrainState.create(params, optimizer.init(params), model_state))
  batch = single.local_batch(method.local_batch, 0, 0, config.train.batch_size)
  axes = {how: ModelAxis(method, optimizer, range(cells), devices=devices, how=how)
          for how in ("map", "vmap")}

  def timed(step, state, placed):
    state, metrics = step(state, placed)          # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, placed)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / steps

  print(f"[bench_sweep] step only: {cells} cells of {os.path.relpath(flags['config'], ROOT)}"
        f"{' with ' + flags['set'] if flags['set'] else ''}, {steps} timed steps, 1 device, "
        f"load {os.getloadavg()[0]:.1f}")
  for round_ in range(2):
    one = timed(single.step, single.place_state(jax.tree.map(np.array, host)),
                single.place_batch(batch))
    group = {how: timed(axis.step, axis.place_state(stack([host] * cells)),
                        axis.place_batch([batch] * cells)) for how, axis in axes.items()}
    print(f"[bench_sweep] round {round_ + 1}: one cell {1e3 * one:.1f} ms/step (x {cells} = "
          f"{1e3 * cells * one:.1f} ms); group map {1e3 * group['map']:.1f} ms, vmap "
          f"{1e3 * group['vmap']:.1f} ms per step of all {cells}")
  return 0


def main(argv) -> int:
  flags, order = _flags(argv)
  if flags["step_only"] == "true":
    return step_only(flags)
  root = flags["workdir"] or tempfile.mkdtemp(prefix="bench_sweep_")
  cells = len(flags["ks"].split(",")) * len(flags["seeds"].split(","))
  print(f"[bench_sweep] {cells} cells: model.k in {{{flags['ks']}}} x seeds {{{flags['seeds']}}}"
        f", config {os.path.relpath(flags['config'], ROOT)}, num_steps "
        f"{flags['num_steps'] or 'config default'}, {os.cpu_count()} CPU(s), load "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  seconds = {}
  for variant in order:
    workdir = os.path.join(root, variant)
    shutil.rmtree(workdir, ignore_errors=True)
    seconds[variant] = _run(flags, workdir, vmap=variant == "vmap")
    print(f"[bench_sweep] {'sequential' if variant == 'seq' else 'vmapped':>10}: "
          f"{seconds[variant]:8.1f} s end to end", flush=True)
  seq, vm = _final_losses(os.path.join(root, "seq")), _final_losses(os.path.join(root, "vmap"))
  worst = max(abs(seq[n] - vm[n]) / max(abs(seq[n]), 1e-12) for n in seq)
  print(f"[bench_sweep] final training loss, largest relative difference over the {len(seq)} "
        f"cells: {worst:.2e}")
  if not flags["workdir"]:
    shutil.rmtree(root, ignore_errors=True)
  print(f"vmapped vs sequential: {seconds['seq'] / seconds['vmap']:.2f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
