"""Relation oracles and the relation estimator (see ``jaxdisent.oracles.base`` for the protocol and the scores file).

:func:`make_oracle_view` turns ``config.oracle`` into what training needs: the attribute names the
oracle scores, the relation prior (A x A, from the oracle's scores of ``oracle.num_images`` pool
images, or from ``oracle.scores_path``), and a jit-friendly way to attach scores to a batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import numpy as np

from jaxdisent.oracles.base import Scores, check_attribute_names, load_scores
from jaxdisent.oracles.corrupt import CORRUPTIONS, corrupt_prior
from jaxdisent.oracles.relations import (check_scores, directed_relations, greedy_assignment,
                                         hungarian_assignment, pairwise_correlation, rank_relations,
                                         relations_from_correlation)
from jaxdisent.oracles.simulated import SimulatedOracle, simulated_scores
from jaxdisent.oracles.notears import notears_linear  # the standalone structure learner

KINDS = ("simulated", "labels", "truth", "statistical", "chat")


def attribute_subset(source, oracle_config) -> list[str]:
  text = oracle_config.get("attributes", "") or ""
  names = [t.strip() for t in text.split(",") if t.strip()] or list(source.attribute_names)
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"oracle.attributes={text!r} names {repeated} more than once; list each "
                     "attribute once")
  check_attribute_names(names, source.attribute_names)
  return names


def oracle_scores(source, oracle_config, pool_index) -> Scores:
  """Scores of pool images by the oracle named in the config (simulated / labels), host side."""
  kind = oracle_config.kind
  columns = check_attribute_names(attribute_subset(source, oracle_config), source.attribute_names)
  if kind == "simulated":
    full = SimulatedOracle.from_config(source, oracle_config).score_indices(pool_index)
  elif kind in ("labels", "truth"):
    index = source.check_index(pool_index)
    values = np.asarray(source.pool_values(index))
    full = Scores(10.0 * values, np.isfinite(values), source.attribute_names, index,
                  {"oracle": "labels"})
  else:
    raise ValueError(f"oracle.kind={kind!r} has no in-process scorer; the chat oracle runs as its "
                     "own stage: python -m launch.oracle --config=... --out=scores.npz, then "
                     "--config.oracle.scores_path=scores.npz")
  names = [source.attribute_names[c] for c in columns]
  meta = dict(full.meta, dataset=source.name, dataset_fingerprint=source.fingerprint())
  return Scores(full.scores[:, columns], full.valid[:, columns], names, full.pool_index, meta)


@dataclasses.dataclass
class OracleView:
  kind: str
  attributes: list                      # names the oracle scores (A)
  columns: list                         # their columns in the source's values
  relations: np.ndarray | None          # (A, A) relation prior, max-normalised; None: statistical
  scored_index: np.ndarray | None       # pool indices with scores from a file (training draws these)
  batch_scores: Callable | None         # (values_BxK, pool_index_B, row_B) -> (scores, valid)


def make_oracle_view(source, oracle_config) -> OracleView:
  kind = oracle_config.get("kind", "simulated")
  if kind not in KINDS:
    raise ValueError(f"unknown oracle.kind {kind!r}; use one of {KINDS}")
  names = attribute_subset(source, oracle_config)
  columns = check_attribute_names(names, source.attribute_names)
  path = oracle_config.get("scores_path", "") or ""
  ridge, gain = float(oracle_config.get("ridge", 1e-3)), float(oracle_config.get("gain", 2.0))
  basis = oracle_config.get("basis", "poly")
  if kind == "statistical":
    return OracleView(kind, names, columns, None, None, None)
  if path:
    scores = load_scores(path, attributes=names, fingerprint=source.fingerprint(),
                         pool_size=source.pool_size)
    table = jnp.asarray(np.nan_to_num(scores.scores), jnp.float32)
    mask = jnp.asarray(scores.valid)

    def from_file(values, pool_index, row):
      del values, pool_index
      return table[row], mask[row]
    relations = directed_relations(scores.scores, scores.valid, ridge, gain, names=names, basis=basis)
    return OracleView(kind, names, columns, _normalise(relations), scores.pool_index, from_file)
  if kind == "chat":
    raise ValueError("oracle.kind='chat' needs oracle.scores_path: run the chat oracle as its own "
                     "stage first (python -m launch.oracle --config=... --out=PATH)")
  if kind == "truth":  # the control "GEM given the true graph": the data's own adjacency as prior
    truth = source.true_adjacency()
    if truth is None:
      raise ValueError(f"oracle.kind='truth' needs data with a known graph; {source.name} has none "
                       "(use simulated, labels or a chat scores file)")
    relations = np.abs(np.asarray(truth, np.float64)[np.ix_(columns, columns)])
  else:
    count = min(int(oracle_config.get("num_images", 4000)), source.pool_size)
    scores = oracle_scores(source, oracle_config, np.arange(count))
    relations = directed_relations(scores.scores, scores.valid, ridge, gain, names=names,
                                   basis=basis)
  if kind == "simulated":
    settings = SimulatedOracle.from_config(source, oracle_config).settings

    def simulated(values, pool_index, row):
      del row
      s, v = simulated_scores(values, pool_index, **settings)  # same draws as the prior's
      cols = jnp.asarray(columns)
      return jnp.nan_to_num(s[:, cols]), v[:, cols]
    fn = simulated
  else:  # labels, truth: nodes are matched to the exact attribute values

    def labels(values, pool_index, row):
      del pool_index, row
      v = values[:, jnp.asarray(columns)]
      return 10.0 * v, jnp.ones_like(v, bool)
    fn = labels
  return OracleView(kind, names, columns, _normalise(relations), None, fn)


def _normalise(relations):
  top = float(np.max(relations))
  return (relations / top if top > 0 else relations).astype(np.float32)


__all__ = ["KINDS", "OracleView", "Scores", "SimulatedOracle", "load_scores", "make_oracle_view",
           "oracle_scores", "attribute_subset"]
__all__ += ["notears_linear"]
# Relation estimation from scores, node-to-attribute matching, and prior corruption.
__all__ += ["CORRUPTIONS", "corrupt_prior", "check_scores", "directed_relations", "greedy_assignment",
            "hungarian_assignment", "pairwise_correlation", "rank_relations",
            "relations_from_correlation"]
