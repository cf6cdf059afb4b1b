"""Evaluate the latest checkpoint of a run: all disentanglement metrics -> DIR/eval.json + plots.

  python -m launch.evaluate --workdir=runs/beta_vae [--num_train=10000 --num_eval=5000]
      [--dci_importance=gbt|random_forest] [--seed=0] [--step=N]

Defaults are disentanglement_lib's sample sizes; lower them for a quick look.
"""

from __future__ import annotations

import json
import os
import sys

from launch.common import UsageError, fail, parse_args


def evaluate_workdir(workdir: str, *, num_train: int = 10_000, num_eval: int = 5_000,
                     dci_importance: str = "gbt", seed: int = 0, step: int | None = None) -> dict:
  from jaxdisent.train.restore import restore_latest  # pylint: disable=g-import-not-at-top
  from jaxdisent.data import GroundTruthData  # pylint: disable=g-import-not-at-top
  config, method, state, step = restore_latest(workdir, step)
  if not hasattr(method, "evaluate"):
    raise ValueError(f"{workdir} is a {config.method!r} run; disentanglement evaluation needs a "
                     "beta_vae-family run")
  if not isinstance(getattr(method, "data", None), GroundTruthData):
    raise ValueError(f"{workdir} was trained on data without ground-truth factors; the "
                     "disentanglement metrics need a ground-truth dataset (dsprites, shapes3d)")
  log = lambda *a: print(*a, file=sys.stderr, flush=True)
  log(f"[jaxdisent] evaluating {workdir} at step {step}")
  results = method.evaluate(state, workdir, num_train=num_train, num_eval=num_eval,
                            dci_importance=dci_importance, seed=seed, log=log)
  results = {"step": int(step), **results}
  path = os.path.join(workdir, "eval.json")
  with open(path, "w") as f:
    json.dump(results, f, indent=2)
  keys = ["mig", "factor_vae_score", "beta_vae_score", "dci_disentanglement", "dci_completeness",
          "dci_informativeness", "sap", "modularity", "explicitness", "irs"]
  log("[jaxdisent] " + "  ".join(f"{k}={results[k]:.3f}" for k in keys))
  log(f"[jaxdisent] wrote {path} and {os.path.join(workdir, 'plots')}/")
  return results


def main(argv) -> int:
  try:
    _, flags = parse_args(argv, {"workdir": None, "num_train": "10000", "num_eval": "5000",
                                 "dci_importance": "gbt", "seed": "0", "step": None})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required")
    if flags["dci_importance"] not in ("gbt", "random_forest"):
      raise UsageError("--dci_importance must be gbt or random_forest")
    kwargs = dict(num_train=int(flags["num_train"]), num_eval=int(flags["num_eval"]),
                  dci_importance=flags["dci_importance"], seed=int(flags["seed"]),
                  step=None if flags["step"] is None else int(flags["step"]))
  except (UsageError, ValueError) as error:
    return fail(str(error))
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  try:
    evaluate_workdir(flags["workdir"], **kwargs)
  except (FileNotFoundError, ValueError, CheckpointError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
