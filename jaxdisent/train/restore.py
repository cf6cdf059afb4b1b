"""Load a finished (or running) workdir's state for evaluation, on whatever devices this process has."""

from __future__ import annotations

import os

import jax

from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
from jaxdisent.train.config import read_workdir_config
from jaxdisent.train.state import TrainState


def restore_latest(workdir: str, step: int | None = None, devices=None, config=None):
  """(config, method, plain TrainState, step) of the latest (or given) checkpoint in `workdir`.

  The state lands on this process's first device (or ``devices[0]``) whatever device count or
  parallel mode wrote it, and is verified against the checksums recorded at save time.
  ``config`` (default: the workdir's config.json) must describe the same model.
  """
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  config = read_workdir_config(workdir) if config is None else config
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoints in {workdir}: train first (python -m launch.train "
                            f"--config=... --workdir={workdir})")
  device = (jax.local_devices() if devices is None else list(devices))[0]
  checkpointer = Checkpointer(directory, max_to_keep=None, is_writer=False)
  try:
    available = checkpointer.all_steps()
    if not available:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint; train first")
    if step is None:
      step = max(available)
    elif step not in available:
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; have {available}")
    method = make_method(config)
    # (a concrete init, not jax.eval_shape: some methods' init inspects data, e.g. the SAE's b_dec)
    abstract = _template(method, config.seed)
    sharding = jax.sharding.SingleDeviceSharding(device)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                            abstract)
    try:
      state = checkpointer.restore(step, abstract)
    except CheckpointError as error:
      if error.kind == "corrupt":
        earlier = [s for s in available if s < step]
        hint = (f"use --step={max(earlier)} (an earlier checkpoint)" if earlier else
                "no earlier checkpoint exists")
        raise CheckpointError(f"{error}. Re-running launch.train on {workdir} moves the bad step "
                              f"aside and retrains it from the previous good one; or {hint}",
                              kind="corrupt", step=step) from error
      raise
  finally:
    checkpointer.close()
  return config, method, state, step


def _template(method, seed):
  params, model_state = method.init(jax.random.key(seed))
  return TrainState.create(params, method.optimizer().init(params), model_state)
