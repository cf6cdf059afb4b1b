"""The train state every method shares."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue exactly: the data and noise are functions of `step`.

  ``model_state`` holds a method's non-gradient state (e.g. an SAE's inference threshold);
  ``nonfinite_step`` is the first step whose loss was NaN/inf, or -1, tracked on device so the
  loop need not synchronise every step to notice it.
  """

  step: jnp.ndarray
  params: Any
  opt_state: Any
  model_state: Any
  nonfinite_step: jnp.ndarray

  @classmethod
  def create(cls, params, opt_state, model_state=None):
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
               model_state={} if model_state is None else model_state,
               nonfinite_step=jnp.full((), -1, jnp.int32))
