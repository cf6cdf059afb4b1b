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


def check_float(value, name: str, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
  """A finite real number in the given (closed unless ``*_open``) range; a ValueError otherwise."""
  ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
  if ok:
    value = float(value)
    ok = bool(np.isfinite(value))
    if ok and low is not None:
      ok = value > low if low_open else value >= low
    if ok and high is not None:
      ok = value < high if high_open else value <= high
  if not ok:
    left = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
    right = "" if high is None else f"{high:g}" + (")" if high_open else "]")
    bound = (f" in {left}, {right}" if low is not None and high is not None else
             f" {'>' if low_open else '>='} {low:g}" if low is not None else
             f" {'<' if high_open else '<='} {high:g}" if high is not None else "")
    raise ValueError(f"{name} must be a finite number{bound}; got {value!r}" +
                     (f". {hint}" if hint else ""))
  return value


def check_jobs(n_jobs):
  """``n_jobs`` of the scikit-learn fits: None (the default) or an integer >= 1."""
  if n_jobs is not None:
    check_int(n_jobs, "n_jobs", 1, hint="use None for one process per CPU, 1 for in-process")
  return n_jobs


def _to_numpy(x, name: str, dtype=None):
  try:
    return np.asarray(x) if dtype is None else np.asarray(x, dtype)
  except (ValueError, TypeError) as error:   # ragged nested lists, objects NumPy cannot convert
    raise ValueError(f"{name} is not a rectangular numeric array (rows of different lengths, or "
                     f"values that are not numbers: {type(error).__name__}); pass a NumPy / JAX "
                     f"array of shape (samples, dims)") from None


def as_host_array(x, name: str, *, ndim=(2,), dtype=None, allow_1d_as_column: bool = False,
                  min_rows: int = 1, finite: bool = True):
  """A NumPy array of the given rank, non-empty, without NaN/inf: else a ValueError naming it.

  Low-precision floats NumPy does not know as numbers (bfloat16, the float8 types; JAX arrays
  often hold them) are converted exactly to float32; complex input is refused (every metric here
  is defined on real values).
  """
  if isinstance(x, jax.core.Tracer):
    raise TypeError(f"{name} is a JAX tracer: this is the validating host wrapper; call the "
                    f"`*_core` function inside jit/vmap/grad")
  if x is None:
    raise ValueError(f"{name} is None; pass an array of shape (samples, dims)")
  x = _to_numpy(x, name)
  if x.dtype != object and not np.issubdtype(x.dtype, np.number) and jax.numpy.issubdtype(
      x.dtype, jax.numpy.floating):                  # bfloat16 / float8 (ml_dtypes)
    x = x.astype(np.float32)
  if dtype is not None:
    x = _to_numpy(x, name, dtype)
  if allow_1d_as_column and x.ndim == 1:
    x = x[:, None]
  if x.ndim not in ndim:
    want = " or ".join(f"{d}-D" for d in ndim)
    raise ValueError(f"{name} must be a {want} array (samples first); got shape {x.shape}")
  if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
    raise TypeError(f"{name} must be numeric; got dtype {x.dtype}")
  if np.issubdtype(x.dtype, np.complexfloating):
    raise TypeError(f"{name} must be real; got dtype {x.dtype} (pass .real or abs() explicitly)")
  if x.size == 0 or (x.ndim >= 1 and x.shape[0] < min_rows):
    raise ValueError(f"{name} needs at least {min_rows} sample row(s) and one column; got shape "
                     f"{x.shape}")
  if finite and np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
    raise ValueError(f"{name} contains NaN or inf; drop or fix those rows (check the encoder / "
                     f"checkpoint that produced them)")
  return x


def integer_labels(x, name: str):
  """Integer class labels (N, K) (a 1-D array is one column; bool counts as 0/1), else TypeError."""
  x = as_host_array(x, name, allow_1d_as_column=True)
  if x.dtype == bool:
    x = x.astype(np.int64)
  if not np.issubdtype(x.dtype, np.integer):
    raise TypeError(f"{name} must be integer class labels, got {x.dtype}; discretise continuous "
                    f"values first (histogram_discretize)")
  return x


def check_varies(factors, name: str, metric: str):
  """At least one column of ``factors`` takes two values, else ValueError (metric undefined)."""
  if all(np.unique(column).size < 2 for column in factors.T):
    raise ValueError(f"every column of {name} is constant on these {factors.shape[0]} sample(s) "
                     f"(zero entropy): {metric} is undefined; sample factors that vary")


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
