"""XLA:CPU options jaxdisent sets for itself (measured; see docs/performance.md).

``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: jaxlib 0.10 hands each
convolution to YNNPACK by default. On the VAE's layers (and above all their gradients) YNNPACK was
slower than XLA's own Eigen convolutions here - the beta-VAE step took 1.5x the CPU time with it
(docs/performance.md). The flag removes only that fusion type, so matmuls and element-wise fusions
are unchanged. Numbers stay float32 results of the same sums (a different summation order).

XLA reads XLA_FLAGS once, when JAX creates its CPU client; ``apply()`` therefore runs when
``jaxdisent`` is imported and only adds the option to ``XLA_FLAGS`` if the user has not set the same
option (a user's choice wins) and the jaxlib is the 0.10 series it was measured on (an unknown
flag is fatal in XLA). Set ``JAXDISENT_XLA_DEFAULTS=1`` to leave XLA_FLAGS untouched.
"""

from __future__ import annotations

import os

YNN_CONVOLUTIONS_OFF = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def apply() -> bool:
  """Adds the flag to XLA_FLAGS when appropriate; returns whether XLA_FLAGS now carries it."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return YNN_CONVOLUTIONS_OFF in flags.split()
  if os.environ.get("JAXDISENT_XLA_DEFAULTS", "") not in ("", "0"):
    return False
  try:
    from jaxlib import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  if not version.__version__.startswith("0.10."):
    return False
  os.environ["XLA_FLAGS"] = (flags + " " + YNN_CONVOLUTIONS_OFF).strip()
  return True
