"""Run a grid of trainings (+ optional evaluation) one after another and tabulate the results.

  python -m launch.sweep --config=configs/beta_vae_dsprites.py --root=runs/beta_sweep \
      --grid=loss.beta=1,4,16 --seeds=0,1 [--evaluate=true --num_train=1000 --num_eval=500] \
      [--config.train.num_steps=1200 ...]

Each run is `python -m launch.train` in ROOT/<key>=<value>_seed<s> (re-running resumes/skips
finished runs); with --evaluate each is then scored by `launch.evaluate`. ROOT/summary.md and
ROOT/summary.json collect mean and std over seeds of the main metrics.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import numpy as np

from launch.common import UsageError, fail, parse_args

SUMMARY_KEYS = ("mig", "factor_vae_score", "beta_vae_score", "dci_disentanglement", "sap",
                "modularity", "irs")


def _grid(spec: str):
  axes = []
  for part in spec.split(";") if spec else []:
    key, values = part.split("=", 1)
    axes.append([(key, v) for v in values.split(",")])
  return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "root": None, "grid": "", "seeds": "0",
                                         "evaluate": "false", "num_train": "10000",
                                         "num_eval": "5000", "dci_importance": "gbt"})
    if not flags["config"] or not flags["root"]:
      raise UsageError("--config=FILE and --root=DIR are required")
    grid = _grid(flags["grid"])
    seeds = [int(s) for s in flags["seeds"].split(",")]
  except (UsageError, ValueError) as error:
    return fail(str(error))
  evaluate = flags["evaluate"].lower() in ("1", "true", "yes")
  os.makedirs(flags["root"], exist_ok=True)
  rows = []
  for point in grid:
    for seed in seeds:
      name = "_".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) + f"_seed{seed}"
      workdir = os.path.join(flags["root"], name)
      args = [f"--config={flags['config']}", f"--workdir={workdir}", f"--config.seed={seed}"]
      args += [f"--config.{k}={v}" for k, v in point.items()]
      args += [f"--config.{k}={v}" for k, v in overrides]
      print(f"[sweep] train {name}", file=sys.stderr, flush=True)
      if subprocess.call([sys.executable, "-m", "launch.train", *args]) != 0:
        return fail(f"training {name} failed")
      row = {"run": name, "seed": seed, **point}
      if evaluate:
        print(f"[sweep] evaluate {name}", file=sys.stderr, flush=True)
        code = subprocess.call([sys.executable, "-m", "launch.evaluate", f"--workdir={workdir}",
                                f"--num_train={flags['num_train']}",
                                f"--num_eval={flags['num_eval']}",
                                f"--dci_importance={flags['dci_importance']}", f"--seed={seed}"])
        if code != 0:
          return fail(f"evaluating {name} failed")
        with open(os.path.join(workdir, "eval.json")) as f:
          scores = json.load(f)
        row.update({k: scores[k] for k in SUMMARY_KEYS})
      rows.append(row)
  _write_summary(flags["root"], grid, rows, evaluate)
  return 0


def _write_summary(root, grid, rows, evaluate):
  with open(os.path.join(root, "summary.json"), "w") as f:
    json.dump(rows, f, indent=2)
  if not evaluate:
    return
  keys = list(grid[0].keys())
  lines = ["| " + " | ".join(keys + ["seeds"] + list(SUMMARY_KEYS)) + " |",
           "|" + "---|" * (len(keys) + 1 + len(SUMMARY_KEYS))]
  for point in grid:
    group = [r for r in rows if all(r[k] == v for k, v in point.items())]
    cells = [point[k] for k in keys] + [str(len(group))]
    for metric in SUMMARY_KEYS:
      values = np.array([r[metric] for r in group], dtype=float)
      cells.append(f"{values.mean():.3f} +- {values.std():.3f}")
    lines.append("| " + " | ".join(cells) + " |")
  with open(os.path.join(root, "summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
