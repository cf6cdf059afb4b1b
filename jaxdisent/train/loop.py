"""The one training loop: resumes from the workdir, checkpoints, logs, stops cleanly.

It knows nothing about any method: a method supplies its data, init, loss and end-of-run hook.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time

import jax
import numpy as np
import tqdm

from jaxdisent.train import distributed
from jaxdisent.train.checkpoint import Checkpointer
from jaxdisent.train.config import check_and_write_workdir_config
from jaxdisent.train.logging import MetricsWriter
from jaxdisent.train.parallel import DataParallel
from jaxdisent.train.state import TrainState


class NonFiniteLossError(FloatingPointError):
  """The loss or gradient became NaN/inf; the message names the step and the last good checkpoint."""


@dataclasses.dataclass
class FitResult:
  state: TrainState            # plain (unreplicated) final state
  step: int                    # last completed step
  preempted: bool              # stopped by SIGTERM before num_steps
  resumed_from: int | None     # checkpoint step the run started from, if any
  seconds: float
  method: object


class _SigtermFlag:
  """Turns SIGTERM into a flag the loop checks, so the state is saved before exiting.

  Several processes must stop at the same step (the save is collective), so there the handler is
  JAX's preemption service (on whenever jax.distributed is initialised): a SIGTERM to any process
  makes every process's ``should_stop`` true at one agreed step.
  """

  def __init__(self):
    self.raised = False
    self._previous = None
    self._multiprocess = jax.process_count() > 1

  def should_stop(self, step: int) -> bool:
    if self._multiprocess:  # must be called at every step by every process
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return multihost_utils.reached_preemption_sync_point(step)
    return self.raised

  def __enter__(self):
    if self._multiprocess:  # keep JAX's SIGTERM handler (a Python handler would replace it)
      return self
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: preemption handling is off
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def fit(config, workdir: str, *, devices=None, step_callback=None, quiet: bool = False) -> FitResult:
  """Train `config` in `workdir`, resuming from its latest checkpoint if there is one."""
  from jaxdisent.methods import make_method  # methods import the engine; avoid a cycle

  start_time = time.time()
  os.makedirs(workdir, exist_ok=True)
  # Multi-process: every process checks config.json, process 0 alone writes files and logs.
  primary = distributed.is_primary()
  changed = check_and_write_workdir_config(config, workdir, write=primary)
  quiet = quiet or not primary
  log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
  if changed:
    log(f"[jaxdisent] resuming with changed settings: {', '.join(changed)}")

  train = config.train
  method = make_method(config)
  parallel = DataParallel(method, method.optimizer(), config.seed, train.get("parallel", "shard_map"),
                          devices=devices)
  parallel.check_batch_size(train.batch_size)
  num_steps = int(train.num_steps)

  params, model_state = method.init(jax.random.key(config.seed))
  state = TrainState.create(params, method.optimizer().init(params), model_state)

  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), train.get("keep_checkpoints", 3))
  writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"), enabled=primary)
  resumed_from = checkpointer.latest_step()
  if resumed_from is not None:
    state = checkpointer.restore(resumed_from, parallel.abstract_state(state))
    log(f"[jaxdisent] resumed {workdir} from step {resumed_from}")
    writer.truncate_after(resumed_from)
  else:
    writer.truncate_after(-1)
  step = int(jax.device_get(state.step))
  state = parallel.place_state(state)

  last_good_checkpoint = resumed_from

  def check_finite(placed_state):
    bad = int(jax.device_get(parallel.host_state(placed_state).nonfinite_step))
    if bad >= 0:
      where = (f"the last good checkpoint (step {last_good_checkpoint}) is kept in "
               f"{checkpointer.directory}" if last_good_checkpoint is not None else
               "no checkpoint had been saved yet")
      raise NonFiniteLossError(
          f"loss or gradient became NaN/inf at step {bad}; training stopped and {where}. "
          "Lower the learning rate, check the data for NaNs, or enable gradient clipping")

  def save(at_step, placed_state):
    nonlocal last_good_checkpoint
    check_finite(placed_state)
    checkpointer.save(at_step, parallel.host_state(placed_state))
    last_good_checkpoint = at_step

  preempted = False
  bar = tqdm.tqdm(total=num_steps, initial=step, disable=quiet, desc=method.name, unit="step",
                  dynamic_ncols=True, mininterval=1.0, file=sys.stderr)
  try:
    with _SigtermFlag() as sigterm:
      while step < num_steps:
        local_batch = parallel.local_batch(method.local_batch, config.seed, step, train.batch_size)
        state, metrics = parallel.step(state, parallel.place_batch(local_batch))
        step += 1
        bar.update(1)
        if step % train.log_every == 0 or step == num_steps:
          check_finite(state)
          host_metrics = jax.device_get(metrics)
          writer.write(step, host_metrics)
          bar.set_postfix(loss=f"{float(host_metrics['loss']):.4g}", refresh=False)
        if step % train.checkpoint_every == 0 and step < num_steps:
          save(step, state)
        if step_callback is not None:
          step_callback(step)
        if sigterm.should_stop(step) and step < num_steps:
          save(step, state)
          preempted = True
          log(f"\n[jaxdisent] SIGTERM: saved step {step} to {checkpointer.directory}; "
              "re-run the same command to resume")
          break
      if not preempted:
        save(step, state)
      checkpointer.wait()
  finally:
    bar.close()
    checkpointer.close()

  final = jax.device_get(parallel.host_state(state))
  result = FitResult(final, step, preempted, resumed_from, time.time() - start_time, method)
  if not preempted and primary:  # plots and end-of-run evaluation: written once
    method.finalize(final, workdir, log)
  return result
