"""Orbax checkpoints in WORKDIR/checkpoints, verified by checksums, with classified errors.

Every saved step gets a manifest ``WORKDIR/checkpoints/manifests/<step>.json`` written *before*
Orbax starts the (asynchronous) save: the path, shape, dtype and BLAKE2b digest of every array of
the state. A restore checks the manifest against the current run's state (another config: a clear
"different config" error, before touching any file) and the restored arrays against the digests
(a flipped byte: "corrupt"), so a step is only ever called good after it was verified.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp

MANIFESTS = "manifests"


class _DropOrbaxErrorLogs(logging.Filter):
  """Orbax logs a failed background save as several ERROR tracebacks (one per thread) and then
  raises it in the main thread, where Checkpointer turns it into one CheckpointError: the logs
  only bury that line (82 tracebacks for one full disk)."""

  def filter(self, record):
    return not (record.levelno >= logging.ERROR and "orbax" in (record.pathname or ""))


_ORBAX_FILTER = _DropOrbaxErrorLogs()
logging.getLogger("absl").addFilter(_ORBAX_FILTER)


class CheckpointError(RuntimeError):
  """A checkpoint could not be restored; the message says why and what to do.

  ``kind`` is one of ``"config"`` (saved with another model/state structure), ``"corrupt"``
  (unreadable or failing its checksum; ``step`` names it), ``"topology"`` (could not be placed on
  this process's devices), ``"save"`` (a save failed, e.g. a full disk; earlier steps are kept).
  """

  def __init__(self, message: str, kind: str = "corrupt", step: int | None = None):
    super().__init__(message)
    self.kind = kind
    self.step = step


def host_array(x) -> np.ndarray:
  """One full host copy of a (replicated) array, also when other processes hold other shards."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(x.addressable_data(0))
  return np.asarray(x)


def _leaf_name(path) -> str:
  return jax.tree_util.keystr(path)


def manifest_of(state) -> dict:
  """{leaf path: {shape, dtype, blake2b}} of a plain state."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    array = np.asarray(host_array(leaf))
    # tobytes() is C-ordered whatever the layout (ascontiguousarray would make 0-d arrays 1-d)
    digest = hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()
    out[_leaf_name(path)] = {"shape": list(array.shape), "dtype": str(array.dtype),
                             "blake2b": digest}
  return out


def structure_of(abstract_state) -> dict:
  return {_leaf_name(path): {"shape": list(np.shape(leaf)), "dtype": str(np.dtype(leaf.dtype))}
          for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}


def _structure_mismatch(saved: dict, expected: dict) -> list[str]:
  problems = []
  for name in sorted(set(saved) | set(expected)):
    if name not in expected:
      problems.append(f"{name} saved but not in this run's state")
    elif name not in saved:
      problems.append(f"{name} missing from the checkpoint")
    elif (saved[name]["shape"], saved[name]["dtype"]) != (expected[name]["shape"],
                                                           expected[name]["dtype"]):
      problems.append(f"{name}: saved {tuple(saved[name]['shape'])} {saved[name]['dtype']}, "
                      f"this run {tuple(expected[name]['shape'])} {expected[name]['dtype']}")
  return problems


_SINGLE_REPLICA_SAVES = [False]


def _save_cpu_arrays_from_one_replica() -> None:
  """One process on CPU: Orbax writes each replicated array from one replica, not in slices.

  Orbax's default on CPU (and TPU; it already turns this off on GPU) is replica-parallel saving:
  each replicated ``jax.Array`` is cut into one slice per device (an eager ``slice_in_dim`` under
  a temporary mesh, per array and device) so that the devices' host transfers run in parallel.
  On CPU every device's memory *is* host memory, and in one process the same host writes every
  slice, so the cutting is pure overhead: the tiny DecAlign state (268 arrays x 4 devices) spent
  ~0.3 s a save on it (a fit saving every step: 5.0 s -> 3.8 s, measured). The bytes on disk
  read back identically either way (checksummed by the manifests), so older checkpoints restore
  unchanged. Several processes keep Orbax's default: there the slices spread the writes over
  hosts. This replaces the jax.Array entry of Orbax's global type-handler registry, once per
  process, only where all of that holds.
  """
  if _SINGLE_REPLICA_SAVES[0] or jax.process_count() != 1 or jax.default_backend() != "cpu":
    return
  try:
    current = ocp.type_handlers.get_type_handler(jax.Array)
    # the same per-host array metadata store as Orbax's default handler (else it stops writing it)
    store = getattr(current, "_array_metadata_store", None)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)   # not Orbax's "overriding jax.Array" warning each run
    try:
      ocp.type_handlers.register_type_handler(
          jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False,
                                                    array_metadata_store=store), override=True)
    finally:
      absl_logger.setLevel(level)
  except (AttributeError, TypeError, ValueError):   # an Orbax without the option: its default stays
    pass
  _SINGLE_REPLICA_SAVES[0] = True


class Checkpointer:
  """Keeps the last ``max_to_keep`` steps (>= 1); saves asynchronously (``wait`` before exit)."""

  def __init__(self, directory: str, max_to_keep: int = 3, *, is_writer: bool | None = None):
    if max_to_keep is not None and int(max_to_keep) < 1:
      raise ValueError(f"train.keep_checkpoints={max_to_keep} would keep no checkpoint and lose "
                       "the trained model; use 1 or more")
    self.directory = os.path.abspath(directory)
    self.is_writer = jax.process_index() == 0 if is_writer is None else is_writer
    self._failed = False
    self.removed_partial = _remove_partial_saves(self.directory) if self.is_writer else []
    _save_cpu_arrays_from_one_replica()
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  @property
  def manifest_dir(self) -> str:
    return os.path.join(self.directory, MANIFESTS)

  def manifest_path(self, step: int) -> str:
    return os.path.join(self.manifest_dir, f"{int(step)}.json")

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    with self._save_errors(step):
      self._save(step, state)

  def _save(self, step: int, state) -> None:
    if step in self._manager.all_steps():
      return
    if self.is_writer:
      self._check_free_space(state)
      os.makedirs(self.manifest_dir, exist_ok=True)
      tmp = self.manifest_path(step) + ".tmp"
      with open(tmp, "w") as f:
        json.dump({"step": int(step), "arrays": manifest_of(state)}, f)
      os.replace(tmp, self.manifest_path(step))
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._prune_manifests()

  def _prune_manifests(self) -> None:
    if not self.is_writer or not os.path.isdir(self.manifest_dir):
      return
    kept = set(self._manager.all_steps())
    for name in os.listdir(self.manifest_dir):
      stem = name.split(".")[0]
      if stem.isdigit() and int(stem) not in kept and int(stem) < max(kept | {0}):
        os.remove(os.path.join(self.manifest_dir, name))

  def wait(self) -> None:
    with self._save_errors(None):
      self._manager.wait_until_finished()

  def _check_free_space(self, state) -> None:
    """Refuse a save that cannot fit before Orbax starts it.

    A save that runs out of space part-way fails inside Orbax's background threads (their
    teardown prints tracebacks we cannot silence) and leaves a partial folder; checking first
    turns the common case into one line. The need is the state's raw size (Orbax may compress,
    so this errs on the safe side) plus 256 KiB for metadata.
    """
    needed = sum(int(np.asarray(host_array(leaf)).nbytes) for leaf in jax.tree.leaves(state))
    needed += 1 << 18
    try:
      free = shutil.disk_usage(self.directory).free
    except OSError:
      return
    if free < needed:
      kept = self._manager.all_steps()
      last = (f"the last complete checkpoint (step {max(kept)}) is kept" if kept else
              "no checkpoint exists yet")
      raise CheckpointError(
          f"not enough disk space to save a checkpoint in {self.directory}: it needs about "
          f"{needed / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free; {last}. Free space on "
          "that file system, or lower train.keep_checkpoints, then re-run the same command",
          kind="save")

  @contextlib.contextmanager
  def _save_errors(self, step):
    """A failed (possibly earlier, asynchronous) save becomes one CheckpointError with the fix."""
    try:
      yield
    except CheckpointError:
      raise
    except Exception as error:  # pylint: disable=broad-except
      self._failed = True
      text = " ".join(str(error).split())
      kept = [s for s in self._manager.all_steps() if s != step]
      last = (f"the last complete checkpoint (step {max(kept)}) is kept" if kept else
              "no complete checkpoint exists yet")
      if _is_disk_full(error):
        raise CheckpointError(
            f"saving a checkpoint in {self.directory} failed: the disk is full (No space left on "
            f"device); {last}. Free space on that file system, or lower train.keep_checkpoints, "
            "then re-run the same command (the partial save is removed when it starts)",
            kind="save") from None
      raise CheckpointError(
          f"saving a checkpoint in {self.directory} failed ({type(error).__name__}: "
          f"{text[:300]}); {last}. Re-run the same command to resume from it", kind="save") from None

  def read_manifest(self, step: int) -> dict | None:
    path = self.manifest_path(step)
    if not os.path.exists(path):
      return None
    try:
      with open(path) as f:
        return json.load(f)["arrays"]
    except (ValueError, KeyError) as error:
      raise CheckpointError(
          f"the checksum manifest of step {step} ({path}) is unreadable ({error}); the step "
          "cannot be verified", kind="corrupt", step=step) from error

  def restore(self, step: int, abstract_state):
    """Restore `step` onto the shardings in `abstract_state` and verify it against its manifest.

    Raises CheckpointError with ``kind`` "config", "corrupt" or "topology".
    """
    manifest = self.read_manifest(step)
    if manifest is not None:
      problems = _structure_mismatch(
          {k: {"shape": v["shape"], "dtype": v["dtype"]} for k, v in manifest.items()},
          structure_of(abstract_state))
      if problems:
        raise CheckpointError(
            f"checkpoint at step {step} in {self.directory} holds another model/state than this "
            f"run's config ({'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}). "
            "It was written with a different config: use a new --workdir, or the original config",
            kind="config", step=step)
    try:
      state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    except Exception as error:  # pylint: disable=broad-except
      # One line: TensorStore's errors embed a multi-line spec of the store (and a user's log
      # or a regex over the message should not have to cope with that).
      text = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
      if "opology" in str(error) or "evice" in str(error) and "mesh" in str(error):
        raise CheckpointError(
            f"checkpoint at step {step} could not be placed on this process's "
            f"{jax.device_count()} device(s) ({text}). This is a bug in jaxdisent's restore "
            "(restores should work on any device count): please report it",
            kind="topology", step=step) from error
      if manifest is None and isinstance(error, (ValueError, KeyError, TypeError)) and (
          "shape" in str(error).lower() or "structure" in str(error).lower()):
        raise CheckpointError(
            f"checkpoint at step {step} in {self.directory} does not match this run's "
            f"model/state ({text}). It was written by a different config; use a new --workdir, "
            "or restore the original config", kind="config", step=step) from error
      raise CheckpointError(
          f"checkpoint at step {step} in {self.directory} is corrupt or incomplete and cannot be "
          f"read ({text})", kind="corrupt", step=step) from error
    if manifest is not None:
      actual = manifest_of(state)
      bad = [name for name, entry in manifest.items()
             if actual.get(name, {}).get("blake2b") != entry["blake2b"]]
      if bad:
        raise CheckpointError(
            f"checkpoint at step {step} in {self.directory} is corrupt: {len(bad)} array(s) "
            f"differ from the checksums recorded when it was saved ({', '.join(bad[:3])})",
            kind="corrupt", step=step)
    return state

  def verified(self, step: int) -> bool:
    return os.path.exists(self.manifest_path(step))

  def quarantine(self, step: int, destination: str) -> str:
    """Move a bad step (and its manifest) out of the way, keeping the files for inspection."""
    self.wait()
    source = os.path.join(self.directory, str(int(step)))
    os.makedirs(destination, exist_ok=True)
    target = os.path.join(destination, str(int(step)))
    suffix = 0
    while os.path.exists(target):
      suffix += 1
      target = os.path.join(destination, f"{int(step)}.{suffix}")
    if self.is_writer:
      if os.path.exists(source):
        shutil.move(source, target)
      if os.path.exists(self.manifest_path(step)):
        shutil.move(self.manifest_path(step), target + ".manifest.json")
    self._manager.reload()
    return target

  def close(self) -> None:
    try:
      if not self._failed:
        self.wait()
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        if not self._failed:
          raise


def _is_disk_full(error: BaseException) -> bool:
  while error is not None:
    if getattr(error, "errno", None) == errno.ENOSPC:
      return True
    text = str(error)
    if "No space left on device" in text or "os_error_code='28'" in text:
      return True
    error = error.__cause__ or error.__context__
  return False


def _remove_partial_saves(directory: str) -> list[str]:
  """Delete the temporary folders of saves that never committed (a kill or a full disk).

  Orbax writes a step into ``<step>.orbax-checkpoint-tmp*`` and renames it when complete, so such a
  folder is never a usable checkpoint; left behind it holds disk space (the reason a full-disk save
  failed) and makes the next save of that step fail. Only the workdir's lock holder calls this.
  """
  removed = []
  if not os.path.isdir(directory):
    return removed
  for name in os.listdir(directory):
    if ".orbax-checkpoint-tmp" in name:
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
      removed.append(name)
  return removed


def abstract_like(tree, sharding=None):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
