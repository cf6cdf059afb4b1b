"""Config blocks every method shares, so each key means one thing in every config.

Vocabulary (docs/configs.md): ``data.source`` + ``data.path``; ``model.kind`` for architecture
variants; ``loss.<term>_weight`` for loss weights (the beta-VAE family keeps the literature's
``loss.beta``); ``train.num_steps``; ``optimizer.learning_rate``; tuples for lists; ``None`` for
"automatic".
"""

import ml_collections


def optimizer(learning_rate: float, *, warmup_steps: int = 0, grad_clip_norm: float = 0.0,
              b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> ml_collections.ConfigDict:
  """Adam (+ optional linear warmup and global-norm clipping); see Method.optimizer."""
  return ml_collections.ConfigDict(dict(
      learning_rate=learning_rate, b1=b1, b2=b2, eps=eps, warmup_steps=warmup_steps,
      grad_clip_norm=grad_clip_norm))


def train(*, num_steps: int, batch_size: int, log_every: int, checkpoint_every: int,
          keep_checkpoints: int = 3, eval_every: int = 0) -> ml_collections.ConfigDict:
  """The engine's loop settings (jaxdisent/train/loop.py)."""
  return ml_collections.ConfigDict(dict(
      num_steps=num_steps, batch_size=batch_size, log_every=log_every,
      checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
      parallel="shard_map",     # or pmap (the same per-device step)
      distributed=False,        # call jax.distributed.initialize() (multi-process / multi-host)
      eval_every=eval_every,    # also run the evaluators every N steps (0: only at the end)
      eval_at_end=True,         # run the evaluators when training finishes
      plots_at_end=True,        # draw the method's end-of-run plots (Method.finalize)
      compute_dtype="float32"))  # or bfloat16: matmuls/convs in bf16, params/optimizer f32
