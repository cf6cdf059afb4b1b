"""SAE sweeps: the R^2-vs-L0 frontier of BatchTopK / Matryoshka BatchTopK / TopK / ReLU / JumpReLU
and stability vs energy.

  python -m launch.sae_sweep --config=configs/sae_vlm_synthetic.py --workdir=runs/sae_sweep \
      [--kinds=batchtopk,matryoshka_batchtopk,topk,relu,jumprelu] [--ks=2,4,8] [--l1=0.1,0.03,0.01] \
      [--l0=0.03,0.01,0.003] [--seeds=0,1] [--grid='data.image_fraction=0.25,0.5,0.75']
      [--vmap_cells=true] [--config.train.num_steps=...]

Each point trains through the shared engine in WORKDIR/<kind>_<knob>_seed<s> (re-running resumes or
skips finished runs). The sparsity knob is k for (Matryoshka) BatchTopK/TopK, the L1 coefficient for ReLU and
the L0 coefficient for JumpReLU. Writes WORKDIR/frontier.json, WORKDIR/frontier.png and, from the
BatchTopK runs of the first two seeds at the middle k, WORKDIR/stability_vs_energy.png.

--grid adds axes (launch.sweep's syntax, KEY=V1,V2 separated by ';') crossed with every kind's
cells, e.g. the image:text mixture ``data.image_fraction``. Stability per cell: runs that differ
only in seed (every (Matryoshka) BatchTopK cell with two or more --seeds) are paired, their decoders matched
by the Hungarian algorithm on |cosine| ([papadimitriou2025]'s stability), and WORKDIR/stability.json
lists per cell the mean matched cosine over all atoms and weighted by run A's energy E[z_i] on
held-out data, averaged over the seed pairs (also in frontier.json as ``stability`` /
``stability_energy_weighted``).

--vmap_cells=true trains the seeds of each BatchTopK point as one vmapped program (see launch.sweep).
"""

from __future__ import annotations

import json
import os
import sys

from launch.common import UsageError, fail, load_config_from_args, parse_args, run_main
from jaxdisent.runs import parse_grid, parse_seeds, run_cells


SEEDED_KINDS = ("batchtopk", "matryoshka_batchtopk")   # every --seeds; other kinds the first only


def _floats(text):
  return [float(v) for v in text.split(",") if v]


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "workdir": None, "root": None,
                                         "kinds": "batchtopk,matryoshka_batchtopk,topk,relu,jumprelu",
                                         "ks": "2,4,8",
                                         "l1": "0.1,0.03,0.01", "l0": "0.03,0.01,0.003",
                                         "seeds": "0,1", "grid": None, "vmap_cells": "false"})
    if flags["root"] and not flags["workdir"]:
      print("[jaxdisent] note: --root is deprecated; use --workdir", file=sys.stderr)
      flags["workdir"] = flags["root"]
    if not flags["config"] or not flags["workdir"]:
      raise UsageError("--config=FILE and --workdir=DIR are required")
    if flags["vmap_cells"].lower() not in ("true", "false", "1", "0", "yes", "no"):
      raise UsageError(f"--vmap_cells={flags['vmap_cells']}: use true or false")
    vmap_cells = flags["vmap_cells"].lower() in ("true", "1", "yes")
    kinds = [k for k in flags["kinds"].split(",") if k]
    seeds = parse_seeds(flags["seeds"])
    try:
      knobs = {"batchtopk": ("model.k", [int(k) for k in flags["ks"].split(",")]),
               "matryoshka_batchtopk": ("model.k", [int(k) for k in flags["ks"].split(",")]),
               "topk": ("model.k", [int(k) for k in flags["ks"].split(",")]),
               "relu": ("loss.l1_coeff", _floats(flags["l1"])),
               "jumprelu": ("loss.jumprelu_l0_coeff", _floats(flags["l0"]))}
    except ValueError as error:
      raise UsageError(f"--ks / --l1 / --l0 must be comma-separated numbers ({error})") from None
    unknown = [k for k in kinds if k not in knobs]
    if unknown:
      raise UsageError(f"unknown SAE kind(s) {unknown}; use {sorted(knobs)}")
    grid = parse_grid(flags["grid"])
    if any("seed" in point for point in grid):
      raise UsageError("--grid cannot hold seed: give the seeds with --seeds")
    base = load_config_from_args(flags["config"], overrides)
    if base.method != "sae":
      raise UsageError(f"{flags['config']} is a {base.method!r} config; the SAE sweep needs an sae one")
    points, cells = [], []
    for kind in kinds:
      key, values = knobs[kind]
      for value in values:
        for extra in grid:
          suffix = "".join(f"_{k.split('.')[-1]}={v}" for k, v in extra.items())
          for seed in (seeds if kind in SEEDED_KINDS else seeds[:1]):
            name = f"{kind}_{key.split('.')[-1]}={value}{suffix}_seed{seed}"
            cells.append((name, [*overrides, *extra.items(), ("model.kind", kind),
                                 (key, str(value)), ("seed", str(seed))]))
            points.append({"kind": kind, "knob": key, "value": value, **extra, "seed": seed,
                           "run": name})
    root = flags["workdir"]
    rows = run_cells(flags["config"], root, cells, vmap_cells=vmap_cells)
  except UsageError as error:
    return fail(str(error))
  except (ValueError, KeyError, FileNotFoundError, RuntimeError) as error:
    return fail(str(error))
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import dictionary as D  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  from jaxdisent.viz import sae_plots  # pylint: disable=g-import-not-at-top
  prefix = "eval/dictionary/"
  for point, row in zip(points, rows):
    point.update({k: row.get(prefix + k) for k in ("l0", "r2", "fvu", "dead_fraction",
                                                   "concept_recovery")})
    if row.get(prefix + "smallest_prefix_r2") is not None:   # Matryoshka: the 1/16 prefix alone
      point["smallest_prefix_r2"] = row[prefix + "smallest_prefix_r2"]
  stability = seed_stability(root, points)
  with open(os.path.join(root, "stability.json"), "w") as f:
    json.dump(stability, f, indent=2)
  with open(os.path.join(root, "frontier.json"), "w") as f:
    json.dump(points, f, indent=2)
  sae_plots.frontier(points, os.path.join(root, "frontier.png"))
  ks = knobs["batchtopk"][1]
  middle = ks[len(ks) // 2]
  if "batchtopk" in kinds and len(seeds) >= 2:
    suffix = "".join(f"_{k.split('.')[-1]}={v}" for k, v in grid[0].items())
    runs = [os.path.join(root, f"batchtopk_k={middle}{suffix}_seed{s}") for s in seeds[:2]]
    (_, method, a, _), (_, _, b, _) = restore_latest(runs[0]), restore_latest(runs[1])
    match = D.stability(np.asarray(a.params["W_dec"]), np.asarray(b.params["W_dec"]))
    data = method.data
    if hasattr(data, "pairs"):
      import jax  # pylint: disable=g-import-not-at-top
      image, text, _, _ = data.pairs(jax.random.key(99), 4096)
      x = np.concatenate([np.asarray(image), np.asarray(text)])
    else:
      x = np.asarray(data.batch(99, 0, 0, 8192)["x"])
    codes = np.asarray(method.encode(a.params, a.model_state, x))
    sae_plots.stability_vs_energy(D.energy(codes), match["per_atom"],
                                  os.path.join(root, "stability_vs_energy.png"),
                                  title=f"BatchTopK k={middle}: seed {seeds[0]} vs {seeds[1]}, "
                                        f"mean matched cosine {match['mean_matched_cosine']:.3f}")
  print(json.dumps(points, indent=1))
  return 0


_NOT_CELL_KEYS = ("seed", "run", "l0", "r2", "fvu", "dead_fraction", "concept_recovery",
                  "stability", "stability_energy_weighted", "smallest_prefix_r2")


def _heldout(method, count=4096):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  data = method.data
  if hasattr(data, "pairs"):
    image, text, _, _ = data.pairs(jax.random.key(99), count)
    return np.concatenate([np.asarray(image), np.asarray(text)])
  return np.asarray(data.batch(99, 0, 0, min(2 * count, 2 * data.num_rows))["x"])


def seed_stability(root: str, points: list[dict]) -> list[dict]:
  """Hungarian-matched atom stability of runs that differ only in seed, per cell (module doc);
  adds ``stability`` / ``stability_energy_weighted`` to those points. Cells with one seed are
  left out."""
  import itertools  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals.dictionary import encode_batched  # pylint: disable=g-import-not-at-top
  from jaxdisent.metrics import dictionary as D  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import restore_latest  # pylint: disable=g-import-not-at-top
  cells = {}
  for point in points:
    cell = tuple((k, v) for k, v in point.items() if k not in _NOT_CELL_KEYS)
    cells.setdefault(cell, []).append(point)
  rows = []
  for cell, members in cells.items():
    if len(members) < 2:
      continue
    restored = {p["seed"]: restore_latest(os.path.join(root, p["run"])) for p in members}
    plain, weighted = [], []
    for a, b in itertools.combinations(sorted(restored), 2):
      _, method, state_a, _ = restored[a]
      state_b = restored[b][2]
      match = D.stability(np.asarray(state_a.params["W_dec"]), np.asarray(state_b.params["W_dec"]))
      energy = D.energy(encode_batched(method, state_a, _heldout(method)))
      plain.append(match["mean_matched_cosine"])
      weighted.append(float(np.sum(match["per_atom"] * energy) / energy.sum())
                      if energy.sum() > 0 else float("nan"))
    row = {**dict(cell), "seeds": sorted(restored), "mean_matched_cosine": float(np.mean(plain)),
           "energy_weighted_matched_cosine": float(np.mean(weighted)), "num_seed_pairs": len(plain)}
    rows.append(row)
    for point in members:
      point["stability"] = row["mean_matched_cosine"]
      point["stability_energy_weighted"] = row["energy_weighted_matched_cosine"]
  return rows


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
