"""Multi-process (multi-host) start-up: which process am I, and who writes files.

``initialize(train_config)`` calls ``jax.distributed.initialize`` with whatever the user pinned
and lets JAX detect the rest. Each setting is taken from the config key if the config has it,
else from an environment variable, else left to JAX's auto-detection (SLURM, Open MPI, Cloud TPU
and Kubernetes set everything themselves):

==================  ==============================  =====================================
setting             config key                      environment variable
==================  ==============================  =====================================
coordinator         ``train.coordinator_address``   ``JAX_COORDINATOR_ADDRESS`` (read by JAX)
number of processes ``train.num_processes``         ``JAXDISENT_NUM_PROCESSES``
this process's id   ``train.process_id``            ``JAXDISENT_PROCESS_ID``
==================  ==============================  =====================================

``launch/multiprocess.py`` sets the environment variables for N processes on one machine.
On CPU the processes exchange collectives through gloo (``jax_cpu_collectives_implementation``,
JAX's default); every process must see the same workdir (a shared file system on several hosts),
because Orbax writes one checkpoint to which every process contributes.
"""

from __future__ import annotations

import os

import jax

ENV_NUM_PROCESSES = "JAXDISENT_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXDISENT_PROCESS_ID"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"


def _setting(train_config, key: str, env: str, cast):
  value = train_config.get(key, None) if train_config is not None else None
  if value in (None, "", -1):
    value = os.environ.get(env, "") or None
  if value is None:
    return None
  try:
    return cast(value)
  except ValueError as error:
    raise ValueError(f"train.{key} / ${env} = {value!r} is not a valid {cast.__name__}") from error


def initialize(train_config=None) -> None:
  """``jax.distributed.initialize`` with the pinned settings (see the module docstring)."""
  coordinator = _setting(train_config, "coordinator_address", ENV_COORDINATOR, str)
  num_processes = _setting(train_config, "num_processes", ENV_NUM_PROCESSES, int)
  process_id = _setting(train_config, "process_id", ENV_PROCESS_ID, int)
  if (num_processes is None) != (process_id is None):
    raise ValueError(
        "set both the number of processes and this process's id (train.num_processes and "
        f"train.process_id, or ${ENV_NUM_PROCESSES} and ${ENV_PROCESS_ID}), or neither to let "
        "JAX detect them (SLURM, Open MPI, Cloud TPU)")
  if num_processes is not None and not 0 <= process_id < num_processes:
    raise ValueError(f"process id {process_id} is outside [0, {num_processes})")
  if num_processes is not None and coordinator is None:
    raise ValueError(f"the processes need a coordinator: set ${ENV_COORDINATOR}=HOST:PORT (the "
                     "address of process 0) or train.coordinator_address")
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                             process_id=process_id)


def is_primary() -> bool:
  """True in the one process that writes config.json, metrics.jsonl, plots and evaluations."""
  return jax.process_index() == 0
