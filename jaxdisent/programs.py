"""Keep a long-lived process clear of the kernel's memory-map limit (``vm.max_map_count``).

Every program XLA:CPU compiles is loaded into its own memory mappings (about eight per program,
counted on jax 0.10.2), and JAX's caches keep compiled programs alive after the function that
compiled them is gone: each tiny ``fit`` left ~850 mappings behind in one process. Linux refuses
new mappings past ``vm.max_map_count`` (65,530 by default) and XLA then aborts inside the compiler
("Fatal Python error: Aborted"), taking the process with it. A sweep that trains its cells one
after another in one process (``launch.sweep``, ``launch.gem_ablation``), a notebook, or a test
worker reaches that after a few dozen runs.

:func:`release_compiled_programs` drops JAX's caches (``jax.clear_caches()``) once the process
holds more than a fraction of the limit: what is still needed compiles again on its next call
(seconds), which is the whole cost. ``fit``, ``fit_group`` and every evaluation call it when they
finish; your own loops can too. On systems without ``/proc`` it does nothing.

The threshold is a quarter of the limit by default. ``JAXDISENT_RELEASE_PROGRAMS_AT`` (a fraction
in (0, 1]) moves it for every call that does not pass ``fraction``: a process that runs many small
fits and would rather keep its compiled programs longer (the test suite sets 0.6, below the
~0.93 at which XLA aborted) can raise it.
"""

from __future__ import annotations

import gc
import math
import os

import jax

DEFAULT_FRACTION = 0.25
FRACTION_ENV = "JAXDISENT_RELEASE_PROGRAMS_AT"
_FALLBACK_LIMIT = 65530  # Linux's default vm.max_map_count


def map_count() -> int | None:
  """Memory mappings this process holds (lines of /proc/self/maps); None where unavailable."""
  try:
    with open("/proc/self/maps", "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


def map_limit() -> int:
  """The kernel's per-process mapping limit (vm.max_map_count)."""
  try:
    with open("/proc/sys/vm/max_map_count") as f:
      return int(f.read().strip())
  except (OSError, ValueError):
    return _FALLBACK_LIMIT


def release_fraction() -> float:
  """The share of ``vm.max_map_count`` above which programs are released (module docstring)."""
  raw = os.environ.get(FRACTION_ENV, "").strip()
  if not raw:
    return DEFAULT_FRACTION
  try:
    value = float(raw)
  except ValueError:
    value = math.nan
  if not 0.0 < value <= 1.0:
    raise ValueError(f"{FRACTION_ENV}={raw!r} must be a fraction in (0, 1] of vm.max_map_count "
                     f"(default {DEFAULT_FRACTION}); unset it or use e.g. 0.5")
  return value


def release_compiled_programs(fraction: float | None = None, *, log=None) -> bool:
  """Clear JAX's compilation caches if this process holds > ``fraction`` of the map limit.

  ``fraction``: default ``release_fraction()`` (0.25, or ``JAXDISENT_RELEASE_PROGRAMS_AT``).
  Returns whether it cleared them. ``log`` (e.g. ``print``) hears one line when it does.
  """
  if fraction is None:
    fraction = release_fraction()
  count = map_count()
  if count is None:
    return False
  limit = map_limit()
  if count <= fraction * limit:
    return False
  jax.clear_caches()
  gc.collect()
  if log is not None:
    after = map_count()
    log(f"[jaxdisent] released compiled programs: this process held {count} memory mappings "
        f"(limit vm.max_map_count={limit}), {after} after")
  return True
