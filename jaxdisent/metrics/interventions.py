"""Concept interventions on SAE codes, scored by a task: retrieval and zero-shot accuracy.

An edit acts on codes z (N, M) before decoding ([yan2025]'s deletion experiment, SAELens-style
multi-feature steering):

  z' = where(set_mask, set_value, z * keep) + add

* ablate features S: ``keep = 0`` on S (``ablation_edit``);
* steer: ``add[j] = alpha_j``; since the decoder is linear, decode(z + alpha e_j) = decode(z) +
  alpha d_j: "add alpha times atom j" (in the SAE's scaled input space; ``steering_edit``);
* set a code: ``set_mask[j] = True, set_value[j] = v`` (every sample's z_j := v).

Scores on paired embeddings (row i of images and texts is pair i), on decoded vectors compared by
cosine:

* ``retrieval_recall_core``: for each query row, the rank of its own pair among all keys; recall@k
  = fraction ranked < k. Ties count *against* the query (rank = number of other keys scoring >=
  the true key): an edit that collapses every embedding onto one vector scores recall ~ k / N,
  not 1.
* ``zero_shot_accuracy_core``: argmax over class prompts of cos(image, prompt) == label.

All cores are pure JAX (jit / vmap; ``ks`` static). ``random_feature_sets`` draws the size-matched
control sets (host side, NumPy seed).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
KS = (1, 5, 10)


def _unit_rows(a):
  return a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), 1e-12)


@jax.jit
def edit_codes_core(codes_NxM, keep_M, add_M, set_mask_M, set_value_M):
  """z' = where(set_mask, set_value, z * keep) + add (module doc); every edit vector is (M,).

  The edit of [yan2025]'s deletion experiment and SAELens-style steering. Pure JAX (jitted).

  Args:
    codes_NxM: (N, M) float array, the codes z.
    keep_M: (M,) float array, the multiplier of each feature (0 = ablate).
    add_M: (M,) float array, added to each feature after keep / set.
    set_mask_M: (M,) bool array, the features set to `set_value_M`.
    set_value_M: (M,) float array, their values.

  Returns:
    (N, M) float array of the codes' dtype (the edit vectors are cast to it).
  """
  codes = jnp.asarray(codes_NxM)
  kept = codes * keep_M.astype(codes.dtype)
  return jnp.where(set_mask_M[None], set_value_M.astype(codes.dtype)[None], kept) + add_M.astype(
      codes.dtype)[None]


def identity_edit(num_features: int):
  """(keep, add, set_mask, set_value) that change nothing.

  Args:
    num_features: Python int M.

  Returns:
    tuple of four (M,) NumPy arrays: keep (float32 ones), add (float32 zeros), set_mask (bool
    False) and set_value (float32 zeros); fresh arrays, safe to modify.
  """
  return (np.ones(num_features, np.float32), np.zeros(num_features, np.float32),
          np.zeros(num_features, bool), np.zeros(num_features, np.float32))


def ablation_edit(num_features: int, features):
  """(keep, add, set_mask, set_value) that zero the given features ([yan2025]'s deletion).

  Args:
    num_features: Python int M.
    features: iterable of int feature indices in [0, M) to ablate.

  Returns:
    tuple of four (M,) NumPy arrays as :func:`identity_edit`'s, with keep = 0 on `features`.
  """
  keep, add, mask, value = identity_edit(num_features)
  keep[np.asarray(list(features), np.int64)] = 0.0
  return keep, add, mask, value


def steering_edit(num_features: int, alphas: dict, set_codes: dict | None = None):
  """(keep, add, set_mask, set_value) that steer: ``alphas`` added, ``set_codes`` fixed.

  ``alphas`` {feature: alpha} are added to the codes (decoded: alpha times the atom);
  ``set_codes`` {feature: value} fix those codes for every sample.

  Args:
    num_features: Python int M.
    alphas: dict {int feature index: float alpha}.
    set_codes: None or dict {int feature index: float value}.

  Returns:
    tuple of four (M,) NumPy arrays as :func:`identity_edit`'s (keep float32 ones, add float32,
    set_mask bool, set_value float32).
  """
  keep, add, mask, value = identity_edit(num_features)
  for j, alpha in alphas.items():
    add[int(j)] += float(alpha)
  for j, v in (set_codes or {}).items():
    mask[int(j)], value[int(j)] = True, float(v)
  return keep, add, mask, value


@functools.partial(jax.jit, static_argnames="ks")
def retrieval_recall_core(queries_NxD, keys_NxD, ks=KS):
  """{k: recall@k} of retrieving key i for query i by cosine (ties against the query).

  The rank of the true key is the number of other keys scoring >= it, so an edit collapsing every
  embedding onto one vector scores 0 for k < N (every tie counts against the query), not 1.
  Pure JAX (jitted, `ks` static).

  Args:
    queries_NxD: (N, D) float array, row i paired with key row i.
    keys_NxD: (N, D) float array.
    ks: static tuple of Python ints, the cut-offs.

  Returns:
    dict {k: scalar float array} in JAX's default float dtype (float64 under x64, else float32),
    each in [0, 1].
  """
  sims = jnp.dot(_unit_rows(queries_NxD), _unit_rows(keys_NxD).T, precision=_HIGHEST)
  true = jnp.diagonal(sims)
  rank = jnp.sum(sims >= true[:, None], axis=1) - 1  # other keys at least as close
  return {k: jnp.mean(rank < k, dtype=jnp.result_type(float)) for k in ks}


@jax.jit
def zero_shot_accuracy_core(images_NxD, prompts_CxD, labels_N):
  """Fraction of images whose most cosine-similar class prompt is their label.

  CLIP-style zero-shot classification on (decoded) embeddings. Pure JAX (jitted).

  Args:
    images_NxD: (N, D) float array, the image embeddings.
    prompts_CxD: (C, D) float array, one text embedding per class.
    labels_N: (N,) integer array of class ids in [0, C).

  Returns:
    scalar float array in JAX's default float dtype (float64 under x64, else float32), in [0, 1].
  """
  sims = jnp.dot(_unit_rows(images_NxD), _unit_rows(prompts_CxD).T, precision=_HIGHEST)
  return jnp.mean(jnp.argmax(sims, axis=1) == labels_N, dtype=jnp.result_type(float))


def random_feature_sets(candidates, size: int, count: int, seed: int) -> list[np.ndarray]:
  """``count`` random sets of ``size`` features drawn without replacement from ``candidates``.

  The size-matched controls of an ablation; host side, seeded NumPy (``default_rng(seed)``).

  Args:
    candidates: 1-D integer array-like of feature indices.
    size: Python int, features per set.
    count: Python int, the number of sets.
    seed: Python int, the NumPy seed.

  Returns:
    list of `count` sorted (size,) int64 NumPy arrays.

  Raises:
    ValueError: `size` exceeds the number of candidates.
  """
  candidates = np.asarray(candidates, np.int64)
  if size > len(candidates):
    raise ValueError(f"cannot draw {size} random control features from {len(candidates)} "
                     "candidates (live features outside the edited set); edit fewer features")
  rng = np.random.default_rng(seed)
  return [np.sort(rng.choice(candidates, size, replace=False)) for _ in range(count)]
