"""Load a finished (or running) workdir's latest state for evaluation."""

from __future__ import annotations

import os

import jax

from jaxdisent.train.checkpoint import Checkpointer
from jaxdisent.train.config import read_workdir_config
from jaxdisent.train.state import TrainState


def restore_latest(workdir: str, step: int | None = None):
  """(config, method, plain TrainState, step) of the latest (or given) checkpoint in `workdir`."""
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  config = read_workdir_config(workdir)
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoints in {workdir}: train first (python -m launch.train "
                            f"--config=... --workdir={workdir})")
  checkpointer = Checkpointer(directory)
  try:
    available = checkpointer.all_steps()
    if not available:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint; train first")
    if step is None:
      step = max(available)
    elif step not in available:
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; have {available}")
    method = make_method(config)
    params, model_state = method.init(jax.random.key(config.seed))
    template = TrainState.create(params, method.optimizer().init(params), model_state)
    # An explicit target sharding: without one Orbax reuses the saved one, which names devices of
    # the run that wrote it (e.g. 2 processes x 2 devices) and fails with "Topology mismatch".
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            template)
    state = checkpointer.restore(step, abstract)
  finally:
    checkpointer.close()
  return config, method, state, step
