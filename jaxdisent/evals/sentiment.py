"""Evaluator of DecAlign: MMSA sentiment metrics (and factor probes on synthetic data)."""

from __future__ import annotations

from jaxdisent.evals.base import register
from jaxdisent.evals.disentanglement import _split_scalars


@register("sentiment")
def sentiment(ctx, settings) -> dict:
  """MAE, Corr, Acc-2 / F1 (non-zero and has-0), Acc-7 on a split; linear-probe R^2 on synthetic data.

  Settings: split (test), batch_size (256).
  """
  split = settings.get("split", "test")
  if split not in ("train", "valid", "test"):
    raise ValueError(f"evals.sentiment.split={split!r}: use train, valid or test")
  results = ctx.method.evaluate(ctx.state, split, int(settings.get("batch_size", 256)))
  results.pop("split", None)
  return _split_scalars(results, ctx.out_dir, "details.json")
