"""Train any jaxdisent method from a config file; re-running on the same workdir resumes.

  python -m launch.train --config=configs/beta_vae_dsprites.py --workdir=runs/beta_vae \
      [--config.train.num_steps=1000 ...] [--devices=N]
"""

from __future__ import annotations

import os
import sys


def _early_device_flag(argv):
  """--devices=N forces N host (CPU) devices; it must be set before JAX starts."""
  for arg in argv:
    if arg.startswith("--devices="):
      count = int(arg.split("=", 1)[1])
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                 f" --xla_force_host_platform_device_count={count}")


_early_device_flag(sys.argv)

from absl import app, flags  # noqa: E402  pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, plots).")
flags.DEFINE_integer("devices", None, "Force N CPU devices (testing sharding on one machine).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
  from jaxdisent.train.loop import fit, NonFiniteLossError  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  if config.train.get("distributed", False):
    jax.distributed.initialize()
  print(f"[jaxdisent] {config.method} on {jax.device_count()} device(s) "
        f"({jax.devices()[0].platform}), {jax.process_count()} process(es) -> {_WORKDIR.value}",
        file=sys.stderr)
  try:
    result = fit(config, _WORKDIR.value)
  except (NonFiniteLossError, ValueError, FileNotFoundError) as error:
    print(f"[jaxdisent] error: {error}", file=sys.stderr)
    return 1
  state = "preempted" if result.preempted else "finished"
  print(f"[jaxdisent] {state} at step {result.step} in {result.seconds:.0f}s", file=sys.stderr)
  if not result.preempted and config.get("eval", {}).get("run_at_end", False):
    from launch.evaluate import evaluate_workdir  # pylint: disable=g-import-not-at-top
    evaluate_workdir(_WORKDIR.value)
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
