"""Run the alignment-emergence study: results.csv/json, summary and plots in the workdir.

  python -m launch.alignment_study --config=configs/alignment_emergence.py --workdir=runs/emergence \
      [--config.grid.seeds=3 --config.grid.num_unique=[0,4,8] ...] [--devices=N]
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
  from jaxdisent.methods.alignment_study import run_study  # pylint: disable=g-import-not-at-top
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
