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
cell lists plus their own plots.
"""

from __future__ import annotations

import itertools
import json
import os
import sys

from launch.common import (UsageError, apply_overrides, fail, load_config_from_args, parse_args,
                           parse_int, run_main)


def parse_grid(spec: str) -> list[dict]:
  """'a.b=1,2;c=x,y' -> [{'a.b': '1', 'c': 'x'}, ...] (the product of the axes)."""
  axes = []
  for part in [p for p in (spec or "").split(";") if p.strip()]:
    if "=" not in part:
      raise UsageError(f"--grid axis {part!r} has no values: write KEY=V1,V2 (axes separated by ';'),"
                       " e.g. --grid='loss.beta=1,4;seed=0,1'")
    key, values = part.split("=", 1)
    values = [v.strip() for v in values.split(",") if v.strip() != ""]
    if not values:
      raise UsageError(f"--grid axis {key!r} has no values: write {key}=V1,V2")
    if len(set(values)) != len(values):
      raise UsageError(f"--grid axis {key.strip()} repeats a value ({','.join(values)}); list "
                       "distinct values")
    if any(key.strip() == k for axis in axes for k, _ in axis[:1]):
      raise UsageError(f"--grid names {key.strip()!r} twice; give each key one axis")
    axes.append([(key.strip(), v) for v in values])
  return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def parse_seeds(text: str) -> list[int]:
  seeds = [parse_int("seeds", s.strip(), minimum=0) for s in text.split(",") if s.strip()]
  if not seeds:
    raise UsageError("--seeds needs at least one integer, e.g. --seeds=0,1")
  repeated = sorted({s for s in seeds if seeds.count(s) > 1})
  if repeated:
    raise UsageError(f"--seeds={text} repeats seed(s) {repeated}: each seed would train the same "
                     "run twice and count it twice in the mean +- std; list distinct seeds")
  return seeds


def split_seed_axis(grid: list[dict], seeds_text: str | None) -> tuple[list[dict], str | None]:
  """A grid axis 'seed=0,1' means --seeds=0,1 (each cell's seed is set after the grid's keys)."""
  if not grid or "seed" not in grid[0]:
    return grid, seeds_text
  if seeds_text is not None:
    raise UsageError("the seeds are given twice (--grid's seed axis and --seeds); use one")
  seeds_text = ",".join(dict.fromkeys(point["seed"] for point in grid))
  rest = []
  for point in grid:
    reduced = {k: v for k, v in point.items() if k != "seed"}
    if reduced not in rest:
      rest.append(reduced)
  return rest, seeds_text


def cell_name(point: dict, seed: int) -> str:
  parts = [f"{k.split('.')[-1]}={v}" for k, v in point.items()]
  return "_".join(parts + [f"seed{seed}"])


def run_cells(config_path: str, workdir: str, cells: list[tuple[str, list[tuple[str, str]]]], *,
              evaluate: bool = False, only=None, log=None, vmap_cells: bool = False,
              model_axis: str = "auto") -> list[dict]:
  """Train + evaluate each (name, overrides) cell in WORKDIR/name; rows of eval scalars.

  All cells' configs are built (and so validated) before the first one trains. ``vmap_cells``:
  cells that differ only in ``seed`` train as one vmapped program (``model_axis.fit_group``).
  """
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.loop import fit, validate_train_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from launch.evaluate import evaluate_workdir  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
  configs = []
  for name, overrides in cells:
    config = load_config_from_args(config_path, list(overrides))
    try:
      validate_train_config(config)
      make_method(config)
    except (ValueError, KeyError) as error:
      raise UsageError(f"cell {name}: invalid config: {error}") from None
    configs.append((name, config))
  from jaxdisent.train.lock import workdir_lock  # pylint: disable=g-import-not-at-top
  with workdir_lock(workdir, "sweep"):  # one sweep per root; each cell's fit locks the cell too
    results = _vmapped_results(configs, workdir, log, model_axis) if vmap_cells else {}
    return _train_cells(configs, workdir, fit, evaluate_workdir, read_record, evaluate, only, log,
                        results)


def _finished(config, cell) -> bool:
  """The cell's config.json matches and its final step is checkpointed (re-running is a no-op)."""
  directory = os.path.join(cell, "checkpoints")
  return os.path.isdir(directory) and str(int(config.train.num_steps)) in os.listdir(directory)


def _vmapped_results(configs, workdir, log, how="auto") -> dict:
  """Train the groups of >= 2 unfinished cells that differ only in seed; {name: FitResult}."""
  from jaxdisent.train.model_axis import fit_group, group_key  # pylint: disable=g-import-not-at-top
  groups: dict[str, list] = {}
  for name, config in configs:
    if not _finished(config, os.path.join(workdir, name)):
      groups.setdefault(group_key(config), []).append((name, config))
  results = {}
  for members in groups.values():
    names = [name for name, _ in members]
    if len(members) < 2:
      log(f"[sweep] note: {names[0]} shares its config with no other seed; it trains alone "
          "(--vmap_cells groups cells that differ only in seed)")
      continue
    log(f"[sweep] vmapped group of {len(members)}: {', '.join(names)}")
    for name, result in zip(names, fit_group([(c, os.path.join(workdir, n)) for n, c in members],
                                             quiet=True, how=how)):
      results[name] = result
  return results


def _train_cells(configs, workdir, fit, evaluate_workdir, read_record, evaluate, only, log,
                 results=None):
  rows = []
  results = results or {}
  for index, (name, config) in enumerate(configs, 1):
    cell = os.path.join(workdir, name)
    if name in results:
      result = results[name]
    else:
      log(f"[sweep] {index}/{len(configs)} {name}")
      result = fit(config, cell, quiet=True)
    if result.preempted:
      raise RuntimeError(f"cell {name} was preempted; re-run the same command to resume")
    if evaluate:
      evaluate_workdir(cell, only=only, log=lambda *a: None)
    record = read_record(cell, result.step) or {"evals": {}}
    scalars = {f"eval/{n}/{k}": v for n, s in record["evals"].items() for k, v in s.items()
               if k != "seconds"}
    rows.append({"run": name, "seed": int(config.seed), "step": result.step, **scalars})
  return rows


def summarize(rows: list[dict], group_keys: list[str], keys=None) -> tuple[list[dict], str]:
  """Mean and std over seeds of every numeric column, per group; (table, markdown)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  metric_keys = keys or sorted({k for r in rows for k, v in r.items()
                                if k.startswith("eval/") and isinstance(v, (int, float))})
  groups = []
  for row in rows:
    point = tuple(row.get(k) for k in group_keys)
    if point not in groups:
      groups.append(point)
  table = []
  for point in groups:
    members = [r for r in rows if tuple(r.get(k) for k in group_keys) == point]
    entry = {**dict(zip(group_keys, point)), "seeds": len(members)}
    for key in metric_keys:
      values = np.array([r[key] for r in members if isinstance(r.get(key), (int, float))], float)
      if len(values):
        entry[key] = {"mean": float(values.mean()), "std": float(values.std())}
    table.append(entry)
  short = [k.split("/", 2)[-1] for k in metric_keys]
  lines = ["| " + " | ".join(group_keys + ["seeds"] + short) + " |",
           "|" + "---|" * (len(group_keys) + 1 + len(metric_keys))]
  for entry in table:
    cells = [str(entry[k]) for k in group_keys] + [str(entry["seeds"])]
    cells += [f"{entry[k]['mean']:.3f} +- {entry[k]['std']:.3f}" if k in entry else "-"
              for k in metric_keys]
    lines.append("| " + " | ".join(cells) + " |")
  return table, "\n".join(lines) + "\n"


def write_summary(workdir: str, rows, table, markdown, stem: str = "summary") -> None:
  from jaxdisent.train.lock import workdir_lock  # pylint: disable=g-import-not-at-top
  with workdir_lock(workdir, "sweep summary"):
    for name, text in ((f"{stem}.json", json.dumps({"rows": rows, "summary": table}, indent=2)),
                       (f"{stem}.md", markdown)):
      path = os.path.join(workdir, name)
      with open(path + ".tmp", "w") as f:
        f.write(text)
      os.replace(path + ".tmp", path)


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
