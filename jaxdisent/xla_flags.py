"""XLA options jaxdisent sets for itself (measured; see docs/performance.md).

``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: jaxlib 0.10 hands each
convolution to YNNPACK by default. On the VAE's layers (and above all their gradients) YNNPACK was
slower than XLA's own Eigen convolutions here - the beta-VAE step took 1.5x the CPU time with it
(docs/performance.md). The flag removes only that fusion type, so matmuls and element-wise fusions
are unchanged. Numbers stay float32 results of the same sums (a different summation order). Added
only for the jaxlib 0.10 series it was measured on (an unknown flag is fatal in XLA).

``--xla_gpu_deterministic_ops=true``: the engine's contract is that a resumed run equals the
uninterrupted one bitwise. On an H200 (jax 0.11.2, benchmarks/gpu_check.sh) that failed with
XLA's defaults for the beta-VAE (3 arrays differ) and the BatchTopK SAE (11), and pmap != shard_map
for three methods. With this flag the same check passed bitwise for all four methods, resume and
pmap == shard_map alike (docs/performance.md, "GPU sessions"). Its cost there: none measurable on
the beta-VAE step (3.13x PyTorch eager with it, 2.43x without, within the two runs' noise), but
the sparse SAE step's scatter-adds became 20x slower (164 -> 8.2 steps/s), which is why the SAE's
``model.formulation=auto`` runs the dense formulation on GPUs (jaxdisent.methods.sae). CPU
programs ignore the flag. Set ``--xla_gpu_deterministic_ops=false`` yourself for speed over exact
resume on a GPU.

XLA reads XLA_FLAGS once, when JAX creates its client; ``apply()`` therefore runs when ``jaxdisent``
is imported and only adds an option that the user has not set (a user's choice wins). Imported
after JAX has started a backend, it cannot take effect and says so in one note on stderr. Set
``JAXDISENT_XLA_DEFAULTS=1`` to leave XLA_FLAGS untouched.
"""

from __future__ import annotations

import os
import sys

YNN_CONVOLUTIONS_OFF = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
GPU_DETERMINISTIC = "--xla_gpu_deterministic_ops=true"


def _jaxlib_version() -> str:
  try:
    from jaxlib import version  # pylint: disable=g-import-not-at-top
  except ImportError:
    return ""
  return version.__version__


def _backend_started() -> bool:
  """Whether JAX has already created a backend in this process (XLA_FLAGS is read then)."""
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(getattr(xla_bridge, "_backends", None))
  except Exception:  # pylint: disable=broad-except  (a private module: absent in some version)
    return False


def apply() -> dict[str, bool]:
  """Adds the options to XLA_FLAGS where appropriate; returns which of them XLA_FLAGS now carries
  (``ynn_convolutions_off``, ``gpu_deterministic``)."""
  flags = os.environ.get("XLA_FLAGS", "")
  ours = os.environ.get("JAXDISENT_XLA_DEFAULTS", "") in ("", "0")
  added = []
  if "xla_cpu_experimental_ynn_fusion_type" not in flags and ours and (
      _jaxlib_version().startswith("0.10.")):
    added.append(YNN_CONVOLUTIONS_OFF)
  if "xla_gpu_deterministic_ops" not in flags and ours:
    added.append(GPU_DETERMINISTIC)
  if added:
    flags = " ".join([flags, *added]).strip()
    os.environ["XLA_FLAGS"] = flags
    if _backend_started():
      print(f"[jaxdisent] note: JAX started its backend before jaxdisent was imported, so "
            f"{' '.join(added)} does not apply in this process; import jaxdisent before the "
            "first JAX computation (or set XLA_FLAGS yourself)", file=sys.stderr)
  return {"ynn_convolutions_off": YNN_CONVOLUTIONS_OFF in flags.split(),
          "gpu_deterministic": GPU_DETERMINISTIC in flags.split()}
