"""One writer per workdir: an exclusive ``fcntl.flock`` on ``WORKDIR/.lock``.

Every writer of a workdir (training, a sweep and its cells, ``launch.evaluate``'s record, the
oracle's scores, an export into a workdir) holds the lock while it writes. The kernel releases a
``flock`` when its process dies, SIGKILL included, so a crashed run never leaves a stale lock: the
file may stay behind, but nothing holds it. A second writer is refused at once with one line that
names the holder (pid, host, what it is doing, since when) and how to proceed.

The lock is re-entrant within one process (a sweep holds its root while each cell's ``fit`` takes
the cell's lock; ``fit`` followed by an evaluation in the same process takes it twice), so library
code can take it wherever it writes without knowing who called it. In multi-process runs only
process 0 writes the workdir's files and takes the lock (the other processes only contribute to
Orbax's collective checkpoint writes).

Readers (``launch.explore``, ``launch.compare``, restoring a checkpoint) never take it.
Lock files on NFS: ``flock`` is emulated with POSIX locks over NFSv4 on Linux, which is what
cluster home and scratch file systems give; on a file system without locks the lock is refused
with a message that says so (set ``JAXDISENT_NO_WORKDIR_LOCK=1`` to run without one, at your own
risk).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time

LOCK_NAME = ".lock"

_held: dict[str, list] = {}        # realpath of workdir -> [fd, depth]
_guard = threading.Lock()


class WorkdirBusyError(RuntimeError):
  """Another process holds the workdir's lock."""


def _holder(fd) -> str:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    info = json.loads(os.read(fd, 4096).decode() or "{}")
  except (OSError, ValueError):
    info = {}
  if not info:
    return "another process (its pid was not recorded yet)"
  since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
  return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} "
          f"({info.get('purpose', 'writing')}, since {since})")


def acquire(workdir: str, purpose: str = "training") -> None:
  """Take the workdir's lock for this process (re-entrant); raise WorkdirBusyError if held.

  Creates ``workdir`` if needed. Raises ``WorkdirBusyError`` (another live process holds it) or
  ``ValueError`` (the workdir cannot be written or locked), each with a one-line message.
  """
  if os.environ.get("JAXDISENT_NO_WORKDIR_LOCK") == "1":
    return
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} is an existing file, not a directory; pass a directory "
                     "(a new one is created)")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise ValueError(f"cannot create workdir {workdir}: {error.strerror or error}; pick a "
                     "writable location") from None
  key = os.path.realpath(workdir)
  with _guard:
    if key in _held:
      _held[key][1] += 1
      return
    path = os.path.join(workdir, LOCK_NAME)
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
      raise ValueError(f"workdir {workdir} is not writable ({error.strerror or error}); fix its "
                       "permissions or pick another --workdir") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        holder = _holder(fd)
        os.close(fd)
        raise WorkdirBusyError(
            f"workdir {workdir} is in use by {holder}. Wait for it to finish (or stop it: a "
            "stopped run resumes from its last checkpoint), or use another --workdir") from None
      os.close(fd)
      raise ValueError(f"cannot lock {path} ({error.strerror or error}): the file system may not "
                       "support locks; use a local --workdir, or set JAXDISENT_NO_WORKDIR_LOCK=1 "
                       "if you are sure no other process writes it") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
            "since": time.time()}
    try:
      os.ftruncate(fd, 0)
      os.lseek(fd, 0, os.SEEK_SET)
      os.write(fd, json.dumps(info).encode())
    except OSError:
      pass  # the lock holds even if its note could not be written (e.g. a full disk)
    _held[key] = [fd, 1]


def release(workdir: str) -> None:
  """Drop one level of this process's hold on the workdir's lock (no-op if not held)."""
  key = os.path.realpath(workdir)
  with _guard:
    entry = _held.get(key)
    if entry is None:
      return
    entry[1] -= 1
    if entry[1] > 0:
      return
    del _held[key]
    try:
      fcntl.flock(entry[0], fcntl.LOCK_UN)
    finally:
      os.close(entry[0])


def held(workdir: str) -> bool:
  """Whether this process holds the workdir's lock."""
  return os.path.realpath(workdir) in _held


@contextlib.contextmanager
def workdir_lock(workdir: str, purpose: str = "training", *, enabled: bool = True):
  """``with workdir_lock(W, 'training'):`` holds W's lock for the block (see ``acquire``)."""
  if not enabled:
    yield
    return
  acquire(workdir, purpose)
  try:
    yield
  finally:
    release(workdir)


def try_acquire(workdir: str, purpose: str) -> bool:
  """Take the lock if it is free; False (and nothing taken) if another process holds it."""
  try:
    acquire(workdir, purpose)
  except WorkdirBusyError:
    return False
  return True
