"""What the training loop asks of a method."""

from __future__ import annotations

import optax


class Method:
  """A method wires data + model + loss for the loop. Subclasses implement the four hooks below.

  * ``init(rng) -> (params, model_state)``
  * ``local_batch(seed, step, start, size) -> dict`` examples [start, start+size) of the global
    batch of `step`; a pure function of its arguments so resume is exact
  * ``loss(params, model_state, batch, rng, step, axis_name) -> (loss, (metrics, model_state))``;
    runs per device, `axis_name` names the data axis for methods that need batch-wide statistics
  * ``finalize(state, workdir, log)`` end-of-run plots (evaluation belongs to the evaluators in
    ``jaxdisent/evals``, named by ``evaluators``)
  """

  name = "method"
  evaluators: tuple[str, ...] = ()  # names registered in jaxdisent.evals that fit this method

  def __init__(self, config):
    self.config = config

  def learning_rate(self) -> float:
    return float(self.config.optimizer.learning_rate)

  def optimizer(self) -> optax.GradientTransformation:
    opt = self.config.optimizer
    schedule = self.learning_rate()
    if opt.get("warmup_steps", 0):
      schedule = optax.linear_schedule(0.0, self.learning_rate(), opt.warmup_steps)
    chain = []
    if opt.get("grad_clip_norm", 0):
      chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
    chain.append(optax.adam(schedule, b1=opt.get("b1", 0.9), b2=opt.get("b2", 0.999),
                            eps=opt.get("eps", 1e-8)))
    return optax.chain(*chain)

  def init(self, rng):
    raise NotImplementedError

  def local_batch(self, seed, step, start, size):
    raise NotImplementedError

  def loss(self, params, model_state, batch, rng, step, axis_name=None):
    raise NotImplementedError

  def transform_grads(self, grads, params):
    return grads

  def post_update(self, params):
    return params

  def finalize(self, state, workdir, log=print):
    del state, workdir, log
