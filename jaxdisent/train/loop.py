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

from jaxdisent.programs import release_compiled_programs, release_fraction
from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
from jaxdisent.train.config import check_and_write_workdir_config, validate_domains
from jaxdisent.train.lock import workdir_lock
from jaxdisent.train.logging import MetricsWriter
from jaxdisent.train import precision
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


def fit(config, workdir: str, *, method=None, devices=None, step_callback=None,
        quiet: bool = False) -> FitResult:
  """Train `config` in `workdir` with ``method``, resuming from its latest checkpoint if any.

  ``method`` is required: ``jaxdisent.methods.make_method(config)``, or a wrapped or subclassed
  method built in your own code that trains the same state. The engine imports nothing from
  ``jaxdisent.methods``; ``jaxdisent.runs.fit(config, workdir)`` builds the method for you.
  """

  start_time = time.time()
  if method is None:
    raise ValueError("jaxdisent.train.fit needs the method: fit(config, workdir, "
                     "method=make_method(config)) with jaxdisent.methods.make_method, or "
                     "jaxdisent.runs.fit(config, workdir), which builds it from config.method")
  validate_train_config(config)
  # Multi-process: process 0 alone writes files and logs (every process checks config.json), and
  # holds the workdir's lock: a second writer is refused before anything is written.
  is_writer = jax.process_index() == 0
  with workdir_lock(workdir, "training", enabled=is_writer):
    result = _fit(config, workdir, devices=devices, step_callback=step_callback, quiet=quiet,
                  method=method, is_writer=is_writer, start_time=start_time)
  release_compiled_programs()  # many fits in one process must not exhaust vm.max_map_count
  return result


def _fit(config, workdir, *, devices, step_callback, quiet, method, is_writer, start_time):
  os.makedirs(workdir, exist_ok=True)
  quiet = quiet or not is_writer
  log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
  checkpoint_dir = os.path.join(workdir, "checkpoints")

  train = config.train
  # The caller built (and so validated) the method before config.json is written: a bad model.*
  # value must not leave a workdir that refuses the corrected command.
  changed = check_and_write_workdir_config(config, workdir, has_checkpoints=_has_steps(checkpoint_dir),
                                           write=is_writer)
  if changed:
    log(f"[jaxdisent] resuming with changed settings: {', '.join(changed)}")
  parallel = DataParallel(method, method.optimizer(), config.seed, train.get("parallel", "shard_map"),
                          devices=devices)
  parallel.check_batch_size(train.batch_size)
  num_steps = int(train.num_steps)

  params, model_state = method.init(jax.random.key(config.seed))
  state = TrainState.create(params, method.optimizer().init(params), model_state)

  checkpointer = Checkpointer(checkpoint_dir, train.get("keep_checkpoints", 3))
  for name in checkpointer.removed_partial:
    log(f"[jaxdisent] removed {os.path.join(checkpoint_dir, name)}: a save that never completed")
  writer = MetricsWriter(os.path.join(workdir, "metrics.jsonl"), enabled=is_writer)
  state, resumed_from = _restore_newest_good(checkpointer, parallel.abstract_state(state), state,
                                             workdir, log)
  if resumed_from is not None:
    log(f"[jaxdisent] resumed {workdir} from step {resumed_from} (checksums verified)")
  writer.truncate_after(-1 if resumed_from is None else resumed_from, log=log)
  step = int(jax.device_get(state.step))
  state = parallel.place_state(state)

  last_good_checkpoint = resumed_from

  def check_finite(placed_state):
    bad = int(jax.device_get(parallel.host_state(placed_state).nonfinite_step))
    if bad >= 0:
      where = (f"the last good checkpoint (step {last_good_checkpoint}, verified) is kept in "
               f"{checkpointer.directory}" if last_good_checkpoint is not None else
               "no checkpoint had been saved yet")
      lr = method.learning_rate() if hasattr(method, "learning_rate") else None
      hint = ("Lower optimizer.learning_rate, check the data for NaN/inf, or set "
              "optimizer.grad_clip_norm")
      raise NonFiniteLossError(
          f"loss or gradient became NaN/inf at step {bad} (learning rate {lr}); training "
          f"stopped and {where}. {hint}")

  def save(at_step, placed_state):
    nonlocal last_good_checkpoint
    check_finite(placed_state)
    checkpointer.save(at_step, parallel.host_state(placed_state))
    last_good_checkpoint = at_step

  eval_every = int(train.get("eval_every", 0) or 0)

  def evaluate_now(at_step, placed_state):
    from jaxdisent.evals import flat_scalars, run_evaluations  # pylint: disable=g-import-not-at-top
    host = jax.device_get(parallel.host_state(placed_state))
    results = run_evaluations(method, host, at_step, workdir, config, training=True, log=log,
                              is_writer=is_writer)
    if results:
      writer.write(at_step, flat_scalars(results))

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
        if eval_every and step % eval_every == 0 and step < num_steps:
          evaluate_now(step, state)
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
  if not preempted:
    from jaxdisent.evals import read_record  # pylint: disable=g-import-not-at-top
    already = resumed_from == step and read_record(workdir, step) is not None  # a finished run
    # The final checkpoint is saved: a SIGTERM now must not lose the evaluation with status 143.
    # The running evaluation finishes (its record is written), the plots are skipped, exit 0.
    with _SigtermFlag() as sigterm:
      if train.get("eval_at_end", True) and not already:
        evaluate_now(step, state)
      if sigterm.raised:
        log(f"[jaxdisent] SIGTERM during the end-of-run evaluation: finished it, skipped the "
            f"plots; step {step} is saved")
      elif is_writer and train.get("plots_at_end", True):
        method.finalize(final, workdir, log)
  return result


def _has_steps(directory: str) -> bool:
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def _restore_newest_good(checkpointer, abstract_state, fresh_state, workdir, log):
  """Restore the newest verified step; quarantine corrupt ones and fall back, saying so."""
  while True:
    step = checkpointer.latest_step()
    if step is None:
      return fresh_state, None
    try:
      return checkpointer.restore(step, abstract_state), step
    except CheckpointError as error:
      if error.kind != "corrupt":
        raise
      earlier = [s for s in checkpointer.all_steps() if s < step]
      target = checkpointer.quarantine(step, os.path.join(workdir, "corrupt_checkpoints"))
      fallback = f"falling back to step {max(earlier)}" if earlier else "no earlier checkpoint: starting from step 0"
      log(f"[jaxdisent] WARNING: {error}. Moved it to {target}; {fallback}")


def validate_train_config(config) -> None:
  """Refuse train.* values that would crash later or silently lose work."""
  release_fraction()   # JAXDISENT_RELEASE_PROGRAMS_AT, read when the run ends: checked now
  train = config.get("train", None)
  if train is None:
    raise ValueError("the config has no 'train' section; start from a file in configs/")
  def positive(key, minimum=1):
    value = train.get(key, None)
    if value is None:
      return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
      raise ValueError(f"train.{key}={value!r} must be an integer >= {minimum}")
  if train.get("keep_checkpoints", 1) is not None and train.get("keep_checkpoints", 1) < 1:
    raise ValueError(f"train.keep_checkpoints={train.keep_checkpoints} would keep no checkpoint "
                     "and lose the trained model; use 1 or more")
  for key in ("num_steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
    positive(key)
  positive("eval_every", minimum=0)
  if train.get("parallel", "shard_map") not in ("shard_map", "pmap"):
    raise ValueError(f"train.parallel must be 'shard_map' or 'pmap', got {train.parallel!r}")
  precision.compute_dtype(config)   # a clear error for an unknown train.compute_dtype
  optimizer = config.get("optimizer", None)
  if optimizer is not None:
    lr = optimizer.get("learning_rate", None)
    if lr is not None and (not np.isfinite(lr) or lr < 0):
      raise ValueError(f"optimizer.learning_rate={lr} must be a finite number >= 0 (0 means the "
                       "method's default where it has one)")
  validate_domains(config)
