"""Orbax checkpoints in WORKDIR/checkpoints, with clear errors for bad or incompatible ones."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint could not be restored; the message says why and what to do."""


class Checkpointer:
  """Keeps the last ``max_to_keep`` steps; saves asynchronously (``wait`` before exit)."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, step: int, abstract_state):
    """Restore `step` onto the shardings in `abstract_state` (resharding as needed)."""
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except (ValueError, KeyError, TypeError) as error:
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} does not match this run's model/state "
          f"({type(error).__name__}: {str(error)[:300]}). It was written by a different config; "
          "use a new --workdir, or restore the original config") from error
    except Exception as error:  # corrupted or partial files
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} could not be read "
          f"({type(error).__name__}: {str(error)[:300]}); it may be corrupted. Delete that step's "
          "folder to fall back to an earlier checkpoint") from error

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree, sharding=None):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
