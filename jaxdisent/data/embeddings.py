"""Embedding files as users have them: .npy (memory-mapped), .npz, .safetensors.

Rows are samples, columns are dimensions. Batches read only the rows they need, so a .npy file
larger than RAM trains with constant memory. Paired image/text embeddings are two arrays with the
same row order (two files, or two keys of one .npz/.safetensors).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jaxdisent.rng import step_key
from jaxdisent import rng as rng_streams
from jaxdisent.data.synthetic_vlm import check_image_fraction, mixture_is_image

FLOAT_KINDS = ("f",)   # and bfloat16 (ml_dtypes; safetensors files from torch often hold it)


def _open_array(path: str, key: str | None = None):
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"embedding file {path!r} not found")
  suffix = os.path.splitext(path)[1].lower()
  if os.path.isdir(path):
    raise ValueError(f"embedding file {path!r} is a directory; pass a .npy, .npz or .safetensors file")
  if suffix == ".npy" and key:
    raise ValueError(f"{path} is a .npy file (one array): the array name {key!r} (data.key / "
                     f"data.text_key) is only for .npz / .safetensors files; drop it")
  if suffix == ".npy":
    if os.path.getsize(path) == 0:
      raise ValueError(f"{path} is empty (0 bytes); re-export the embeddings")
    try:
      return np.load(path, mmap_mode="r")
    except (ValueError, EOFError, OSError) as error:
      raise ValueError(f"{path} is not a readable .npy array ({type(error).__name__}: {error}); "
                       "re-export it with np.save") from error
  if suffix == ".npz":
    import zipfile  # pylint: disable=g-import-not-at-top
    if not zipfile.is_zipfile(path):
      raise ValueError(f"{path} is not a .npz archive (not a zip file: truncated, or another format "
                       f"renamed); re-export it with np.savez")
    def unreadable(error):
      return ValueError(f"{path} is not a readable .npz archive ({type(error).__name__}: "
                        f"{' '.join(str(error).split())}); re-export it with np.savez")
    try:
      archive = np.load(path)
      keys = list(archive.keys())
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as error:
      raise unreadable(error) from None
    name = _pick_key(path, keys, key)
    try:
      return archive[name]
    except (ValueError, EOFError, OSError, zipfile.BadZipFile) as error:
      raise unreadable(error) from None
  if suffix == ".safetensors":
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top
    try:
      handle = safe_open(path, framework="numpy")
      keys = list(handle.keys())
    except Exception as error:  # SafetensorError: truncated / corrupt header
      raise ValueError(f"{path} cannot be read as safetensors ({type(error).__name__}: "
                       f"{' '.join(str(error).split())}); the file is truncated or corrupt: export "
                       f"it again") from None
    name = _pick_key(path, keys, key)
    try:
      return handle.get_tensor(name)
    except Exception as error:  # truncated data section, a dtype NumPy cannot hold
      raise ValueError(f"{path}: array {name!r} cannot be read ({type(error).__name__}: "
                       f"{' '.join(str(error).split())}); the file is truncated or corrupt: export "
                       f"it again") from None
  raise ValueError(f"unsupported embedding file type {suffix!r} ({path}); use .npy, .npz or "
                   ".safetensors")


def _pick_key(path: str, keys: list, key: str | None) -> str:
  if not keys:
    raise ValueError(f"{path} holds no arrays; save the embeddings into it")
  if key is None:
    if len(keys) != 1:
      raise ValueError(f"{path} holds arrays {keys}; name one with data.key / data.text_key")
    return keys[0]
  if key not in keys:
    raise KeyError(f"{path} has no array {key!r}; it holds {keys}")
  return key


def _check_array(array, name: str):
  if array.ndim != 2:
    raise ValueError(f"{name} must be a 2-D (samples, dims) array; got shape {array.shape}")
  if array.dtype.kind not in FLOAT_KINDS and array.dtype.name != "bfloat16":
    raise ValueError(f"{name} must hold floating-point embeddings; got dtype {array.dtype} "
                     "(convert with .astype(np.float32) and save again)")
  if array.shape[0] < 2:
    raise ValueError(f"{name} has {array.shape[0]} rows; need at least 2")
  if array.shape[1] < 1:
    raise ValueError(f"{name} has 0 columns (shape {array.shape}); embeddings need >= 1 dimension")


class EmbeddingSource:
  """Random-row batches from one embedding array, or from a paired (image, text) set.

  ``batch(seed, step, start, size)`` draws rows uniformly with replacement keyed by (seed, step,
  global example index): resuming reproduces the same batches. With a pair, example i reads the
  image row (even i) or the caption row (odd i) of one sampled pair. NaN/inf rows raise an
  error naming the file row.
  """
  name = "file"  # data.source (the Source protocol, jaxdisent/data/registry.py)

  def __init__(self, path: str, key: str | None = None, text_path: str | None = None,
               text_key: str | None = None, image_fraction: float = 0.5):
    self.image = _open_array(path, key)
    _check_array(self.image, f"{path}[{key}]" if key else path)
    self.text = None
    if text_path or text_key:
      self.text = _open_array(text_path or path, text_key)
      _check_array(self.text, f"{text_path or path}[{text_key}]")
      if self.text.shape[0] != self.image.shape[0]:
        raise ValueError(f"paired embeddings need the same number of rows: images have "
                         f"{self.image.shape[0]}, texts {self.text.shape[0]}")
      if self.text.shape[1] != self.image.shape[1]:
        raise ValueError(f"paired embeddings need the same width: {self.image.shape[1]} vs "
                         f"{self.text.shape[1]}")
    self.path = path
    self.text_path = text_path or path
    self.image_fraction = _checked_image_fraction(image_fraction, self.text is not None)

  @property
  def dim(self) -> int:
    return int(self.image.shape[1])

  @property
  def num_rows(self) -> int:
    return int(self.image.shape[0])

  def rows(self, index, modality: str = "image") -> np.ndarray:
    if modality not in ("image", "text"):
      raise ValueError(f"modality must be 'image' or 'text'; got {modality!r}")
    if modality == "text" and self.text is None:
      raise ValueError(f"{self.path} has no paired text embeddings; set data.text_path or "
                       f"data.text_key")
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= self.num_rows):
      raise ValueError(f"row index out of range [0, {self.num_rows}) of {self.path}: got "
                       f"{int(index.min())}..{int(index.max())}")
    source = self.image if modality == "image" else self.text
    order = np.argsort(index)
    out = np.empty((len(index), self.dim), np.float32)
    out[order] = np.asarray(source[np.asarray(index)[order]], dtype=np.float32)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
      where = self.path if modality == "image" else self.text_path
      raise ValueError(f"NaN/inf in {modality} embedding row {int(np.asarray(index)[bad][0])} of "
                       f"{where}; clean the file or drop those rows")
    return out

  def batch(self, seed: int, step: int, start: int, size: int):
    key = step_key(seed, step, salt=rng_streams.EMBEDDING_FILES)
    global_index = np.arange(start, start + size)
    mixed = self.text is not None and self.image_fraction != 0.5  # data.image_fraction
    pair = global_index // 2 if self.text is not None and not mixed else global_index
    rows = np.asarray(jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0,
                                                            self.num_rows))(pair))
    if self.text is None:
      x = self.rows(rows)
    else:
      is_image = _is_image(global_index, self.image_fraction) if mixed else global_index % 2 == 0
      x = np.where(is_image[:, None], self.rows(rows, "image"), self.rows(rows, "text"))
    return {"x": x, "index": global_index.astype(np.int32)}


def _checked_image_fraction(image_fraction, paired: bool) -> float:
  """data.image_fraction (share of image rows in training batches); needs paired files unless 0.5."""
  value = check_image_fraction(image_fraction)
  if value != 0.5 and not paired:
    raise ValueError(f"data.image_fraction={image_fraction!r} mixes images and texts, but only "
                     "one embedding file is given; add --config.data.text_path (or data.text_key) "
                     "or leave image_fraction at 0.5")
  return value


def _is_image(global_index, image_fraction: float):
  return mixture_is_image(global_index, image_fraction, np)
