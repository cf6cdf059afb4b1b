"""Measures of sparse dictionaries on (paired) embeddings. Pure functions on arrays.

Definitions ([bussmann2024], [papadimitriou2025], [yan2025] in docs/references.md):

* ``fvu``: sum ||x - x_hat||^2 / sum ||x - mean x||^2; R^2 = 1 - FVU.
* ``l0``: mean number of non-zero codes per sample; ``dead_fraction``: latents that never fire on
  the sample; ``dense_fraction``: latents firing on more than ``dense_threshold`` of samples.
* ``concept_recovery``: mean over true atoms of the max cosine with any learned atom.
* ``stability``: Hungarian matching of two dictionaries' atoms on |cosine|, mean matched cosine.
* ``energy``: E[z_i] over all samples (images and texts together).
* ``modality_score``: E_img[z_i] / (E_img[z_i] + E_txt[z_i]) (1 = image-only, 0 = text-only).
* ``bridge_scores``: E over pairs of z_img z_txt^T, elementwise times D D^T (atom cosines).
* ``modality_dominance``: MDS_i = (E_img z_i - E_txt z_i) / (E_img z_i + E_txt z_i) in [-1, 1];
  image-dominant above the upper cut-off, text-dominant below the lower, cross-modal between.
  Default cut-offs are fixed at -0.6 / +0.6 (one side fires >= 4x the other). ``cutoffs='std'``
  gives the paper's mean +- one std over live features; on strongly bimodal MDS distributions
  (common: most features fire for one modality) that puts the upper cut-off above 1, so nothing
  can be image-dominant, which is why it is not the default.
* ``monosemanticity``: for each feature, the mean pairwise cosine of the input embeddings of its
  top-``top_n`` (20) activating samples, minus the same for random samples; the win rate is the
  fraction of live features whose top set is more coherent than the random baseline.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from scipy.optimize import linear_sum_assignment


def _np(x, name, ndim=2):
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != ndim:
    raise ValueError(f"{name} must have {ndim} dimensions; got shape {x.shape}")
  return x


def fvu(x_NxD, x_hat_NxD) -> float:
  x, x_hat = _np(x_NxD, "x"), _np(x_hat_NxD, "x_hat")
  if x.shape != x_hat.shape:
    raise ValueError(f"x and x_hat shapes differ: {x.shape} vs {x_hat.shape}")
  return float(np.sum((x - x_hat) ** 2) / max(np.sum((x - x.mean(0)) ** 2), 1e-30))


def r2(x_NxD, x_hat_NxD) -> float:
  return 1.0 - fvu(x_NxD, x_hat_NxD)


def l0(codes_NxM) -> float:
  return float(np.mean(np.sum(np.asarray(codes_NxM) != 0, axis=1)))


def firing_rates(codes_NxM) -> np.ndarray:
  return np.mean(np.asarray(codes_NxM) != 0, axis=0)


def dead_fraction(codes_NxM) -> float:
  return float(np.mean(firing_rates(codes_NxM) == 0))


def dense_fraction(codes_NxM, dense_threshold: float = 0.1) -> float:
  return float(np.mean(firing_rates(codes_NxM) > dense_threshold))


def _unit_rows(a):
  a = np.asarray(a, dtype=np.float64)
  return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def concept_recovery(true_atoms_CxD, learned_atoms_MxD) -> dict:
  """Mean (and per-concept) max cosine between each planted atom and the learned atoms."""
  cos = _unit_rows(true_atoms_CxD) @ _unit_rows(learned_atoms_MxD).T
  best = cos.max(axis=1)
  return {"mean_max_cosine": float(best.mean()), "per_concept": best,
          "best_atom": cos.argmax(axis=1), "recovered_fraction_0.9": float(np.mean(best > 0.9))}


def stability(atoms_a_MxD, atoms_b_MxD) -> dict:
  """Hungarian matching on |cosine| of two dictionaries; mean matched cosine and per-atom values
  (indexed by dictionary a's atoms)."""
  cos = np.abs(_unit_rows(atoms_a_MxD) @ _unit_rows(atoms_b_MxD).T)
  rows, cols = linear_sum_assignment(-cos)
  matched = np.zeros(cos.shape[0])
  matched[rows] = cos[rows, cols]
  return {"mean_matched_cosine": float(cos[rows, cols].mean()), "per_atom": matched,
          "match": dict(zip(rows.tolist(), cols.tolist()))}


def energy(codes_NxM) -> np.ndarray:
  return np.asarray(codes_NxM, dtype=np.float64).mean(axis=0)


def modality_score(image_codes_NxM, text_codes_NxM) -> np.ndarray:
  """E_img[z] / (E_img[z] + E_txt[z]); NaN for features that never fire."""
  e_img, e_txt = energy(image_codes_NxM), energy(text_codes_NxM)
  total = e_img + e_txt
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(total > 0, e_img / total, np.nan)


def bridge_scores(image_codes_NxM, text_codes_NxM, atoms_MxD) -> np.ndarray:
  """E_pairs[z_img z_txt^T] * (D D^T): large for (i, j) co-firing across a pair with aligned atoms."""
  zi = jnp.asarray(image_codes_NxM, jnp.float32)
  zt = jnp.asarray(text_codes_NxM, jnp.float32)
  if zi.shape != zt.shape:
    raise ValueError(f"paired codes must have the same shape; got {zi.shape} and {zt.shape}")
  atoms = jnp.asarray(atoms_MxD, jnp.float32)
  co = jnp.dot(zi.T, zt, precision=jax.lax.Precision.HIGHEST) / zi.shape[0]
  return np.array(co * jnp.dot(atoms, atoms.T, precision=jax.lax.Precision.HIGHEST))


def modality_dominance(image_codes_NxM, text_codes_NxM, cutoffs=(-0.6, 0.6)) -> dict:
  e_img, e_txt = energy(image_codes_NxM), energy(text_codes_NxM)
  total = e_img + e_txt
  live = total > 0
  with np.errstate(invalid="ignore", divide="ignore"):
    mds = np.where(live, (e_img - e_txt) / total, np.nan)
  if isinstance(cutoffs, str):
    if cutoffs != "std":
      raise ValueError("cutoffs must be 'std' or a (low, high) pair")
    mean, std = float(np.nanmean(mds)), float(np.nanstd(mds))
    low, high = mean - std, mean + std
  else:
    low, high = (float(c) for c in cutoffs)
  label = np.full(mds.shape, "dead", dtype=object)
  label[live] = "cross-modal"
  label[live & (mds > high)] = "image-dominant"
  label[live & (mds < low)] = "text-dominant"
  return {"mds": mds, "label": label, "cutoffs": (low, high),
          "counts": {k: int(np.sum(label == k)) for k in
                     ("image-dominant", "text-dominant", "cross-modal", "dead")}}


def monosemanticity(codes_NxM, inputs_NxD, top_n: int = 20, seed: int = 0) -> dict:
  """Coherence of each feature's top-activating inputs vs random inputs (see module doc)."""
  codes = np.asarray(codes_NxM)
  inputs = _unit_rows(inputs_NxD)
  n = codes.shape[0]
  if n < top_n:
    raise ValueError(f"need at least top_n={top_n} samples, got {n}")

  def coherence(rows):
    e = inputs[rows]
    sims = e @ e.T
    m = len(rows)
    return (sims.sum() - np.trace(sims)) / (m * (m - 1))

  rng = np.random.default_rng(seed)
  baseline = float(np.mean([coherence(rng.choice(n, top_n, replace=False)) for _ in range(20)]))
  top = np.argsort(-codes, axis=0)[:top_n].T          # M x top_n
  live = (codes > 0).sum(axis=0) >= top_n
  scores = np.full(codes.shape[1], np.nan)
  for i in np.nonzero(live)[0]:
    scores[i] = coherence(top[i]) - baseline
  return {"score": scores, "mean_score": float(np.nanmean(scores)) if live.any() else float("nan"),
          "win_rate": float(np.mean(scores[live] > 0)) if live.any() else float("nan"),
          "baseline_coherence": baseline, "top_samples": top}
