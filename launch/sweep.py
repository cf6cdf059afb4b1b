"""Train (and evaluate) a grid of runs of ANY method and tabulate their evaluation records.

  python -m launch.sweep --config=configs/beta_vae_dsprites.py --workdir=runs/beta_sweep \
      --grid='loss.beta=1,4,16;model.latent_dim=6,10' --seeds=0,1 [--evaluate=true] \
      [--only=disentanglement] [--vmap_cells=true [--model_axis=auto|map|vmap]] \
      [--config.KEY=VALUE ...]

Each cell trains through the shared engine in WORKDIR/<key>=<value>_..._seed<s> (re-running
resumes or skips finished cells) and is scored by the evaluators its config declares: those that
run in training always, and with --evaluate=true also the slow ones (launch.evaluate's list).
Every --config.KEY=VALUE applies to every cell. WORKDIR/summary.json holds one row per cell
(grid values, seed, and every ``eval/<name>/<key>`` scalar of its newest record);
WORKDIR/summary.md the mean +- std over seeds per grid point.

--vmap_cells=true trains the cells whose configs differ only in `seed` as ONE vmapped program
(jaxdisent/train/model_axis.py): one compile and one step for the group, each cell still its own
workdir, checkpoints, metrics and evaluation, equal to training it alone up to float32 rounding.
Cells that differ in anything else (a grid value such as the learning rate or model.k) form
separate groups; a group of one trains alone, with a note. --model_axis says how the group's step
covers its cells: vmap (jax.vmap of the per-device step), map (lax.map over the cells inside the
one compiled step: a cond stays a cond) or auto (default: map on CPU, where it measured faster,
vmap on accelerators). The SAE frontier
(launch.sae_sweep) and the DecAlign ablation (launch.decalign_ablation) are sweeps over fixed
cell lists plus their own plots. From Python: ``jaxdisent.runs.run_cells`` and ``summarize``.
"""

from __future__ import annotations

import sys

from jaxdisent.runs import (cell_name, parse_grid, parse_seeds, run_cells, split_seed_axis,
                            summarize, write_summary)
from launch.common import UsageError, apply_overrides, fail, load_config_from_args, parse_args, run_main


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "workdir": None, "root": None,
                                         "grid": "", "seeds": None, "evaluate": "false",
                                         "only": None, "keys": None, "vmap_cells": "false",
                                         "model_axis": "auto"})
    if flags["root"] and not flags["workdir"]:
      print("[jaxdisent] note: --root is deprecated; use --workdir", file=sys.stderr)
      flags["workdir"] = flags["root"]
    if not flags["config"] or not flags["workdir"]:
      raise UsageError("--config=FILE and --workdir=DIR are required")
    grid, seeds_text = split_seed_axis(parse_grid(flags["grid"]), flags["seeds"])
    seeds = parse_seeds(seeds_text if seeds_text is not None else "0")
    if flags["evaluate"].lower() not in ("true", "false", "1", "0", "yes", "no"):
      raise UsageError(f"--evaluate={flags['evaluate']}: use true or false")
    evaluate = flags["evaluate"].lower() in ("true", "1", "yes")
    if flags["vmap_cells"].lower() not in ("true", "false", "1", "0", "yes", "no"):
      raise UsageError(f"--vmap_cells={flags['vmap_cells']}: use true or false")
    vmap_cells = flags["vmap_cells"].lower() in ("true", "1", "yes")
    if flags["model_axis"] not in ("auto", "map", "vmap"):
      raise UsageError(f"--model_axis={flags['model_axis']}: use auto, map or vmap")
    base = load_config_from_args(flags["config"], overrides)
    for key in {k for point in grid for k in point}:
      apply_overrides(base, [(key, grid[0][key])])  # unknown or mistyped grid keys fail here
    cells = [(cell_name(point, seed), [*overrides, *point.items(), ("seed", str(seed))])
             for point in grid for seed in seeds]
    only = flags["only"].split(",") if flags["only"] else None
    keys = flags["keys"].split(",") if flags["keys"] else None
    rows = run_cells(flags["config"], flags["workdir"], cells, evaluate=evaluate, only=only,
                     vmap_cells=vmap_cells, model_axis=flags["model_axis"])
  except UsageError as error:
    return fail(str(error))
  except (ValueError, KeyError, FileNotFoundError, RuntimeError) as error:
    return fail(str(error))
  grid_keys = list(grid[0].keys())
  for row, (point, _) in zip(rows, [(p, s) for p in grid for s in seeds]):
    row.update(point)
  table, markdown = summarize(rows, grid_keys, keys)
  write_summary(flags["workdir"], rows, table, markdown)
  print(markdown)
  print(f"[sweep] wrote {flags['workdir']}/summary.md and summary.json", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
