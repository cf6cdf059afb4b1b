"""DecAlign ablation: the full model against variants with one loss term switched off, over seeds.

  python -m launch.decalign_ablation --config=configs/decalign_synthetic.py --workdir=runs/decalign_ablation \
      [--variants=full,no_heterogeneity,no_homogeneity,no_decoupling,task_only] [--seeds=0,1,2] \
      [--config.train.num_steps=1000 ...]

Each run trains through the shared engine in WORKDIR/<variant>_seed<s> (re-running resumes or skips
finished runs) and is evaluated on the test split. WORKDIR/ablation.md / ablation.json hold mean +- std
over seeds and WORKDIR/ablation.png plots them.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from launch.common import UsageError, fail, load_config_from_args, parse_args, run_main
from launch.sweep import parse_seeds, run_cells

VARIANTS = {
    "full": {},
    "no_heterogeneity": {"loss.heterogeneity": False},
    "no_homogeneity": {"loss.homogeneity": False},
    "no_decoupling": {"loss.decoupling": False},
    "task_only": {"loss.heterogeneity": False, "loss.homogeneity": False, "loss.decoupling": False},
}
KEYS = ("mae", "corr", "acc2", "f1", "acc7", "probe_unique_to_own_unique", "probe_common_to_common",
        "probe_common_to_unique", "unique_common_cos2")


def summarize(rows, variants):
  table = {}
  for variant in variants:
    runs = [r for r in rows if r["variant"] == variant]
    table[variant] = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
                      for k in KEYS if all(k in r for r in runs)}
  keys = [k for k in KEYS if all(k in table[v] for v in variants)]
  lines = ["| variant | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
  for variant in variants:
    n = sum(r["variant"] == variant for r in rows)
    cells = [f"{table[variant][k][0]:.3f} +- {table[variant][k][1]:.3f}" for k in keys]
    lines.append(f"| {variant} | {n} | " + " | ".join(cells) + " |")
  return table, "\n".join(lines) + "\n"


def plot(table, variants, path):
  from jaxdisent.viz.ablation_plots import variant_bars  # pylint: disable=g-import-not-at-top
  variant_bars(table, variants, ["mae", "corr", "f1", "acc7", "probe_unique_to_own_unique",
                                 "probe_common_to_common"], path,
               "DecAlign ablation (test split, mean +- std over seeds)", lower_is_better=("mae",),
               zoom=True)


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": "configs/decalign_synthetic.py", "workdir": None,
                                         "root": None, "variants": ",".join(VARIANTS),
                                         "seeds": "0,1,2"})
    if flags["root"] and not flags["workdir"]:
      print("[jaxdisent] note: --root is deprecated; use --workdir", file=sys.stderr)
      flags["workdir"] = flags["root"]
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required")
    variants = [v for v in flags["variants"].split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
      raise UsageError(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    seeds = parse_seeds(flags["seeds"])
    base = load_config_from_args(flags["config"], overrides)
    if base.method != "decalign":
      raise UsageError(f"{flags['config']} is a {base.method!r} config; the ablation needs decalign")
    cells = [(f"{variant}_seed{seed}",
              [*overrides, *((k, str(v).lower()) for k, v in VARIANTS[variant].items()),
               ("seed", str(seed))]) for variant in variants for seed in seeds]
    root = flags["workdir"]
    sweep_rows = run_cells(flags["config"], root, cells)
  except UsageError as error:
    return fail(str(error))
  except (ValueError, KeyError, FileNotFoundError, RuntimeError) as error:
    return fail(str(error))
  prefix = "eval/sentiment/"
  rows = [{"variant": variant, "seed": seed,
           **{k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}}
          for row, (variant, seed) in zip(sweep_rows, [(v, s) for v in variants for s in seeds])]
  table, markdown = summarize(rows, variants)
  with open(os.path.join(root, "ablation.md"), "w") as f:
    f.write(markdown)
  with open(os.path.join(root, "ablation.json"), "w") as f:
    json.dump({"rows": rows, "summary": table}, f, indent=2)
  plot(table, variants, os.path.join(root, "ablation.png"))
  print(markdown)
  print(f"[ablation] wrote {root}/ablation.md, ablation.json, ablation.png", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
