"""The linear-structure analyses of VLM embedding dictionaries ([papadimitriou2025]).

Pure functions on arrays, two layers as every metric module (``jaxdisent.metrics`` doc): a pure
JAX ``*_core`` (jit / vmap, sizes static) and a validating host wrapper that runs it in float64.

* ``modality_subspace``: an orthonormal basis (K, D) of the directions that separate image from
  text embeddings: the mean difference mu_img - mu_txt and, with ``lda=True`` (default), the
  Fisher/LDA direction (S_w + ridge I)^-1 (mu_img - mu_txt) (S_w the pooled within-modality
  covariance), orthonormalised (Gram-Schmidt, mean difference first). K = 1 or 2.
* ``subspace_energy_fraction``: for each atom d, ||P d||^2 / ||d||^2 with P the projection onto
  that basis (0: orthogonal to the modality subspace, 1: inside it). The paper's finding: most
  concepts are nearly orthogonal to it. The host wrapper also reports the mean over atoms, the
  energy-weighted mean (weights E[z_i]) and the fraction of atoms below ``near_orthogonal`` (0.1).
* ``modality_classifier``: for each feature, the balanced accuracy of the best single-threshold
  rule "image if z_i > t (or < t)" predicting the modality of a sample from z_i alone, computed
  exactly as (1 + KS) / 2 where KS = sup_t |F_img(t) - F_txt(t)| (thresholds between distinct
  values, so ties -- the zeros of sparse codes -- are never split). 0.5 = no information, 1 =
  perfect classifier. It is the in-sample best threshold (one parameter per feature, so with
  thousands of samples the optimism is O(1/sqrt(N))). ``good_classifier_energy_share`` = the share
  of the total energy E[z] carried by features with balanced accuracy >= ``good`` (0.9).

Known answers (tests/test_vlm_sae_workbench.py): with only shared concepts the mean difference is
the planted modality gap; an image-only concept that fires on a fraction f of images (never on
texts) has balanced accuracy exactly (1 + f) / 2; a shared concept with the same magnitudes in
both members has 0.5.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.metrics import _host

_HIGHEST = jax.lax.Precision.HIGHEST


# ---- JAX cores -----------------------------------------------------------------------------------

def _unit(v):
  return v / jnp.maximum(jnp.linalg.norm(v), 1e-12)


@functools.partial(jax.jit, static_argnames="lda")
def modality_subspace_core(image_NxD, text_NxD, lda: bool = True, ridge: float = 1e-3):
  """Orthonormal basis (K, D) of the modality subspace ([papadimitriou2025]). Pure JAX.

  The mean difference (row 0) and, with ``lda``, the LDA direction's component orthogonal to it
  (row 1; a zero row if the LDA direction is parallel to the mean difference). ``ridge`` is
  relative to the mean within-class variance.

  Args:
    image_NxD: (N_img, D) float array, image embeddings.
    text_NxD: (N_txt, D) float array, text embeddings (same D).
    lda: static bool, add the Fisher/LDA direction.
    ridge: float > 0, the relative Tikhonov term of the LDA solve.

  Returns:
    (K, D) float array in JAX's default float dtype (float64 under x64, else float32); K = 2 with
    ``lda`` (row 1 possibly zero), else 1.
  """
  image = jnp.asarray(image_NxD, jnp.result_type(float))
  text = jnp.asarray(text_NxD, jnp.result_type(float))
  diff = image.mean(0) - text.mean(0)
  first = _unit(diff)
  if not lda:
    return first[None]
  centred = jnp.concatenate([image - image.mean(0), text - text.mean(0)])
  within = jnp.dot(centred.T, centred, precision=_HIGHEST) / centred.shape[0]
  scale = jnp.trace(within) / within.shape[0]
  fisher = jnp.linalg.solve(within + ridge * jnp.maximum(scale, 1e-12) * jnp.eye(within.shape[0]),
                            diff)
  second = fisher - jnp.dot(fisher, first) * first
  norm = jnp.linalg.norm(second)
  second = jnp.where(norm > 1e-6 * jnp.linalg.norm(fisher), second / jnp.maximum(norm, 1e-30), 0.0)
  return jnp.stack([first, second])


@jax.jit
def subspace_energy_fraction_core(atoms_MxD, basis_KxD):
  """||P d||^2 / ||d||^2 per atom (P: projection onto the rows of the orthonormal ``basis``).

  [papadimitriou2025]'s energy fraction. Pure JAX (jitted).

  Args:
    atoms_MxD: (M, D) float array, the dictionary atoms.
    basis_KxD: (K, D) float array with orthonormal rows (not checked here).

  Returns:
    (M,) float array in JAX's default float dtype, in [0, 1]; NaN for a zero atom.
  """
  atoms = jnp.asarray(atoms_MxD, jnp.result_type(float))
  basis = jnp.asarray(basis_KxD, atoms.dtype)
  inside = jnp.sum(jnp.square(jnp.dot(atoms, basis.T, precision=_HIGHEST)), axis=1)
  norm = jnp.sum(jnp.square(atoms), axis=1)
  return jnp.where(norm > 0, inside / jnp.where(norm > 0, norm, 1.0), jnp.nan)


def _balanced_accuracy_one(image_N, text_N):
  values = jnp.concatenate([image_N, text_N])
  is_image = jnp.concatenate([jnp.ones(image_N.shape[0]), jnp.zeros(text_N.shape[0])])
  order = jnp.argsort(values)
  v, lab = values[order], is_image[order]
  cdf_img = jnp.cumsum(lab) / image_N.shape[0]
  cdf_txt = jnp.cumsum(1.0 - lab) / text_N.shape[0]
  # a threshold may sit only after the last copy of a value
  cut = jnp.concatenate([v[1:] != v[:-1], jnp.ones((1,), bool)])
  ks = jnp.max(jnp.where(cut, jnp.abs(cdf_img - cdf_txt), 0.0))
  return 0.5 * (1.0 + ks)


@jax.jit
def modality_classifier_core(image_codes_NxM, text_codes_NxM):
  """Balanced accuracy (M,) of predicting the modality from each feature alone (module doc).

  [papadimitriou2025]'s concept-as-classifier score: (1 + KS) / 2 with the best single threshold.
  Image and text sets may differ in size (balanced accuracy weighs them equally). Pure JAX.

  Args:
    image_codes_NxM: (N_img, M) float array, the codes of image embeddings.
    text_codes_NxM: (N_txt, M) float array, the codes of text embeddings (same M).

  Returns:
    (M,) float array in JAX's default float dtype, in [0.5, 1].
  """
  dtype = jnp.result_type(float)
  img = jnp.asarray(image_codes_NxM, dtype).T
  txt = jnp.asarray(text_codes_NxM, dtype).T
  return jax.lax.map(lambda pair: _balanced_accuracy_one(*pair), (img, txt), batch_size=64)


@jax.jit
def good_classifier_energy_share_core(balanced_accuracy_M, energy_M, good=0.9):
  """Share of the total energy carried by features with balanced accuracy >= ``good``. Pure JAX.

  Args:
    balanced_accuracy_M: (M,) float array (:func:`modality_classifier_core`).
    energy_M: (M,) non-negative float array, E[z_i] of each feature.
    good: float, the balanced-accuracy cut-off.

  Returns:
    scalar float array (the energy's dtype) in [0, 1]; NaN when the total energy is 0.
  """
  energy = jnp.asarray(energy_M)
  total = energy.sum()
  mask = jnp.asarray(balanced_accuracy_M) >= good
  return jnp.where(total > 0, jnp.sum(jnp.where(mask, energy, 0.0)) / jnp.where(total > 0, total, 1.0),
                   jnp.nan)


# ---- host wrappers -------------------------------------------------------------------------------

def _array(x, name):
  return _host.as_host_array(x, name)


def _same_width(a, b, name_a, name_b):
  if a.shape[1] != b.shape[1]:
    raise ValueError(f"{name_a} and {name_b} must have the same width (one embedding space); got "
                     f"{a.shape[1]} and {b.shape[1]}")


def modality_subspace(image_NxD, text_NxD, lda: bool = True, ridge: float = 1e-3) -> np.ndarray:
  """Orthonormal basis (K, D) of the directions separating images from texts (module doc).

  [papadimitriou2025]. K = 1 with ``lda=False``, else 2 (the LDA row is dropped when it adds no
  direction). Validating host wrapper of :func:`modality_subspace_core`, run in float64.

  Args:
    image_NxD: (N_img, D) real array, >= 2 image embeddings.
    text_NxD: (N_txt, D) real array, >= 2 text embeddings (same D).
    lda: add the Fisher/LDA direction.
    ridge: float > 0, the relative Tikhonov term of the LDA solve.

  Returns:
    (K, D) float64 NumPy array with orthonormal rows, K in {1, 2}.

  Raises:
    ValueError: bad shapes, NaN/inf, ``ridge <= 0``, or equal image and text means.
  """
  image = _host.as_host_array(image_NxD, "image_NxD", min_rows=2)
  text = _host.as_host_array(text_NxD, "text_NxD", min_rows=2)
  _same_width(image, text, "image_NxD", "text_NxD")
  if not ridge > 0:
    raise ValueError(f"ridge must be > 0 (relative Tikhonov term of the LDA solve); got {ridge}")
  if np.allclose(image.mean(0), text.mean(0), atol=0.0, rtol=0.0):
    raise ValueError("image and text embeddings have the same mean: there is no modality "
                     "direction to find (are the two arrays the same modality?)")
  with _host.float64():
    basis = np.asarray(modality_subspace_core(image, text, lda=bool(lda), ridge=float(ridge)))
  return basis[np.linalg.norm(basis, axis=1) > 0.5]


def subspace_energy_fraction(atoms_MxD, basis_KxD, energy_M=None,
                             near_orthogonal: float = 0.1) -> dict:
  """Per-atom fraction of ||d||^2 inside the subspace spanned by ``basis_KxD`` and its summaries.

  [papadimitriou2025]. The basis has orthonormal rows (e.g. ``modality_subspace``); summaries are
  the mean, the energy-weighted mean (when ``energy_M`` is given; dead atoms weigh 0) and the
  fraction of atoms below ``near_orthogonal``. Runs the core in float64.

  Args:
    atoms_MxD: (M, D) real array, the dictionary atoms.
    basis_KxD: (K, D) real array with orthonormal rows (checked to 1e-5).
    energy_M: None or (M,) non-negative real array, E[z_i] of each atom.
    near_orthogonal: float in [0, 1], the "nearly orthogonal" cut-off.

  Returns:
    dict: "per_atom" (M,) float64 NumPy array (NaN for a zero atom); "mean" and
    "near_orthogonal_fraction" Python floats; "energy_weighted_mean" Python float (NaN when the
    energy sums to 0), only when `energy_M` is given.

  Raises:
    ValueError: bad shapes, NaN/inf, a non-orthonormal basis, `near_orthogonal` outside [0, 1],
      or negative energies.
  """
  atoms = _array(atoms_MxD, "atoms_MxD")
  basis = _array(basis_KxD, "basis_KxD")
  _same_width(atoms, basis, "atoms_MxD", "basis_KxD")
  gram = basis @ basis.T
  if not np.allclose(gram, np.eye(len(basis)), atol=1e-5):
    raise ValueError("basis_KxD must have orthonormal rows (use modality_subspace, or "
                     "np.linalg.qr(B.T)[0].T)")
  if not 0.0 <= near_orthogonal <= 1.0:
    raise ValueError(f"near_orthogonal is a fraction in [0, 1]; got {near_orthogonal}")
  with _host.float64():
    fraction = np.asarray(subspace_energy_fraction_core(atoms, basis))
  out = {"per_atom": fraction, "mean": float(np.nanmean(fraction)),
         "near_orthogonal_fraction": float(np.nanmean(fraction < near_orthogonal))}
  if energy_M is not None:
    energy = np.asarray(_host.as_host_array(energy_M, "energy_M", ndim=(1,)), np.float64)
    if energy.shape[0] != atoms.shape[0]:
      raise ValueError(f"energy_M needs one value per atom ({atoms.shape[0]}); got {energy.shape[0]}")
    if (energy < 0).any():
      raise ValueError("energy_M must be non-negative (E[z_i] of non-negative codes)")
    total = energy.sum()
    out["energy_weighted_mean"] = (float(np.nansum(fraction * energy) / total) if total > 0
                                   else float("nan"))
  return out


def modality_classifier(image_codes_NxM, text_codes_NxM, good: float = 0.9) -> dict:
  """Per-feature balanced accuracy of predicting the modality from the feature alone (module doc).

  [papadimitriou2025]. Also the mean over live features, the fraction of live features with
  accuracy >= ``good`` and the share of the energy they carry (energy = mean code over the image
  and text rows together; live = energy > 0). Image and text rows need not be paired. Runs the
  cores in float64.

  Args:
    image_codes_NxM: (N_img, M) real array, the codes of image embeddings.
    text_codes_NxM: (N_txt, M) real array, the codes of text embeddings (same M).
    good: float in [0.5, 1], the balanced-accuracy cut-off.

  Returns:
    dict: "balanced_accuracy" (M,) float64 NumPy array; "mean_balanced_accuracy",
    "good_fraction" (NaN without a live feature), "good_energy_share" (NaN when no energy) and
    "good" Python floats.

  Raises:
    ValueError: bad shapes, NaN/inf, or `good` outside [0.5, 1].
  """
  img = _array(image_codes_NxM, "image_codes_NxM")
  txt = _array(text_codes_NxM, "text_codes_NxM")
  _same_width(img, txt, "image_codes_NxM", "text_codes_NxM")
  if not 0.5 <= good <= 1.0:
    raise ValueError(f"good is a balanced accuracy in [0.5, 1]; got {good}")
  with _host.float64():
    acc = np.asarray(modality_classifier_core(img, txt))
    energy = np.concatenate([img, txt]).astype(np.float64).mean(0)
    share = _host.to_float(good_classifier_energy_share_core(acc, energy, float(good)))
  live = energy > 0
  return {"balanced_accuracy": acc,
          "mean_balanced_accuracy": float(acc[live].mean()) if live.any() else float("nan"),
          "good_fraction": float(np.mean(acc[live] >= good)) if live.any() else float("nan"),
          "good_energy_share": share, "good": float(good)}
