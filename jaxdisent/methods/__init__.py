"""Methods: one module per method wiring data + model + loss for the shared loop."""

from jaxdisent.methods.base import Method


def _beta_vae():
  from jaxdisent.methods.beta_vae import BetaVAEMethod
  return BetaVAEMethod


def _sae():
  from jaxdisent.methods.sae import SAEMethod
  return SAEMethod


def _decalign():
  from jaxdisent.methods.decalign import DecAlignMethod
  return DecAlignMethod


REGISTRY = {"beta_vae": _beta_vae, "sae": _sae, "decalign": _decalign}
REGISTRY["gem"] = lambda: __import__("jaxdisent.methods.gem", fromlist=["GEMMethod"]).GEMMethod


def make_method(config) -> Method:
  name = config.method
  if name not in REGISTRY:
    raise ValueError(f"unknown method {name!r}; known: {sorted(REGISTRY)}")
  return REGISTRY[name]()(config)


__all__ = ["Method", "REGISTRY", "make_method"]
