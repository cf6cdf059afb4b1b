"""Concept naming: each dictionary atom named by its nearest phrases of a vocabulary.

Offline version of the monosemanticity paper's automatic naming: the user gives a vocabulary
(one concept phrase per line) and its text embeddings from the same model that embedded the data
(``launch.embed`` writes them). Each atom d_i is compared by cosine with the *centred* phrase
embeddings v_p - mean_p v_p (``center=True``, default: every phrase embedding carries the text
side of the modality gap and the model's common direction, which are not the concept; set
``center=False`` for raw cosines). The atom's name is its nearest phrase when the margin
cos_1 - cos_2 (nearest minus second nearest) is >= ``min_margin`` and cos_1 > 0, else None.

``name_atoms_core`` is pure JAX (``top`` static); ``name_atoms`` validates and returns one dict per
atom: {"name", "names", "cosines", "margin"}.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.embeddings import EmbeddingSource
from jaxdisent.metrics import _host

_HIGHEST = jax.lax.Precision.HIGHEST


def _unit_rows(a):
  return a / jnp.maximum(jnp.linalg.norm(a, axis=1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("top", "center"))
def name_atoms_core(atoms_MxD, vocabulary_VxD, top: int = 3, center: bool = True):
  """(cosines (M, top), phrase indices (M, top)) of each atom's nearest phrases. Pure JAX.

  Cosine of each atom with the (optionally centred) phrase embeddings, top-`top` per atom in
  descending order (module docstring).

  Args:
    atoms_MxD: (M, D) float array, the dictionary atoms.
    vocabulary_VxD: (V, D) float array, the phrase embeddings.
    top: static Python int in [1, V], phrases per atom.
    center: static bool, subtract the mean phrase embedding first.

  Returns:
    (cosines, indices): (M, top) float array in JAX's default float dtype (float64 under x64,
    else float32) and (M, top) int32 phrase indices.
  """
  vocab = jnp.asarray(vocabulary_VxD, jnp.result_type(float))
  if center:
    vocab = vocab - vocab.mean(axis=0)
  cos = jnp.dot(_unit_rows(jnp.asarray(atoms_MxD, vocab.dtype)), _unit_rows(vocab).T,
                precision=_HIGHEST)
  return jax.lax.top_k(cos, top)


def name_atoms(atoms_MxD, vocabulary_VxD, phrases, top: int = 3, min_margin: float = 0.0,
               center: bool = True) -> list[dict]:
  """Names of each atom (module doc), in atom order.

  An offline stand-in for the automatic naming of the monosemanticity paper ([yan2025]): an atom
  is named by its nearest phrase when the margin cos_1 - cos_2 is >= `min_margin` and cos_1 > 0.
  Runs the core in float64.

  Args:
    atoms_MxD: (M, D) real array, the dictionary atoms.
    vocabulary_VxD: (V, D) real array, V >= 2 phrase embeddings from the model that embedded
      the data.
    phrases: sequence of V phrases (converted with str), row order of `vocabulary_VxD`.
    top: Python int in [2, V], phrases listed per atom.
    min_margin: float in [0, 2], the margin needed for a name.
    center: centre the phrase embeddings first (module docstring).

  Returns:
    list of M dicts {"name": str | None, "names": list of `top` str, "cosines": list of `top`
    Python floats, "margin": Python float cos_1 - cos_2}.

  Raises:
    ValueError: NaN/inf or bad shapes, phrase / row count or width mismatch, a bad `top` or
      `min_margin`.
  """
  atoms = _host.as_host_array(atoms_MxD, "atoms_MxD")
  vocab = _host.as_host_array(vocabulary_VxD, "vocabulary_VxD", min_rows=2)
  phrases = [str(p) for p in phrases]
  if len(phrases) != vocab.shape[0]:
    raise ValueError(f"the vocabulary has {len(phrases)} phrases but {vocab.shape[0]} embeddings; "
                     "embed exactly the phrases of the file, one row per line")
  if atoms.shape[1] != vocab.shape[1]:
    raise ValueError(f"atoms have width {atoms.shape[1]} but the vocabulary embeddings "
                     f"{vocab.shape[1]}: embed the vocabulary with the model that embedded the data")
  top = _host.check_int(top, "top", 2, vocab.shape[0], hint="phrases listed per atom (>= 2 for "
                        "the margin, <= vocabulary size)")
  if not 0.0 <= min_margin <= 2.0:
    raise ValueError(f"min_margin is a cosine difference in [0, 2]; got {min_margin}")
  with _host.float64():
    cos, index = (np.asarray(a) for a in name_atoms_core(atoms, vocab, top=top, center=bool(center)))
  out = []
  for c, i in zip(cos, index):
    margin = float(c[0] - c[1])
    named = margin >= min_margin and c[0] > 0
    out.append({"name": phrases[i[0]] if named else None, "names": [phrases[j] for j in i],
                "cosines": [float(v) for v in c], "margin": margin})
  return out


def load_vocabulary(phrases_path: str, embeddings_path: str):
  """(phrases, embeddings (V, D) float32) from a text file and an embedding file.

  The text file holds one phrase per non-empty line (stripped); the embedding file is
  .npy/.npz/.safetensors with one array, one row per phrase, in order.

  Args:
    phrases_path: path of the phrase file (``~`` expanded).
    embeddings_path: path of the embedding file (required).

  Returns:
    (phrases, embeddings): a list of V str and a (V, D) float32 NumPy array.

  Raises:
    ValueError: no `embeddings_path`, a phrase / row count mismatch, or NaN/inf rows.
    FileNotFoundError: the phrase file does not exist.
  """
  if not embeddings_path:
    raise ValueError("a vocabulary needs its text embeddings too: set vocabulary_embeddings "
                     "(--vocabulary_embeddings=FILE.npy; launch.embed writes them)")
  phrases_path = os.path.expanduser(phrases_path)
  if not os.path.exists(phrases_path):
    raise FileNotFoundError(f"vocabulary file {phrases_path!r} not found (one phrase per line)")
  with open(phrases_path, encoding="utf-8") as f:
    phrases = [line.strip() for line in f if line.strip()]
  source = EmbeddingSource(embeddings_path)
  if len(phrases) != source.num_rows:
    raise ValueError(f"{phrases_path} has {len(phrases)} phrases but {embeddings_path} has "
                     f"{source.num_rows} rows; embed exactly the phrases of the file, in order")
  return phrases, source.rows(np.arange(source.num_rows))
