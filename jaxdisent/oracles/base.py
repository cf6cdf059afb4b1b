"""Relation oracles: one small protocol, ``score(batch) -> Scores`` (an N x A matrix + validity mask).

An oracle scores named attributes of images on a 0-10 scale (the scale we ask a multimodal LLM
for; our choice, GEM does not publish its scale). ``valid[n, a]`` is False where the oracle gave
no usable answer (missing attribute, malformed reply); the score there is NaN and ignored.
``Scores`` refuses (ValueError) duplicate attribute names, valid scores that are NaN/inf and valid
scores outside [0, ``SCALE_MAX``] (the bounds included; no tolerance, so rescale before building it).

Kinds (``oracle.kind``): ``simulated`` (scores from the true factors, degraded; the default),
``labels`` (attribute columns of the dataset), ``truth`` (the labels' scores, and the data's own
true graph as the relation prior: the "GEM given the true graph" control), ``statistical`` (no external knowledge: relations come
from the model's own codes during training), ``chat`` (an OpenAI-compatible chat-completions
server; run as its own stage by ``launch/oracle.py``, training reads the cached scores file).

Scores files (``.npz``) written by ``launch/oracle.py`` hold ``pool_index`` (N,), ``scores``
(N, A) float32 (NaN where invalid), ``valid`` (N, A) bool, ``attributes`` (A,) str and a JSON
``meta`` string with the dataset fingerprint, oracle kind and model / prompt hashes. Training
refuses a file whose fingerprint or attributes do not match its dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

SCALE_MAX = 10.0


@dataclasses.dataclass
class Scores:
  """Attribute scores of N images: ``scores`` (N, A) float32 (NaN where invalid), ``valid`` (N, A)."""

  scores: np.ndarray
  valid: np.ndarray
  attributes: tuple[str, ...]
  pool_index: np.ndarray | None = None
  meta: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.scores = np.asarray(self.scores, np.float32)
    self.valid = np.asarray(self.valid, bool)
    self.attributes = tuple(str(a) for a in self.attributes)
    if self.scores.ndim != 2 or self.scores.shape != self.valid.shape:
      raise ValueError(f"scores {self.scores.shape} and valid {self.valid.shape} must be equal "
                       "(N, A) matrices")
    if self.scores.shape[1] != len(self.attributes):
      raise ValueError(f"scores have {self.scores.shape[1]} columns but {len(self.attributes)} "
                       f"attribute names {list(self.attributes)}")
    repeated = sorted({a for a in self.attributes if self.attributes.count(a) > 1})
    if repeated:
      raise ValueError(f"attribute name(s) {repeated} appear more than once in "
                       f"{list(self.attributes)}; each column needs its own name (drop or rename "
                       "the duplicates)")
    if self.pool_index is not None:
      self.pool_index = np.asarray(self.pool_index, np.int64)
      if self.pool_index.shape != (self.scores.shape[0],):
        raise ValueError(f"pool_index has shape {self.pool_index.shape}; expected "
                         f"({self.scores.shape[0]},)")
    bad = self.valid & ~np.isfinite(self.scores)
    if bad.any():
      n, a = np.argwhere(bad)[0]
      raise ValueError(f"{int(bad.sum())} score(s) marked valid are NaN/inf (first: row {n}, "
                       f"attribute {self.attributes[a]!r}); mark them invalid (valid=False) or fix "
                       "the scores")
    outside = self.valid & ((self.scores < 0.0) | (self.scores > SCALE_MAX))
    if outside.any():
      n, a = np.argwhere(outside)[0]
      raise ValueError(f"{int(outside.sum())} valid score(s) lie outside the 0-{SCALE_MAX:g} scale "
                       f"(first: row {n}, attribute {self.attributes[a]!r} = "
                       f"{float(self.scores[n, a]):g}); rescale them to 0-{SCALE_MAX:g} or mark "
                       "them invalid (valid=False)")
    self.scores = np.where(self.valid, self.scores, np.nan).astype(np.float32)

  @property
  def answer_rate(self) -> float:
    return float(self.valid.mean()) if self.valid.size else 0.0

  def save(self, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, scores=self.scores, valid=self.valid, attributes=np.array(self.attributes),
             pool_index=(self.pool_index if self.pool_index is not None
                         else np.arange(len(self.scores))),
             meta=np.array(json.dumps(self.meta, sort_keys=True)))
    os.replace(tmp, path)
    return path


def load_scores(path: str, *, attributes=None, fingerprint: str | None = None,
                pool_size: int | None = None) -> Scores:
  """Read a scores file; check it against the dataset that will use it."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"scores file {path!r} does not exist; write it first with "
                            "`python -m launch.oracle --config=... --out=PATH`")
  try:
    with np.load(path, allow_pickle=False) as data:
      scores = Scores(data["scores"], data["valid"], tuple(data["attributes"].tolist()),
                      data["pool_index"], json.loads(str(data["meta"])))
  except (KeyError, ValueError, OSError) as error:
    raise ValueError(f"{path} is not a readable scores file ({error}); rewrite it with "
                     "launch.oracle") from error
  if fingerprint is not None and scores.meta.get("dataset_fingerprint") != fingerprint:
    raise ValueError(
        f"scores file {path} was written for dataset {scores.meta.get('dataset')!r} with "
        f"fingerprint {scores.meta.get('dataset_fingerprint')!r}, but this run's dataset has "
        f"fingerprint {fingerprint!r} (different source or settings); re-run launch.oracle for "
        "this dataset")
  if attributes is not None and tuple(attributes) != scores.attributes:
    raise ValueError(f"scores file {path} scores attributes {list(scores.attributes)}, but the "
                     f"run expects {list(attributes)}; re-run launch.oracle with these attributes")
  if pool_size is not None and len(scores.pool_index) and (
      scores.pool_index.min() < 0 or scores.pool_index.max() >= pool_size):
    raise ValueError(f"scores file {path} indexes images up to {scores.pool_index.max()}, but the "
                     f"dataset has {pool_size}; it was written for another dataset")
  return scores


def check_attribute_names(requested, known) -> list[int]:
  """Column positions of `requested` attribute names in `known`; unknown names are an error."""
  known = list(known)
  unknown = [a for a in requested if a not in known]
  if unknown:
    raise ValueError(f"unknown attribute name(s) {unknown}; this dataset has {known}")
  return [known.index(a) for a in requested]
