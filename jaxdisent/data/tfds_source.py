"""Prepared TFDS datasets (dsprites, shapes3d) behind the ground-truth-factor interface.

Reads with ``tfds.data_source`` (random access over array_record files), which needs no
TensorFlow. Nothing is downloaded: the dataset must already be prepared under ``data_dir``
(``tfds build dsprites --data_dir=...`` on a machine with network). Factor classes are read from the
``label_*`` features; images are returned as float32 in [0, 1].

Because the records of a prepared dataset are not stored in grid order, the source reads every
record's labels once and keeps a table from grid position to record. A combination missing from
the files (as in mock data) raises a clear error if asked for.

That scan decodes every record (minutes for dSprites' 737,280), so its result is cached in
``jaxdisent_labels_<split>.npz`` next to the prepared files (the dataset's version folder) or,
when that folder is read-only or absent, under ``$JAXDISENT_CACHE_DIR`` (default
``~/.cache/jaxdisent``). The cache holds a fingerprint of the dataset (name, version, split, record
count, every file's name, size and modification time, and the labels of a few probe records) and
is rebuilt when any of it changes, so re-preparing the data invalidates it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.ground_truth import GroundTruthData
from jaxdisent.rng import per_example_keys, step_key
from jaxdisent import rng as rng_streams

# name -> (label feature names in grid order, sizes, public factor names)
KNOWN_DATASETS = {
    "dsprites": (
        ("label_shape", "label_scale", "label_orientation", "label_x_position", "label_y_position"),
        (3, 6, 40, 32, 32),
        ("shape", "scale", "orientation", "posX", "posY"),
    ),
    "shapes3d": (
        ("label_floor_hue", "label_wall_hue", "label_object_hue", "label_scale", "label_shape",
         "label_orientation"),
        (10, 10, 10, 8, 4, 15),
        ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
    ),
}


class TFDSGroundTruth(GroundTruthData):
  """A prepared TFDS ground-truth dataset, read record by record."""

  def __init__(self, name: str, data_dir: str | None = None, split: str = "train",
               cache: bool = True, cache_dir: str | None = None):
    if name not in KNOWN_DATASETS:
      raise ValueError(f"unknown TFDS ground-truth dataset {name!r}; known: {sorted(KNOWN_DATASETS)}")
    if data_dir is not None and not os.path.isdir(os.path.expanduser(data_dir)):
      raise FileNotFoundError(
          f"TFDS data_dir {data_dir!r} does not exist; prepare the dataset there first "
          f"(on a machine with network: `tfds build {name} --data_dir=DIR`)")
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    self.name = name
    self._labels, self._sizes, self._names = KNOWN_DATASETS[name]
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # tfds raises several types for a missing dataset
      raise FileNotFoundError(
          f"could not open prepared TFDS dataset {name!r} (split {split!r}) under data_dir="
          f"{data_dir!r}: {error}. jaxdisent never downloads; prepare it with "
          f"`tfds build {name} --data_dir=DIR` and pass --config.data.data_dir=DIR") from error
    self._split = split
    first = self._source[0]
    self._shape = tuple(int(d) for d in first["image"].shape)
    self.cache_path = None  # where the label table was read from / written to, if cached
    self._record_factors = (self._load_or_scan(cache_dir) if cache else self._scan_labels())
    self._grid_to_record = {int(g): i for i, g in enumerate(self.factors_to_index(self._record_factors))}

  def _scan_labels(self) -> np.ndarray:
    """Every record's factor classes, in record order (decodes every record)."""
    return np.stack([self._record_labels(i) for i in range(len(self._source))]).astype(np.int32)

  def _record_labels(self, i: int) -> list[int]:
    record = self._source[int(i)]
    return [int(record[k]) for k in self._labels]

  def _dataset_dir(self) -> str | None:
    """The prepared dataset's version folder (DATA_DIR/NAME/VERSION), if it exists on disk."""
    directory = str(getattr(self._source.dataset_info, "data_dir", "") or "")
    return directory if directory and os.path.isdir(directory) else None

  def _fingerprint(self) -> str:
    info = self._source.dataset_info
    files = []
    directory = self._dataset_dir()
    if directory is not None:
      for root, _, names in os.walk(directory):
        for file_name in sorted(names):
          if file_name.startswith("jaxdisent_labels_"):
            continue  # our own cache files
          stat = os.stat(os.path.join(root, file_name))
          files.append([os.path.relpath(os.path.join(root, file_name), directory), stat.st_size,
                        stat.st_mtime_ns])
    count = len(self._source)
    probes = sorted({0, count // 3, (2 * count) // 3, count - 1})
    description = {"name": self.name, "version": str(getattr(info, "version", "")),
                   "split": self._split, "records": count, "labels": list(self._labels),
                   "files": sorted(files), "probes": [self._record_labels(i) for i in probes]}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()

  def _cache_candidates(self, cache_dir: str | None) -> list[str]:
    file_name = "jaxdisent_labels_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", self._split) + ".npz"
    fallback = cache_dir or os.environ.get("JAXDISENT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "jaxdisent")
    version = str(getattr(self._source.dataset_info, "version", "unknown"))
    candidates = [os.path.join(fallback, "tfds", self.name, version, file_name)]
    directory = self._dataset_dir()
    if directory is not None:
      candidates.insert(0, os.path.join(directory, file_name))
    return candidates

  def _load_or_scan(self, cache_dir: str | None) -> np.ndarray:
    fingerprint = self._fingerprint()
    candidates = self._cache_candidates(cache_dir)
    for path in candidates:
      try:
        with np.load(path) as cached:
          if str(cached["fingerprint"]) == fingerprint:
            self.cache_path = path
            return cached["record_factors"]
      except (OSError, KeyError, ValueError):  # absent, unreadable or stale format: rescan
        continue
    factors = self._scan_labels()
    for path in candidates:  # next to the data if writable, else the cache folder
      try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Write-then-rename, so a reader (or a crash) never sees half a cache file.
        handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
        with os.fdopen(handle, "wb") as f:
          np.savez(f, fingerprint=np.array(fingerprint), record_factors=factors)
        os.replace(tmp, path)
        self.cache_path = path
        break
      except OSError:
        continue
    return factors

  @property
  def factor_names(self):
    return self._names

  @property
  def factor_sizes(self):
    return self._sizes

  @property
  def observation_shape(self):
    return self._shape

  @property
  def num_records(self) -> int:
    return len(self._record_factors)

  def images_from_factors(self, factors_NxK) -> jax.Array:
    grid = self.factors_to_index(np.asarray(factors_NxK))
    missing = [int(g) for g in grid if int(g) not in self._grid_to_record]
    if missing:
      raise KeyError(
          f"{len(missing)} factor combination(s) are not in the prepared {self.name} files "
          f"(first: {self.index_to_factors(missing[:1])[0].tolist()}); the files are incomplete")
    return self._images([self._grid_to_record[int(g)] for g in grid])

  def _images(self, records) -> jax.Array:
    images = np.stack([self._source[int(i)]["image"] for i in records]).astype(np.float32)
    if images.max(initial=0) > 1:
      images /= 255.0
    return jnp.asarray(images)

  def sample_factors(self, rng, n):
    """Uniform over records, which is uniform over the grid for a complete dataset."""
    records = np.asarray(jax.random.randint(rng, (n,), 0, self.num_records))
    return jnp.asarray(self._record_factors[records], dtype=jnp.int32)

  def batch(self, seed, step, start, size):
    keys = per_example_keys(step_key(seed, step, salt=rng_streams.GROUND_TRUTH_DATA), rng_streams.example_indices(start, size))
    records = np.asarray(jax.vmap(lambda k: jax.random.randint(k, (), 0, self.num_records))(keys))
    return {
        "image": self._images(records),
        "factors": jnp.asarray(self._record_factors[records], dtype=jnp.int32),
        "index": rng_streams.example_indices(start, size, jnp.int32),
    }
