"""Evaluator of DecAlign: MMSA sentiment metrics (and factor probes on synthetic data)."""

from __future__ import annotations

import numpy as np

from jaxdisent.evals.base import register
from jaxdisent.metrics import multimodal as MM
from jaxdisent.evals.disentanglement import _split_scalars


def sentiment_scores(method, state, split: str = "test", batch_size: int = 256) -> dict:
  """DecAlign's task metrics on a split (MMSA's), unique/common cos^2 and, on synthetic data, the
  factor probes."""
  data = method.data.split(split)
  feats = method.features(state.params, data, batch_size)
  out = {"split": split, "num_examples": int(data["label"].shape[0])}
  if method.config.loss.task == "regression":
    out.update(MM.sentiment_regression_metrics(feats["output"].reshape(-1), data["label"]))
  else:
    out["accuracy"] = float(np.mean(np.argmax(feats["output"], -1) == data["label"]))
    out.update(MM.emotion_classification_metrics(feats["output"], data["label"]))  # wacc, waf1, ua
  cos = [np.sum(u * c, -1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(c, axis=-1), 1e-8)
         for u, c in zip(feats["unique"], feats["common"])]
  out["unique_common_cos2"] = float(np.mean(np.square(np.concatenate(cos))))
  if "common" in data:  # synthetic ground truth: linear probes fitted on `valid`, scored on `split`
    out.update(method.factor_probes(state.params, data, feats, batch_size))
  return out


@register("sentiment")
def sentiment(ctx, settings) -> dict:
  """MAE, Corr, Acc-2 / F1 (non-zero and has-0), Acc-7 on a split; linear-probe R^2 on synthetic data.

  Settings: split (test), batch_size (256).
  """
  split = settings.get("split", "test")
  if split not in ("train", "valid", "test"):
    raise ValueError(f"evals.sentiment.split={split!r}: use train, valid or test")
  results = sentiment_scores(ctx.method, ctx.state, split, int(settings.get("batch_size", 256)))
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
