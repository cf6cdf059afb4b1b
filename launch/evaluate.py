"""Evaluate a run with its config's evaluators -> WORKDIR/eval/step_<N>.json + eval/ scalars.

  python -m launch.evaluate --workdir=runs/beta_vae [--step=N] [--only=disentanglement]
      [--devices=N] [--config.evals.disentanglement.num_train=1000 ...]

Runs every evaluator of ``config.evals`` (also those marked run_in_training=False), the same
functions training runs at ``train.eval_every`` and at its end; appends ``eval/<name>/<key>`` to
metrics.jsonl. Only ``evals.*`` and ``seed`` may be overridden here: the model is the checkpoint's.
Old flags --num_train / --num_eval / --dci_importance still work (they set
evals.disentanglement.*).
"""

from __future__ import annotations

import sys

from launch.common import UsageError, fail, force_cpu_devices, parse_args, parse_int, run_main

_LEGACY = {"num_train": "evals.disentanglement.num_train",
           "num_eval": "evals.disentanglement.num_eval",
           "dci_importance": "evals.disentanglement.dci_importance"}


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"workdir": None, "step": None, "only": None,
                                         "devices": None, "seed": None, **{k: None for k in _LEGACY}})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required (a directory written by launch.train)")
    force_cpu_devices(argv)
    step = None if flags["step"] is None else parse_int("step", flags["step"], minimum=0)
    only = [name for name in flags["only"].split(",") if name] if flags["only"] else None
    for flag, key in _LEGACY.items():
      if flags[flag] is not None:
        if flag != "dci_importance":
          parse_int(flag, flags[flag], minimum=2)
        elif flags[flag] not in ("gbt", "random_forest"):
          raise UsageError(f"--dci_importance={flags[flag]}: use gbt or random_forest")
        overrides.append((key, flags[flag]))
    if flags["seed"] is not None:
      overrides.append(("seed", str(parse_int("seed", flags["seed"], minimum=0))))
  except UsageError as error:
    return fail(str(error))
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxdisent.runs import evaluate_workdir  # pylint: disable=g-import-not-at-top  # after --devices
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  try:
    evaluate_workdir(flags["workdir"], step=step, only=only, overrides=overrides)
  except (FileNotFoundError, ValueError, KeyError, CheckpointError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
