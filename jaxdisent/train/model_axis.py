"""Many runs in one compiled step: cells that differ only in ``seed`` train as one program.

The per-device step of :mod:`jaxdisent.train.parallel` runs over a leading *model* axis of the
TrainState (params, opt_state, model_state, step, nonfinite_step) and of the batch, with the seed
passed as a traced array, under ``jit(shard_map(...))`` on the same ('data',) mesh as a single run
(the batch is sharded along its second axis, the examples). ``how`` picks the form over the cells:

* ``vmap``: ``jax.vmap`` of the per-device step (the issue's formulation; for accelerators).
* ``map``: ``lax.map`` over the cells inside the one program, the step as the loop body.
* ``auto`` (default): ``map`` on CPU, ``vmap`` elsewhere. On XLA:CPU ``vmap`` of the SAE step
  measured several times slower than the cells one after another (a ``lax.cond`` with a per-cell
  predicate runs both branches, batched top-k / scatter are slow), while ``map`` keeps conds as
  conds and gives each cell the numbers it gets alone (bitwise for the SAE).

Every cell is still its own run:

* its own WORKDIR/<cell>/config.json, metrics.jsonl and checkpoints, written through the existing
  :class:`~jaxdisent.train.checkpoint.Checkpointer` with the cell's slice of the state, so
  ``launch.evaluate``, ``restore_latest`` and a plain ``launch.train`` read it as a single run;
* its own batches (``method.local_batch(cell_seed, step, ...)``, the same call a single run makes),
  its own loss randomness (``step_key(cell_seed, step)``) and its own init;
* its own end-of-run evaluation and plots.

Resume: a restart resumes every cell from the newest checkpoint step that all of them have
(a cell that was further along recomputes the same steps; its existing checkpoints are kept).
Every cell's workdir lock is held while the group trains.

What may differ between the cells of a group: ``seed`` only. Learning rate, loss coefficients and
``model.k`` are Python constants of the compiled step (the optimiser schedule, the loss, static
top-k sizes), so cells that differ in them train in separate groups (``group_key``).

Numbers: ``vmap`` runs the same operations per cell, but XLA compiles a batched program (matmuls
get a batch dimension), so float32 results agree with the single run to rounding; ``map`` is
bitwise for the SAE and float32 rounding for the beta-VAE's convolutions. tests/test_model_axis.py
states what is compared how (float64 with a derived bound where not bitwise).

Cost: one compile and one step call for the whole group instead of one per cell. On a CPU that
saves the per-cell fixed cost (compiles, dispatches), so it pays for short runs of small models;
batch rendering, evaluation and plots still run per cell. On an accelerator ``vmap`` fills the
device with N small models that one would leave idle (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdisent.programs import release_compiled_programs
from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
from jaxdisent.train.config import check_and_write_workdir_config, config_to_dict
from jaxdisent.train.lock import workdir_lock
from jaxdisent.train.logging import MetricsWriter
from jaxdisent.train.parallel import AXIS, DataParallel, make_mesh, per_device_step
from jaxdisent.train.loop import (FitResult, NonFiniteLossError, _SigtermFlag, _has_steps,
                                  validate_train_config)
from jaxdisent.train.state import TrainState

MAX_SEED = 2 ** 31 - 1  # the traced seed is int32; step_key(int) agrees with it below 2^31
HOWS = ("auto", "vmap", "map")


def resolve_how(how: str, devices) -> str:
  """'auto' -> 'map' on CPU (measured faster there, see the module doc), 'vmap' on accelerators."""
  if how != "auto":
    return how
  return "map" if devices[0].platform == "cpu" else "vmap"


def group_key(config) -> str:
  """Cells with equal keys can share one vmapped program: the config without ``seed``."""
  flat = config_to_dict(config)
  flat.pop("seed", None)
  return json.dumps(flat, sort_keys=True, default=str)


def stack(trees):
  """A list of equal-structure pytrees -> one pytree with a leading model axis (numpy)."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def unstack(tree, index: int):
  """Cell ``index``'s slice of a stacked pytree (numpy, 0-d arrays kept as arrays)."""
  return jax.tree.map(lambda x: np.asarray(np.asarray(x)[index]), tree)


class ModelAxis:
  """Places stacked states / batches on the mesh and runs the vmapped step.

  ``seeds``: one per cell; the loss randomness of cell i is keyed by seeds[i] as in a single run.
  The batch passed to :meth:`step` has shape (num_cells, global_batch, ...), sharded over 'data'
  along axis 1; the state is replicated (each device holds every cell's copy).
  """

  def __init__(self, method, optimizer, seeds, devices=None, how: str = "auto"):
    if how not in HOWS:
      raise ValueError(f"the model axis runs as one of {HOWS}, got {how!r}")
    seeds = [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
      raise ValueError(f"seed(s) {bad} are outside [0, {MAX_SEED}], which a vmapped group needs "
                       "(the seed is traced as int32); use smaller seeds or train those cells "
                       "without --vmap_cells")
    self.num_models = len(seeds)
    self.devices = list(jax.devices() if devices is None else devices)
    self.num_devices = len(self.devices)
    self.how = resolve_how(how, self.devices)
    self.mesh = make_mesh(self.devices)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(None, AXIS))

    def one(seed, state, batch):
      return per_device_step(method, optimizer, seed, state, batch)

    if self.how == "vmap":
      group_step = jax.vmap(one)
    else:   # one program that loops over the cells: conds stay conds, no batched rewrite
      group_step = lambda seeds, state, batch: lax.map(lambda args: one(*args),
                                                       (seeds, state, batch))
    self._step = jax.jit(
        jax.shard_map(group_step, mesh=self.mesh, in_specs=(P(), P(), P(None, AXIS)),
                      out_specs=(P(), P()), check_vma=False),
        donate_argnums=1)
    self.seeds = jax.device_put(np.asarray(seeds, np.int32), self.replicated)

  def place_state(self, stacked_state):
    return jax.device_put(stacked_state, self.replicated)

  def place_batch(self, per_cell_batches):
    """Stack the cells' global batches (leading axis = cells) and shard the examples axis."""
    return jax.tree.map(lambda *xs: jax.device_put(jnp.stack(xs), self.batch_sharding),
                        *per_cell_batches)

  def step(self, state, batch):
    return self._step(self.seeds, state, batch)


def fit_group(cells, *, devices=None, quiet: bool = False, log=None, methods=None,
              step_callback=None, how: str = "auto"):
  """Train cells [(config, workdir), ...] that differ only in ``seed`` as one vmapped program.

  Returns one :class:`jaxdisent.train.loop.FitResult` per cell (in order); each result's ``state``
  is that cell's plain state, equal to what ``fit(config, workdir)`` would have trained to
  float32 rounding (bitwise where XLA computes the batched program in the same order).
  ``methods`` (one per cell, required, as ``fit(method=)``; ``jaxdisent.runs.fit_group`` builds
  them from the configs);
  ``step_callback(step)`` is called after every step, as in ``fit``. ``how``: 'vmap' (the
  per-device step vmapped over the cells), 'map' (``lax.map`` over the cells inside the one
  compiled step) or 'auto' (map on CPU, vmap on accelerators).
  """
  start_time = time.time()
  if len(cells) < 1:
    raise ValueError("fit_group needs at least one (config, workdir) cell")
  if jax.process_count() > 1:
    raise ValueError("a vmapped group of cells runs in one process; train multi-process runs "
                     "without --vmap_cells")
  if how not in HOWS:
    raise ValueError(f"the model axis runs as one of {HOWS} (--model_axis), got {how!r}")
  for config, _ in cells:
    validate_train_config(config)
  keys = [group_key(config) for config, _ in cells]
  if len(set(keys)) > 1:
    raise ValueError("the cells of a vmapped group must differ only in 'seed'; group them with "
                     "jaxdisent.train.model_axis.group_key")
  workdirs = [os.path.abspath(w) for _, w in cells]
  if len(set(workdirs)) != len(workdirs):
    raise ValueError(f"two cells of a vmapped group share a workdir ({workdirs}); give each its own")
  seeds = [int(config.seed) for config, _ in cells]
  if len(set(seeds)) != len(seeds):
    raise ValueError(f"the cells of a vmapped group repeat a seed ({seeds}): they would train the "
                     "same run twice; list distinct seeds")
  log = log or ((lambda *a: None) if quiet else
                (lambda *a: print(*a, file=sys.stderr, flush=True)))
  with contextlib.ExitStack() as stack_:
    for workdir in workdirs:
      stack_.enter_context(workdir_lock(workdir, "training (vmapped group)"))
    results = _fit_group(cells, devices=devices, log=log, start_time=start_time, methods=methods,
                         step_callback=step_callback, how=how)
  release_compiled_programs()  # see jaxdisent/programs.py
  return results


def _steps(checkpointer) -> set[int]:
  return set(checkpointer.all_steps())


def _restore_common(checkpointers, abstract_states, fresh_states, workdirs, log):
  """Restore every cell at the newest step all of them have (verified); quarantine corrupt ones."""
  while True:
    common = set.intersection(*[_steps(c) for c in checkpointers])
    if not common:
      return fresh_states, None
    step = max(common)
    restored, bad = [], False
    for checkpointer, abstract, workdir in zip(checkpointers, abstract_states, workdirs):
      try:
        restored.append(checkpointer.restore(step, abstract))
      except CheckpointError as error:
        if error.kind != "corrupt":
          raise
        target = checkpointer.quarantine(step, os.path.join(workdir, "corrupt_checkpoints"))
        log(f"[jaxdisent] WARNING: {error}. Moved it to {target}; falling back to an earlier "
            "step the whole group has")
        bad = True
        break
    if not bad:
      return restored, step


def _fit_group(cells, *, devices, log, start_time, methods, step_callback, how):
  from jaxdisent.evals import flat_scalars, read_record, run_evaluations  # pylint: disable=g-import-not-at-top

  configs = [config for config, _ in cells]
  workdirs = [workdir for _, workdir in cells]
  names = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  if methods is None:   # each cell's data, init and evaluation
    raise ValueError("fit_group needs methods=[make_method(config) for each cell] (jaxdisent."
                     "methods.make_method), or jaxdisent.runs.fit_group(cells), which builds them")
  if len(methods) != len(configs):
    raise ValueError(f"fit_group got {len(methods)} methods for {len(configs)} cells")
  train = configs[0].train
  checkpoint_dirs = [os.path.join(w, "checkpoints") for w in workdirs]
  for config, workdir, directory in zip(configs, workdirs, checkpoint_dirs):
    os.makedirs(workdir, exist_ok=True)
    changed = check_and_write_workdir_config(config, workdir, has_checkpoints=_has_steps(directory))
    if changed:
      log(f"[jaxdisent] {workdir}: resuming with changed settings: {', '.join(changed)}")
  # The step is the first cell's: the cells' configs are equal but for the seed, which is traced.
  optimizer = methods[0].optimizer()
  single = DataParallel(methods[0], optimizer, configs[0].seed, "shard_map", devices=devices)
  single.check_batch_size(train.batch_size)
  axis = ModelAxis(methods[0], optimizer, [c.seed for c in configs], devices=devices, how=how)
  num_steps = int(train.num_steps)

  fresh = []
  for method, config in zip(methods, configs):
    params, model_state = method.init(jax.random.key(config.seed))
    fresh.append(TrainState.create(params, method.optimizer().init(params), model_state))
  checkpointers = [Checkpointer(d, train.get("keep_checkpoints", 3)) for d in checkpoint_dirs]
  writers = [MetricsWriter(os.path.join(w, "metrics.jsonl")) for w in workdirs]
  try:
    for checkpointer, directory in zip(checkpointers, checkpoint_dirs):
      for name in checkpointer.removed_partial:
        log(f"[jaxdisent] removed {os.path.join(directory, name)}: a save that never completed")
    abstract = [single.abstract_state(s) for s in fresh]
    states, resumed_from = _restore_common(checkpointers, abstract, fresh, workdirs, log)
    if resumed_from is not None:
      log(f"[jaxdisent] resumed the group {names} from step {resumed_from} (checksums verified)")
    for writer in writers:
      writer.truncate_after(-1 if resumed_from is None else resumed_from, log=log)
    step = 0 if resumed_from is None else int(resumed_from)
    state = axis.place_state(stack(jax.device_get(states)))
    last_good = resumed_from

    def check_finite(placed):
      bad = np.asarray(jax.device_get(placed.nonfinite_step))
      broken = [(names[i], int(b)) for i, b in enumerate(bad) if b >= 0]
      if broken:
        where = (f"the last good checkpoint of every cell (step {last_good}, verified) is kept"
                 if last_good is not None else "no checkpoint had been saved yet")
        raise NonFiniteLossError(
            f"loss or gradient became NaN/inf in cell(s) {broken} (cell, step) of a vmapped "
            f"group (learning rate {methods[0].learning_rate()}); training stopped and {where}. "
            "Lower optimizer.learning_rate, check the data for NaN/inf, or set "
            "optimizer.grad_clip_norm")

    def cell_state(host, index):
      return jax.device_put(unstack(host, index), single.replicated)

    def save(at_step, placed):
      nonlocal last_good
      check_finite(placed)
      host = jax.device_get(placed)
      for index, checkpointer in enumerate(checkpointers):
        checkpointer.save(at_step, cell_state(host, index))
      last_good = at_step

    eval_every = int(train.get("eval_every", 0) or 0)

    def evaluate_cell(index, at_step, host_cell):
      results = run_evaluations(methods[index], host_cell, at_step, workdirs[index],
                                configs[index], training=True, log=log, is_writer=True)
      if results:
        writers[index].write(at_step, flat_scalars(results))

    def evaluate_all(at_step, placed, skip_done=False):
      host = jax.device_get(placed)
      for index in range(len(cells)):
        if skip_done and read_record(workdirs[index], at_step) is not None:
          continue
        evaluate_cell(index, at_step, jax.device_get(cell_state(host, index)))

    preempted = False
    with _SigtermFlag() as sigterm:
      while step < num_steps:
        batches = [single.local_batch(m.local_batch, c.seed, step, train.batch_size)
                   for m, c in zip(methods, configs)]
        state, metrics = axis.step(state, axis.place_batch(batches))
        step += 1
        if step % train.log_every == 0 or step == num_steps:
          check_finite(state)
          host_metrics = jax.device_get(metrics)
          for index, writer in enumerate(writers):
            writer.write(step, unstack(host_metrics, index))
        if step % train.checkpoint_every == 0 and step < num_steps:
          save(step, state)
        if eval_every and step % eval_every == 0 and step < num_steps:
          evaluate_all(step, state)
        if step_callback is not None:
          step_callback(step)
        if sigterm.should_stop(step) and step < num_steps:
          save(step, state)
          preempted = True
          log(f"\n[jaxdisent] SIGTERM: saved step {step} of the group {names}; re-run the same "
              "command to resume")
          break
      if not preempted:
        save(step, state)
      for checkpointer in checkpointers:
        checkpointer.wait()
  finally:
    for checkpointer in checkpointers:
      checkpointer.close()

  host = jax.device_get(state)
  finals = [jax.device_get(cell_state(host, i)) for i in range(len(cells))]
  if not preempted:
    with _SigtermFlag() as sigterm:
      if train.get("eval_at_end", True):
        # a finished group (resumed at its last step) keeps its records, as fit does
        evaluate_all(step, state, skip_done=resumed_from == step)
      if sigterm.raised:
        log(f"[jaxdisent] SIGTERM during the end-of-run evaluation: finished it, skipped the "
            f"plots; step {step} is saved")
      elif train.get("plots_at_end", True):
        for method, final, workdir in zip(methods, finals, workdirs):
          method.finalize(final, workdir, log)
  seconds = time.time() - start_time
  return [FitResult(final, step, preempted, resumed_from, seconds, method)
          for final, method in zip(finals, methods)]
