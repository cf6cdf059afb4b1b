"""Methods: one module per method wiring data + model + loss for the shared loop.

``config.method = "<name>"`` names the module ``jaxdisent.methods.<name>``, which exposes its
Method subclass as ``METHOD``. A new method is a new module (and its config); nothing here changes.
"""

import importlib
import pkgutil

from jaxdisent.methods.base import Method

# Modules in this package that are not trainable methods.
_NOT_METHODS = {"base"}


def available() -> list[str]:
  """Names usable as config.method."""
  return sorted(m.name for m in pkgutil.iter_modules(__path__)
                if m.name not in _NOT_METHODS and not m.name.startswith("_"))


def method_class(name: str) -> type:
  if name == "alignment_study":  # configs/alignment_emergence.py: a study, not a method
    raise ValueError("method 'alignment_study' is a study of many small models with its own runner "
                     "(jaxdisent.studies.alignment_emergence): python -m launch.alignment_study "
                     "--config=... --workdir=...")
  if not isinstance(name, str) or name not in available():
    raise ValueError(f"unknown method {name!r}; known: {available()}")
  module = importlib.import_module(f"jaxdisent.methods.{name}")
  cls = getattr(module, "METHOD", None)
  if cls is None:
    raise ValueError(f"jaxdisent.methods.{name} defines no METHOD (its Method subclass)")
  return cls


def make_method(config) -> Method:
  return method_class(config.method)(config)


__all__ = ["Method", "available", "make_method", "method_class"]
