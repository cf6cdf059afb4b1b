"""An 8-cell SAE sweep (4 seeds x 2 model.k) trained sequentially and vmapped, side by side.

  python benchmarks/bench_sweep.py [--num_steps=N] [--ks=4,8] [--seeds=0,1,2,3]
      [--config=configs/sae_vlm_synthetic.py] [--workdir=DIR] [--order=seq,vmap]
      [--model_axis=auto|map|vmap]

Each variant is one fresh `python -m launch.sweep` process on an empty workdir, timed end to end
(start-up, data, compiles, training, checkpoints and every cell's end-of-run evaluation):

  sequential: --grid='model.k=4,8' --seeds=0,1,2,3               (8 fits, one after another)
  vmapped:    the same with --vmap_cells=true --model_axis=auto  (2 groups of 4 seeds; auto
              is lax.map over the cells on CPU, jax.vmap on accelerators)

The persistent compilation cache is switched off in both children, so each pays its compiles.
Prints both times, then the per-cell agreement of the final training losses, and as its last line
``vmapped vs sequential: R.RRx`` (sequential seconds / vmapped seconds).
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
           "order": "seq,vmap", "model_axis": "auto"}
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


def main(argv) -> int:
  flags, order = _flags(argv)
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
