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

``*_core`` functions are pure JAX (jit / vmap; ``top_n`` static); the plain names are validating
host wrappers (float for one number, dict for several, NumPy arrays for per-feature values) that
run the cores in float64 as the NumPy code they replace did. ``fvu`` is the training loss's
``losses.sae.fraction_of_variance_unexplained`` (one FVU for training logs and evaluation).
``stability`` stays host-only: Hungarian matching is a combinatorial assignment (its cosine matrix
is ``atom_cosines_core``). Paired measures (modality score, bridge scores, MDS) need image and
text codes of the same shape, row i of each describing pair i.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy  # submodules load on first use (SciPy's lazy loading): a shorter start-up

from jaxdisent.losses.sae import fraction_of_variance_unexplained
from jaxdisent.metrics import _host

_HIGHEST = jax.lax.Precision.HIGHEST
MDS_CLASSES = ("image-dominant", "text-dominant", "cross-modal", "dead")


# ---- JAX cores -----------------------------------------------------------------------------------

@jax.jit
def fvu_core(x_NxD, x_hat_NxD):
  """FVU = sum ||x - x_hat||^2 / sum ||x - mean x||^2 (the SAE training loss's function).

  References: [bussmann2024] (code: saprmarks/dictionary_learning).

  Args:
    x_NxD: (N, D) real array of inputs.
    x_hat_NxD: (N, D) real array of reconstructions.

  Returns:
    0-d float array (the inputs' float dtype): FVU >= 0 (0 for a perfect reconstruction; the
    denominator is floored at 1e-12).
  """
  return fraction_of_variance_unexplained(x_NxD, x_hat_NxD)


@jax.jit
def r2_core(x_NxD, x_hat_NxD):
  """R^2 = 1 - FVU (see ``fvu_core``).

  Args:
    x_NxD: (N, D) real array of inputs.
    x_hat_NxD: (N, D) real array of reconstructions.

  Returns:
    0-d float array (the inputs' float dtype): R^2 <= 1.
  """
  return 1.0 - fvu_core(x_NxD, x_hat_NxD)


@jax.jit
def firing_rates_core(codes_NxM):
  """The fraction of samples on which each latent is non-zero.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents.

  Returns:
    (M,) float array (float64 under ``jax_enable_x64``, else float32) in [0, 1].
  """
  return jnp.mean(codes_NxM != 0, axis=0, dtype=jnp.result_type(float))


@jax.jit
def l0_core(codes_NxM):
  """L0: the mean number of non-zero latents per sample.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents.

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32) in [0, M].
  """
  return jnp.mean(jnp.sum(codes_NxM != 0, axis=1), dtype=jnp.result_type(float))


@jax.jit
def dead_fraction_core(codes_NxM):
  """The fraction of latents that are zero on every sample.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents.

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32) in [0, 1].
  """
  return jnp.mean(firing_rates_core(codes_NxM) == 0, dtype=jnp.result_type(float))


@jax.jit
def dense_fraction_core(codes_NxM, dense_threshold=0.1):
  """The fraction of latents whose firing rate exceeds ``dense_threshold``.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents.
    dense_threshold: float firing rate in [0, 1] (may be traced).

  Returns:
    0-d float array (float64 under ``jax_enable_x64``, else float32) in [0, 1].
  """
  return jnp.mean(firing_rates_core(codes_NxM) > dense_threshold, dtype=jnp.result_type(float))


def _unit_rows(a):
  a = jnp.asarray(a, jnp.result_type(float))
  return a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), 1e-12)


@jax.jit
def atom_cosines_core(atoms_a_MxD, atoms_b_KxD):
  """(M, K) cosines between the rows of two dictionaries.

  Args:
    atoms_a_MxD: (M, D) real array, one atom per row.
    atoms_b_KxD: (K, D) real array, one atom per row, same D.

  Returns:
    (M, K) float array (float64 under ``jax_enable_x64``, else float32) of cosines
    (0 against an all-zero row).
  """
  return jnp.dot(_unit_rows(atoms_a_MxD), _unit_rows(atoms_b_KxD).T, precision=_HIGHEST)


@jax.jit
def concept_recovery_core(true_atoms_CxD, learned_atoms_MxD):
  """Max cosine of each planted atom with the learned atoms (see ``concept_recovery``).

  Args:
    true_atoms_CxD: (C, D) real array, the planted atoms (one per row).
    learned_atoms_MxD: (M, D) real array, the learned dictionary's atoms (one per row).

  Returns:
    dict with keys ``"mean_max_cosine"``: 0-d float array; ``"per_concept"``: (C,) float array of
    each planted atom's max cosine; ``"best_atom"``: (C,) int array, the index of that learned
    atom; ``"recovered_fraction_0.9"``: 0-d float array, the fraction of planted atoms with max
    cosine > 0.9. Floats are float64 under ``jax_enable_x64``, else float32.
  """
  cos = atom_cosines_core(true_atoms_CxD, learned_atoms_MxD)
  best = cos.max(axis=1)
  return {"mean_max_cosine": best.mean(), "per_concept": best, "best_atom": cos.argmax(axis=1),
          "recovered_fraction_0.9": jnp.mean(best > 0.9, dtype=best.dtype)}


@jax.jit
def energy_core(codes_NxM):
  """E[z_i]: the mean activation of each latent over all samples (``energy``).

  References: [papadimitriou2025].

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents.

  Returns:
    (M,) float array (float64 under ``jax_enable_x64``, else float32).
  """
  return jnp.mean(jnp.asarray(codes_NxM, jnp.result_type(float)), axis=0)


@jax.jit
def modality_score_core(image_codes_NxM, text_codes_NxM):
  """E_img[z] / (E_img[z] + E_txt[z]); NaN for features that never fire.

  References: [papadimitriou2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations (>= 0).
    text_codes_NxM: (N, M) real array of the text embeddings' activations, row i paired
      with row i of ``image_codes_NxM``.

  Returns:
    (M,) float array (float64 under ``jax_enable_x64``, else float32) in [0, 1], NaN for
    latents that never fire.
  """
  e_img, e_txt = energy_core(image_codes_NxM), energy_core(text_codes_NxM)
  total = e_img + e_txt
  return jnp.where(total > 0, e_img / jnp.where(total > 0, total, 1.0), jnp.nan)


@jax.jit
def bridge_scores_core(image_codes_NxM, text_codes_NxM, atoms_MxD):
  """E_pairs[z_img z_txt^T] * (D D^T) in float32: large for (i, j) co-firing across a pair with
  aligned atoms.

  References: [papadimitriou2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations.
    text_codes_NxM: (N, M) real array of the text embeddings' activations, row i paired with row
      i of ``image_codes_NxM``.
    atoms_MxD: (M, D) real array, the dictionary's decoder atoms (one per latent).

  Returns:
    (M, M) float32 array; entry (i, j) pairs image latent i with text latent j.
  """
  zi = jnp.asarray(image_codes_NxM, jnp.float32)
  zt = jnp.asarray(text_codes_NxM, jnp.float32)
  atoms = jnp.asarray(atoms_MxD, jnp.float32)
  co = jnp.dot(zi.T, zt, precision=_HIGHEST) / zi.shape[0]
  return co * jnp.dot(atoms, atoms.T, precision=_HIGHEST)


@functools.partial(jax.jit, static_argnames="std_cutoffs")
def modality_dominance_core(image_codes_NxM, text_codes_NxM, cutoffs=(-0.6, 0.6),
                            std_cutoffs: bool = False):
  """MDS per feature, class index per feature (into ``MDS_CLASSES``), the cut-offs used and the
  class counts. ``std_cutoffs=True`` uses mean -+ std of the live features' MDS (``cutoffs`` is
  then ignored).

  References: [yan2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations (>= 0).
    text_codes_NxM: (N, M) real array of the text embeddings' activations, row i paired
      with row i of ``image_codes_NxM``.
    cutoffs: (low, high) pair of floats in [-1, 1] (may be traced).
    std_cutoffs: static bool, use mean -+ std of the live features' MDS instead of ``cutoffs``.

  Returns:
    dict with keys ``"mds"``: (M,) float array (float64 under ``jax_enable_x64``, else float32), NaN
    for dead latents; ``"label"``: (M,) int array of indices into ``MDS_CLASSES``;
    ``"cutoffs"``: (2,) float array (low, high); ``"counts"``: (4,) int array, latents per class
    in ``MDS_CLASSES`` order.
  """
  e_img, e_txt = energy_core(image_codes_NxM), energy_core(text_codes_NxM)
  total = e_img + e_txt
  live = total > 0
  mds = jnp.where(live, (e_img - e_txt) / jnp.where(live, total, 1.0), jnp.nan)
  if std_cutoffs:
    mean, std = jnp.nanmean(mds), jnp.nanstd(mds)
    low, high = mean - std, mean + std
  else:
    low, high = jnp.asarray(cutoffs[0], mds.dtype), jnp.asarray(cutoffs[1], mds.dtype)
  label = jnp.where(~live, 3, jnp.where(mds > high, 0, jnp.where(mds < low, 1, 2)))
  counts = jnp.sum(label[:, None] == jnp.arange(4)[None, :], axis=0)
  return {"mds": mds, "label": label, "cutoffs": jnp.stack([low, high]), "counts": counts}


@functools.partial(jax.jit, static_argnames="top_n")
def monosemanticity_core(codes_NxM, inputs_NxD, random_rows_RxT, top_n: int = 20):
  """Monosemanticity (see ``monosemanticity``); ``random_rows_RxT`` are the R random sets of
  ``top_n`` rows whose mean coherence is the baseline. Top rows are ``lax.top_k`` order (lowest
  row first among equal activations).

  References: [yan2025].

  Args:
    codes_NxM: (N, M) real array of SAE activations; a latent is live when it is > 0 on at least
      ``top_n`` samples.
    inputs_NxD: (N, D) real array of the input embeddings (rows are L2-normalised here).
    random_rows_RxT: (R, T) int array of row indices, R random sets of T >= 2 distinct rows (the
      wrapper draws R = 20 sets of T = ``top_n``).
    top_n: static int >= 2, the top-activating samples per latent.

  Returns:
    dict with keys ``"score"``: (M,) float array (float64 under ``jax_enable_x64``, else float32),
    coherence minus baseline, NaN for latents that are not live; ``"mean_score"``,
    ``"win_rate"``, ``"baseline_coherence"``: 0-d float arrays (the first two NaN without a live
    latent); ``"top_samples"``: (M, top_n) int32 array of row indices, most active first.
  """
  inputs = _unit_rows(inputs_NxD)

  def coherence(rows):
    e = inputs[rows]
    sims = jnp.dot(e, e.T, precision=_HIGHEST)
    m = rows.shape[0]
    return (sims.sum() - jnp.trace(sims)) / (m * (m - 1))

  baseline = jnp.mean(jax.vmap(coherence)(random_rows_RxT))
  top = jax.lax.top_k(jnp.asarray(codes_NxM).T, top_n)[1]                  # M x top_n
  live = jnp.sum(codes_NxM > 0, axis=0) >= top_n
  scores = jnp.where(live, jax.vmap(coherence)(top) - baseline, jnp.nan)
  any_live = jnp.any(live)
  return {"score": scores,
          "mean_score": jnp.where(any_live, jnp.nanmean(scores), jnp.nan),
          "win_rate": jnp.where(any_live, jnp.sum(live & (scores > 0)) / jnp.maximum(live.sum(), 1),
                                jnp.nan),
          "baseline_coherence": baseline, "top_samples": top}


# ---- host wrappers -------------------------------------------------------------------------------

def _codes(x, name="codes_NxM"):
  return _host.as_host_array(x, name)


def _nonnegative(codes, name):
  if codes.min() < 0:
    raise ValueError(f"{name} holds negative values (min {codes.min():.3g}); these measures are "
                     f"defined on SAE activations (>= 0, after the ReLU / TopK): pass codes, not "
                     f"pre-activations")
  return codes


def _atoms(x, name):
  atoms = _codes(x, name)
  norms = np.linalg.norm(np.asarray(atoms, np.float64), axis=1)
  if not (norms > 0).all():
    raise ValueError(f"{name} has zero rows (atom(s) {np.nonzero(norms == 0)[0][:5].tolist()}): an "
                     f"atom without a direction has no cosine; drop them")
  return atoms


def _paired(image_codes_NxM, text_codes_NxM):
  img = _nonnegative(_codes(image_codes_NxM, "image_codes_NxM"), "image_codes_NxM")
  txt = _nonnegative(_codes(text_codes_NxM, "text_codes_NxM"), "text_codes_NxM")
  if img.shape != txt.shape:
    raise ValueError(f"image and text codes must be paired (same shape, row i = pair i); got "
                     f"{img.shape} and {txt.shape}")
  return img, txt


def fvu(x_NxD, x_hat_NxD) -> float:
  """Fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean x||^2.

  Computed in float64 by ``fvu_core``. References: [bussmann2024].

  Args:
    x_NxD: (N, D) real array of inputs, not constant (some rows differ), without NaN/inf.
    x_hat_NxD: (N, D) real array of reconstructions, the shape of ``x_NxD``.

  Returns:
    Python float >= 0 (0 for a perfect reconstruction).
  """
  x, x_hat = _codes(x_NxD, "x"), _codes(x_hat_NxD, "x_hat")
  if x.shape != x_hat.shape:
    raise ValueError(f"x and x_hat shapes differ: {x.shape} vs {x_hat.shape}")
  if np.all(x == x[:1]):
    raise ValueError("x is constant (every row identical): its variance is 0, so FVU / R^2 are "
                     "undefined; evaluate on more than one distinct input")
  with _host.float64():
    return _host.to_float(fvu_core(np.asarray(x, np.float64), np.asarray(x_hat, np.float64)))


def r2(x_NxD, x_hat_NxD) -> float:
  """R^2 = 1 - FVU (see ``fvu``).

  Args:
    x_NxD: (N, D) real array of inputs, not constant, without NaN/inf.
    x_hat_NxD: (N, D) real array of reconstructions, the shape of ``x_NxD``.

  Returns:
    Python float <= 1.
  """
  return 1.0 - fvu(x_NxD, x_hat_NxD)


def l0(codes_NxM) -> float:
  """L0: the mean number of non-zero latents per sample.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.

  Returns:
    Python float in [0, M].
  """
  with _host.float64():
    return _host.to_float(l0_core(_codes(codes_NxM)))


def firing_rates(codes_NxM) -> np.ndarray:
  """The fraction of samples on which each latent is non-zero.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.

  Returns:
    (M,) float64 NumPy array in [0, 1].
  """
  with _host.float64():
    return np.asarray(firing_rates_core(_codes(codes_NxM)))


def dead_fraction(codes_NxM) -> float:
  """The fraction of latents that are zero on every sample (dead latents).

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.

  Returns:
    Python float in [0, 1].
  """
  with _host.float64():
    return _host.to_float(dead_fraction_core(_codes(codes_NxM)))


def dense_fraction(codes_NxM, dense_threshold: float = 0.1) -> float:
  """The fraction of latents firing on more than ``dense_threshold`` of the samples.

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.
    dense_threshold: float firing rate in [0, 1] (0.1: on more than 10% of samples).

  Returns:
    Python float in [0, 1].
  """
  dense_threshold = _host.check_float(dense_threshold, "dense_threshold", 0.0, 1.0,
                                      hint="It is a firing rate (0.1: on more than 10% of samples)")
  with _host.float64():
    return _host.to_float(dense_fraction_core(_codes(codes_NxM), dense_threshold))


def concept_recovery(true_atoms_CxD, learned_atoms_MxD) -> dict:
  """Mean (and per-concept) max cosine between each planted atom and the learned atoms.

  Args:
    true_atoms_CxD: (C, D) real array, the planted atoms (one per row, none all-zero).
    learned_atoms_MxD: (M, D) real array, the learned atoms (one per row, none all-zero), same D.

  Returns:
    dict with keys ``"mean_max_cosine"``: Python float; ``"per_concept"``: (C,) float64 NumPy
    array of each planted atom's max cosine; ``"best_atom"``: (C,) int64 NumPy array, the index
    of that learned atom; ``"recovered_fraction_0.9"``: Python float, the fraction of planted
    atoms with max cosine > 0.9.
  """
  true = _atoms(true_atoms_CxD, "true_atoms_CxD")
  learned = _atoms(learned_atoms_MxD, "learned_atoms_MxD")
  if true.shape[1] != learned.shape[1]:
    raise ValueError(f"atoms must live in the same space; got widths {true.shape[1]} and "
                     f"{learned.shape[1]}")
  with _host.float64():
    return _host.to_host(concept_recovery_core(true, learned))


def stability(atoms_a_MxD, atoms_b_MxD) -> dict:
  """Hungarian matching on |cosine| of two dictionaries; mean matched cosine and per-atom values
  (indexed by dictionary a's atoms). Host-only (combinatorial assignment). Dictionaries of
  different sizes match min(M_a, M_b) pairs; the mean is over those, and a's unmatched atoms have
  per-atom value 0.

  References: [papadimitriou2025].

  Args:
    atoms_a_MxD: (M_a, D) real array, dictionary a's atoms (one per row, none all-zero).
    atoms_b_MxD: (M_b, D) real array, dictionary b's atoms, same D (M_b may differ from M_a).

  Returns:
    dict with keys ``"mean_matched_cosine"``: Python float in [0, 1]; ``"per_atom"``: (M_a,)
    float64 NumPy array, each a-atom's matched |cosine| (0 if unmatched); ``"match"``: dict
    {a index: b index} of Python ints.
  """
  a = _atoms(atoms_a_MxD, "atoms_a_MxD")
  b = _atoms(atoms_b_MxD, "atoms_b_MxD")
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"atoms must live in the same space; got widths {a.shape[1]} and {b.shape[1]}")
  with _host.float64():
    cos = np.abs(np.asarray(atom_cosines_core(a, b)))
  rows, cols = scipy.optimize.linear_sum_assignment(-cos)
  matched = np.zeros(cos.shape[0])
  matched[rows] = cos[rows, cols]
  return {"mean_matched_cosine": float(cos[rows, cols].mean()), "per_atom": matched,
          "match": dict(zip(rows.tolist(), cols.tolist()))}


def energy(codes_NxM) -> np.ndarray:
  """E[z_i]: the mean activation of each latent over the given samples (the paper's
  energy: images and texts together).

  References: [papadimitriou2025].

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.

  Returns:
    (M,) float64 NumPy array.
  """
  with _host.float64():
    return np.asarray(energy_core(_codes(codes_NxM)))


def modality_score(image_codes_NxM, text_codes_NxM) -> np.ndarray:
  """E_img[z] / (E_img[z] + E_txt[z]); NaN for features that never fire.

  References: [papadimitriou2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations, >= 0.
    text_codes_NxM: (N, M) real array of the text embeddings' activations, >= 0, row i
      paired with row i of ``image_codes_NxM``.

  Returns:
    (M,) float64 NumPy array in [0, 1] (1: image-only, 0: text-only), NaN for dead latents.
  """
  img, txt = _paired(image_codes_NxM, text_codes_NxM)
  with _host.float64():
    return np.asarray(modality_score_core(img, txt))


def bridge_scores(image_codes_NxM, text_codes_NxM, atoms_MxD) -> np.ndarray:
  """E_pairs[z_img z_txt^T] * (D D^T): large for (i, j) co-firing across a pair with aligned atoms.

  References: [papadimitriou2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations, >= 0.
    text_codes_NxM: (N, M) real array of the text embeddings' activations, >= 0, row i paired
      with row i of ``image_codes_NxM``.
    atoms_MxD: (M, D) real array, the decoder atoms (one row per latent).

  Returns:
    (M, M) float32 NumPy array; entry (i, j) pairs image latent i with text latent j.
  """
  img, txt = _paired(image_codes_NxM, text_codes_NxM)
  atoms = _codes(atoms_MxD, "atoms_MxD")
  if atoms.shape[0] != img.shape[1]:
    raise ValueError(f"atoms_MxD needs one row per latent ({img.shape[1]}); got {atoms.shape[0]}")
  return np.array(bridge_scores_core(img, txt, atoms))


def modality_dominance(image_codes_NxM, text_codes_NxM, cutoffs=(-0.6, 0.6)) -> dict:
  """MDS_i = (E_img z_i - E_txt z_i) / (E_img z_i + E_txt z_i) and its classes (module doc).

  Returns {"mds": array, "label": array of class names, "cutoffs": (low, high), "counts":
  {class name: int}}.

  References: [yan2025].

  Args:
    image_codes_NxM: (N, M) real array of the image embeddings' SAE activations, >= 0.
    text_codes_NxM: (N, M) real array of the text embeddings' activations, >= 0, row i
      paired with row i of ``image_codes_NxM``.
    cutoffs: (low, high) floats with -1 <= low <= high <= 1, or ``'std'`` (the paper's mean +-
      one std over live features).

  Returns:
    dict with keys ``"mds"``: (M,) float64 NumPy array, NaN for dead latents; ``"label"``: (M,)
    object NumPy array of class names from ``MDS_CLASSES``; ``"cutoffs"``: (low, high) tuple of
    Python floats; ``"counts"``: dict {class name: Python int}.
  """
  img, txt = _paired(image_codes_NxM, text_codes_NxM)
  if isinstance(cutoffs, str):
    if cutoffs != "std":
      raise ValueError(f"cutoffs must be 'std' or a (low, high) pair; got {cutoffs!r}")
    std, pair = True, (0.0, 0.0)
  else:
    try:
      pair = tuple(float(c) for c in cutoffs)
    except (TypeError, ValueError):
      raise ValueError(f"cutoffs must be 'std' or a (low, high) pair of numbers in [-1, 1]; got "
                       f"{cutoffs!r}") from None
    if len(pair) != 2 or not -1.0 <= pair[0] <= pair[1] <= 1.0:
      raise ValueError(f"cutoffs must be 'std' or (low, high) with -1 <= low <= high <= 1; got "
                       f"{cutoffs}")
    std = False
  with _host.float64():
    out = _host.to_host(modality_dominance_core(img, txt, pair, std_cutoffs=std))
  label = np.array(MDS_CLASSES, dtype=object)[out["label"]]
  return {"mds": out["mds"], "label": label, "cutoffs": tuple(float(c) for c in out["cutoffs"]),
          "counts": {name: int(c) for name, c in zip(MDS_CLASSES, out["counts"])}}


def monosemanticity(codes_NxM, inputs_NxD, top_n: int = 20, seed: int = 0) -> dict:
  """Coherence of each feature's top-activating inputs vs random inputs (see module doc).

  References: [yan2025].

  Args:
    codes_NxM: (N, M) real array of SAE activations, N samples x M latents (bfloat16
      accepted), without NaN/inf.
    inputs_NxD: (N, D) real array of the input embeddings, row i the input of row i of
      ``codes_NxM``.
    top_n: int in [2, N], the top-activating samples per latent (default 20).
    seed: int >= 0, seeds the NumPy generator that draws the 20 random baseline sets.

  Returns:
    dict with keys ``"score"``: (M,) float64 NumPy array, NaN for latents firing (> 0) on fewer
    than ``top_n`` samples; ``"mean_score"``, ``"win_rate"``, ``"baseline_coherence"``: Python
    floats (the first two NaN without such a latent); ``"top_samples"``: (M, top_n) int32 NumPy
    array of row indices.
  """
  codes = _codes(codes_NxM)
  inputs = _codes(inputs_NxD, "inputs_NxD")
  _host.same_rows(codes, inputs, "codes_NxM", "inputs_NxD")
  n = codes.shape[0]
  _host.check_int(top_n, "top_n", 2)
  _host.check_int(seed, "seed", 0)
  if n < top_n:
    raise ValueError(f"monosemanticity needs at least top_n={top_n} samples, got {n}; lower top_n "
                     f"or pass more samples")
  rng = np.random.default_rng(seed)
  random_rows = np.stack([rng.choice(n, top_n, replace=False) for _ in range(20)])
  with _host.float64():
    return _host.to_host(monosemanticity_core(codes, inputs, random_rows, top_n))
