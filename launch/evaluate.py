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

import os
import sys

from launch.common import (UsageError, apply_overrides, fail, force_cpu_devices, parse_args,
                           parse_int, run_main)

_LEGACY = {"num_train": "evals.disentanglement.num_train",
           "num_eval": "evals.disentanglement.num_eval",
           "dci_importance": "evals.disentanglement.dci_importance"}


def evaluate_workdir(workdir: str, *, step: int | None = None, only=None, overrides=(),
                     log=None) -> dict:
  """Run the workdir's evaluators on its latest (or given) checkpoint; returns {name: scalars}."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jaxdisent.evals import flat_scalars, run_evaluations  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import read_workdir_config, validate_domains  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.logging import MetricsWriter  # pylint: disable=g-import-not-at-top
  from jaxdisent.train import lock  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.restore import restore_latest  # pylint: disable=g-import-not-at-top
  log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
  config = read_workdir_config(workdir)
  if "evals" not in config:  # a workdir written before the evaluation contract
    with config.unlocked():
      config.evals = ml_collections.ConfigDict(
          {name: {} for name in make_method(config).evaluators})
  missing = [name for name in (only or []) if name not in config.evals]
  if missing and set(missing) <= set(make_method(config).evaluators):
    # evaluators added to the method after this workdir was written: their documented defaults
    # (which --config.evals.<name>.KEY=VALUE can then set)
    from jaxdisent.evals.base import DEFAULT_SETTINGS  # pylint: disable=g-import-not-at-top
    with config.unlocked():
      for name in missing:
        config.evals[name] = ml_collections.ConfigDict(
            DEFAULT_SETTINGS.get(name, {"run_in_training": False}))
  bad = [key for key, _ in overrides if not (key.startswith("evals.") or key == "seed")]
  if bad:
    raise UsageError(f"--config.{bad[0]} cannot change at evaluation: the model and data are "
                     "those of the checkpoint. Only --config.evals.* and --config.seed may be set "
                     "here (train a new run to change the model)")
  config = apply_overrides(config, list(overrides))
  validate_domains(config)
  config, method, state, step = restore_latest(workdir, step, config=config)
  # metrics.jsonl has one writer: the holder of the workdir's lock. While a run trains there,
  # the evaluation still writes its own record (eval/step_<N>.json) but appends nothing.
  owner = lock.try_acquire(workdir, "evaluating")
  try:
    log(f"[jaxdisent] evaluating {workdir} at step {step}")
    results = run_evaluations(method, state, step, workdir, config, training=False, only=only,
                              log=log)
    if not results:
      raise ValueError(f"{workdir}'s config declares no evaluators (config.evals is empty)")
    if owner:
      MetricsWriter(os.path.join(workdir, "metrics.jsonl")).write(step, flat_scalars(results))
    else:
      log(f"[jaxdisent] note: another process is writing {workdir} (see its .lock); the "
          "scalars are in the record below, not appended to metrics.jsonl")
  finally:
    if owner:
      lock.release(workdir)
  log(f"[jaxdisent] wrote {os.path.join(workdir, 'eval', f'step_{step}.json')}")
  return results


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
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  try:
    evaluate_workdir(flags["workdir"], step=step, only=only, overrides=overrides)
  except (FileNotFoundError, ValueError, KeyError, CheckpointError) as error:
    return fail(str(error))
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
