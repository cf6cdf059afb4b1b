"""jaxdisent: disentangled and multimodal representation learning in JAX."""

from jaxdisent import xla_cpu_flags as _xla_cpu_flags

_xla_cpu_flags.apply()  # before JAX creates its CPU client; see jaxdisent/xla_cpu_flags.py

__version__ = "0.1.0"
