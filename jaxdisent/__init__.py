"""jaxdisent: disentangled and multimodal representation learning in JAX."""

from jaxdisent import xla_flags as _xla_flags

_xla_flags.apply()  # before JAX creates its client; see jaxdisent/xla_flags.py

__version__ = "0.1.0"
