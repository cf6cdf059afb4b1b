"""Data parallelism: one per-device step, run under jit(shard_map) (default) or pmap.

The per-device step sees its shard of the global batch, averages gradients, loss and metrics
with ``lax.pmean(..., 'data')`` and applies the same update on every device, so the replicated
state stays identical. Randomness is keyed by (seed, step) and by each example's global index,
so a global batch gives the same result on 1 or N devices.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdisent.rng import step_key
from jaxdisent.train import precision
from jaxdisent.train.state import TrainState
from jaxdisent import rng as rng_streams

AXIS = "data"


def per_device_step(method, optimizer: optax.GradientTransformation, seed: int,
                    state: TrainState, batch):
  """One optimisation step on one device's shard; collectives over axis 'data'."""
  rng = step_key(seed, state.step, salt=rng_streams.LOSS)
  dtype = precision.compute_dtype(getattr(method, "config", None))

  def loss_fn(params):
    if dtype is not None:   # train.compute_dtype='bfloat16': jaxdisent/train/precision.py
      return precision.mixed_loss(method, dtype, params, state.model_state, batch, rng,
                                  state.step, AXIS)
    return method.loss(params, state.model_state, batch, rng, state.step, axis_name=AXIS)

  (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = lax.pmean(grads, AXIS)
  loss = lax.pmean(loss, AXIS)
  metrics = lax.pmean(metrics, AXIS)
  grads = method.transform_grads(grads, state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = method.post_update(optax.apply_updates(state.params, updates))
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  nonfinite_step = jnp.where((state.nonfinite_step < 0) & ~finite, state.step,
                             state.nonfinite_step)
  metrics = dict(metrics, loss=loss, grad_norm=grad_norm)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                            model_state=model_state, nonfinite_step=nonfinite_step)
  return new_state, metrics


def make_mesh(devices=None) -> jax.sharding.Mesh:
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def check_batch_size(global_batch: int, num_devices: int, num_processes: int = 1) -> None:
  if global_batch % num_devices:
    raise ValueError(
        f"train.batch_size={global_batch} is not divisible by the {num_devices} devices; "
        f"use a multiple of {num_devices} (e.g. {num_devices * max(1, global_batch // num_devices)})")
  if global_batch % num_processes:
    raise ValueError(f"train.batch_size={global_batch} is not divisible by the "
                     f"{num_processes} processes")


class DataParallel:
  """Places state and batches on the devices and runs the step.

  ``mode='shard_map'``: state replicated over a 1-D ('data',) mesh, batches sharded along their
  first axis, step = jit(shard_map(per_device_step)). Multi-host ready: each process passes its
  local slice of the global batch.
  ``mode='pmap'``: the same per-device step under jax.pmap over the local devices (single host).
  Checkpoints hold the plain (unreplicated) state in both modes, so either can resume the other.
  """

  def __init__(self, method, optimizer, seed: int, mode: str = "shard_map", devices=None):
    if mode not in ("shard_map", "pmap"):
      raise ValueError(f"train.parallel must be 'shard_map' or 'pmap', got {mode!r}")
    self.mode = mode
    self.devices = list(jax.devices() if devices is None else devices)
    self.num_devices = len(self.devices)
    step = functools.partial(per_device_step, method, optimizer, int(seed))
    if mode == "shard_map":
      self.mesh = make_mesh(self.devices)
      self.replicated = NamedSharding(self.mesh, P())
      self.batch_sharding = NamedSharding(self.mesh, P(AXIS))
      self._step = jax.jit(
          jax.shard_map(step, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
                        check_vma=False),
          donate_argnums=0)
    else:
      if jax.process_count() > 1:
        raise ValueError("train.parallel='pmap' is single-host here; use 'shard_map' on several hosts")
      self.mesh = None
      self._step = jax.pmap(step, axis_name=AXIS, donate_argnums=0, devices=self.devices)
      # The same axis name as the step: its outputs then carry the step's input sharding, so the
      # first step's state does not make pmap's jit retrace and recompile the step at step 2.
      self._replicate = jax.pmap(lambda tree: tree, axis_name=AXIS, devices=self.devices)

  def check_batch_size(self, global_batch: int) -> None:
    check_batch_size(global_batch, self.num_devices, jax.process_count())

  def local_rows(self, global_batch: int) -> tuple[int, int]:
    """(start, size): the rows of the global batch this process renders and passes to place_batch.

    Multi-process: read off the batch sharding rather than assumed to be process_index * size,
    because the mesh's device order (not the process index) decides which rows land on which
    process; the rows must be contiguous, which a 1-D mesh over jax.devices() gives.
    """
    if self.mode == "pmap" or jax.process_count() == 1:
      return 0, global_batch
    starts = sorted(index[0].start or 0 for index in
                    self.batch_sharding.addressable_devices_indices_map((global_batch,)).values())
    size = global_batch // self.num_devices
    if starts != list(range(starts[0], starts[0] + size * len(starts), size)):
      raise ValueError(f"this process's devices hold non-contiguous rows {starts} of the batch; "
                       "build the mesh from jax.devices() in their default order")
    return starts[0], size * len(starts)

  def place_state(self, state):
    if self.mode == "shard_map":
      return jax.device_put(state, self.replicated)
    n = self.num_devices
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), state)
    return self._replicate(stacked)

  def abstract_state(self, state):
    """ShapeDtypeStructs (with the target sharding) of a plain state, for Orbax restore."""
    # Always name a sharding on *this* process's devices: without one Orbax restores onto the
    # sharding recorded at save time, which fails on another device count ("Topology mismatch").
    sharding = (self.replicated if self.mode == "shard_map"
                else jax.sharding.SingleDeviceSharding(self.devices[0]))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding),
                        state)

  def host_state(self, state):
    """The plain state (one copy) from a placed one."""
    if self.mode == "pmap":
      # the first device's copy, without dispatching a gather (x[0] would be one more program
      # queued behind the donated step)
      return jax.tree.map(lambda x: x.addressable_shards[0].data.reshape(x.shape[1:]), state)
    return state

  def local_batch(self, render, seed: int, step: int, global_batch: int):
    """This process's rows of the global batch, rendered one device's shard at a time.

    ``render`` is ``method.local_batch``. Rendering per shard makes every device's examples the
    same computation for any split of a fixed device count over processes (1 x 4 or 2 x 2):
    sources whose per-example values depend on the size of the call (XLA rounds a batched
    matmul differently per size, ~1e-7 in DecAlign's synthetic data) then still agree bitwise.
    """
    start, size = self.local_rows(global_batch)
    shard = global_batch // self.num_devices
    chunks = [render(seed, step, first, shard) for first in range(start, start + size, shard)]
    if len(chunks) == 1:
      return chunks[0]
    return jax.tree.map(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *chunks)

  def place_batch(self, local_batch):
    """Global batch from this process's slice (leading axis = examples)."""
    if self.mode == "shard_map":
      return jax.tree.map(
          lambda x: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)),
          local_batch)
    n = self.num_devices
    return jax.tree.map(lambda x: np.asarray(x).reshape(n, x.shape[0] // n, *x.shape[1:]),
                        local_batch)

  def step(self, state, batch):
    state, metrics = self._step(state, batch)
    if self.mode == "pmap":
      metrics = jax.tree.map(lambda x: x.addressable_shards[0].data.reshape(x.shape[1:]), metrics)
    return state, metrics
