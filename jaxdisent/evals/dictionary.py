"""Evaluator of sparse autoencoders: the dictionary measures on held-out embeddings."""

from __future__ import annotations

from jaxdisent.evals.base import register
from jaxdisent.evals.disentanglement import _split_scalars


@register("dictionary")
def dictionary(ctx, settings) -> dict:
  """FVU, R^2, L0, dead/dense fractions (+ planted-concept recovery and MDS counts on synthetic data).

  Settings: num_pairs (held-out pairs / rows, default 4096), seed offset ``data_seed`` (1234).
  """
  num_pairs = int(settings.get("num_pairs", 4096))
  if num_pairs < 2:
    raise ValueError(f"evals.dictionary.num_pairs={num_pairs} must be >= 2")
  results = ctx.method.evaluate(ctx.state, num_pairs=num_pairs,
                                seed=int(settings.get("data_seed", 1234)))
  results.pop("kind", None)
  counts = results.pop("mds_counts", None)
  if isinstance(counts, dict):
    results.update({f"mds_{name}": value for name, value in counts.items()})
  return _split_scalars(results, ctx.out_dir, "details.json")
