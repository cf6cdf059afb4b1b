"""Train any jaxdisent method from a config file; re-running on the same workdir resumes.

  python -m launch.train --config=configs/beta_vae_dsprites.py --workdir=runs/beta_vae \
      [--config.train.num_steps=1000 ...] [--devices=N]

--devices=N forces N CPU devices (to try sharding on one machine). With
--config.train.distributed=true the process first calls jax.distributed.initialize() (settings:
jaxdisent/train/distributed.py; N local processes: launch/multiprocess.py).
"""

from __future__ import annotations

import sys

from launch.common import (UsageError, fail, force_cpu_devices, load_config_from_args,
                           parse_args, run_main)


def main(argv) -> int:
  try:
    overrides, flags = parse_args(argv, {"config": None, "workdir": None, "devices": None})
    if not flags["workdir"]:
      raise UsageError("--workdir=DIR is required (checkpoints, metrics.jsonl and plots go there)")
    force_cpu_devices(argv)
    config = load_config_from_args(flags["config"], overrides)
  except (UsageError, FileNotFoundError) as error:
    return fail(str(error))

  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.loop import NonFiniteLossError, fit  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO

  if config.train.get("distributed", False):
    from jaxdisent.train import distributed  # pylint: disable=g-import-not-at-top
    try:
      distributed.initialize(config.train)
    except ValueError as error:
      return fail(str(error))
  workdir = flags["workdir"]
  try:  # validate the whole config before any work (and before anything is written to workdir)
    from jaxdisent.train.loop import validate_train_config  # pylint: disable=g-import-not-at-top
    from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
    from jaxdisent.evals import selected  # pylint: disable=g-import-not-at-top
    validate_train_config(config)
    method = make_method(config)
    selected(config, training=False)
  except (ValueError, KeyError, TypeError, FileNotFoundError) as error:
    return fail(f"invalid config: {error}")
  print(f"[jaxdisent] {config.method} on {jax.device_count()} device(s) "
        f"({jax.devices()[0].platform}), {jax.process_count()} process(es) -> {workdir}",
        file=sys.stderr)
  try:
    result = fit(config, workdir, method=method)
  except (NonFiniteLossError, CheckpointError, ValueError, FileNotFoundError, KeyError) as error:
    return fail(str(error))
  status = "preempted" if result.preempted else "finished"
  print(f"[jaxdisent] {status} at step {result.step} in {result.seconds:.0f}s -> {workdir}",
        file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(run_main(main, doc=__doc__))
