"""Shared pieces of the host wrappers: input validation and the one return convention.

Cores never call anything here except the static-argument checks (``check_int``), which run at
trace time on Python ints and so work under ``jax.jit`` / ``jax.vmap`` too.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import numpy as np


def check_int(value, name: str, low: int, high: int | None = None, hint: str = ""):
  """A Python int in [low, high]; a clear ValueError otherwise (bools and floats refused)."""
  ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
  if ok:
    ok = low <= value and (high is None or value <= high)
  if not ok:
    bound = f"[{low}, {high}]" if high is not None else f">= {low}"
    raise ValueError(f"{name} must be an integer {bound}; got {value!r}" + (f". {hint}" if hint else ""))
  return int(value)


def as_host_array(x, name: str, *, ndim=(2,), dtype=None, allow_1d_as_column: bool = False,
                  min_rows: int = 1, finite: bool = True):
  """A NumPy array of the given rank, non-empty, without NaN/inf: else a ValueError naming it."""
  if isinstance(x, jax.core.Tracer):
    raise TypeError(f"{name} is a JAX tracer: this is the validating host wrapper; call the "
                    f"`*_core` function inside jit/vmap/grad")
  x = np.asarray(x) if dtype is None else np.asarray(x, dtype)
  if allow_1d_as_column and x.ndim == 1:
    x = x[:, None]
  if x.ndim not in ndim:
    want = " or ".join(f"{d}-D" for d in ndim)
    raise ValueError(f"{name} must be a {want} array (samples first); got shape {x.shape}")
  if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
    raise TypeError(f"{name} must be numeric; got dtype {x.dtype}")
  if x.size == 0 or (x.ndim >= 1 and x.shape[0] < min_rows):
    raise ValueError(f"{name} needs at least {min_rows} sample row(s) and one column; got shape "
                     f"{x.shape}")
  if finite and np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
    raise ValueError(f"{name} contains NaN or inf; drop or fix those rows (check the encoder / "
                     f"checkpoint that produced them)")
  return x


def same_rows(a, b, name_a: str, name_b: str):
  if a.shape[0] != b.shape[0]:
    raise ValueError(f"{name_a} and {name_b} must have the same number of samples (rows); got "
                     f"{a.shape[0]} and {b.shape[0]} rows")


@contextlib.contextmanager
def float64():
  """Run a core in float64, as the NumPy code the wrappers replaced did (and as the references
  do): the wrappers' values then do not depend on ``jax_enable_x64``."""
  with jax.enable_x64(True):
    yield


def to_float(x) -> float:
  return float(np.asarray(x))


def to_host(tree):
  """The return convention: 0-d arrays -> float (ints stay int), others -> np.ndarray."""
  def convert(leaf):
    leaf = np.asarray(leaf)
    if leaf.ndim == 0:
      return int(leaf) if np.issubdtype(leaf.dtype, np.integer) else float(leaf)
    return leaf
  return jax.tree_util.tree_map(convert, tree)


def host_float64(fn):
  """Decorator: run the wrapper body under float64 (see ``float64``)."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with float64():
      return fn(*args, **kwargs)
  return wrapped
