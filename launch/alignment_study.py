"""Run the alignment-emergence study: results.csv/json, summary.json and plots in the workdir.

  python -m launch.alignment_study --config=configs/alignment_emergence.py --workdir=runs/emergence \
      [--config.grid.seeds=3 --config.grid.num_unique=[0,4,8] ...] [--devices=N]
  python -m launch.alignment_study --config=configs/alignment_emergence.py:paper --workdir=W \
      [--config.study.metric=mutual_knn --config.study.k=100] [--config.data.synergy=true ...]

The ':paper' variant is the paper's grid (width-12 MLPs, U = 0..8, D = 1,3,5,7,9, encoder depth
1..10, n = 65,536 split 70/15/15, 2 seeds). W/summary.json holds the three trends per
heterogeneity depth D; W/plots/trends_per_d.png plots them. Finished (D, L) cells are kept in
W/cells/: rerunning the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import sys

from launch.common import (UsageError, fail, force_cpu_devices, load_config_from_args,
                           parse_args, run_main)


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "workdir": None, "devices": None})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required")
    force_cpu_devices(argv)
    config = load_config_from_args(flags["config"], overrides)
  except (UsageError, FileNotFoundError) as error:
    return fail(str(error))
  from jaxdisent.studies.alignment_emergence import run_study  # pylint: disable=g-import-not-at-top
  log = lambda *a: print(*a, file=sys.stderr, flush=True)
  try:
    result = run_study(config, flags["workdir"], log=log)
  except ValueError as error:
    return fail(str(error))
  log(json.dumps(result["summary"], indent=2))
  log(f"[alignment_study] wrote {flags['workdir']}/results.csv, results.json and plots/")
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
