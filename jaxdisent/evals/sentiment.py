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


@register("decalign")
def decalign_diagnostics(ctx, settings) -> dict:
  """DecAlign's representation diagnostics, logged at every evaluation (issue 23):

  * ``unique_norm`` / ``common_norm``: mean L2 norm of the pooled unique / common features (a
    heterogeneity term paid by shrinking shows as a falling unique_norm);
  * ``head_std``: mean per-dimension std of the homogeneity heads' outputs (collapse -> 0);
  * ``unique_common_cos2``; on synthetic data the probes ``probe_unique_to_common`` (must drop if
    decoupling decouples), ``probe_common_to_common``, ... (ridge probes fit on valid);
  * ``valid_<metric>``: the task metric on the valid split (mae for regression, waf1 for
    classification), which early stopping / model selection reads.

  Settings: split (test), batch_size (256).
  """
  split = settings.get("split", "test")
  if split not in ("train", "valid", "test"):
    raise ValueError(f"evals.decalign.split={split!r}: use train, valid or test")
  results = ctx.method.diagnostics(ctx.state, split, int(settings.get("batch_size", 256)))
  return _split_scalars(results, ctx.out_dir, "decalign_details.json")
