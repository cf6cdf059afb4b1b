"""flax.linen modules."""

import functools

import jax


@functools.partial(jax.jit, static_argnums=0)
def jit_init(module, rng, *inputs):
  """``module.init(rng, *inputs)`` as one compiled program, compiled once per module definition.

  Eager flax init runs op by op (about 200 small compilations for the VAE); ``jax.jit(module.init)``
  would compile again for every method object, since each has its own bound method. flax modules
  are frozen dataclasses, hashable and equal when their fields are, so the module is a static
  argument here and equal modules (the cells of a sweep, a resumed run) share the program.
  """
  return module.init(rng, *inputs)
