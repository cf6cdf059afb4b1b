"""Prepared TFDS datasets (dsprites, shapes3d) behind the ground-truth-factor interface.

Reads with ``tfds.data_source`` (random access over array_record files), which needs no
TensorFlow. Nothing is downloaded: the dataset must already be prepared under ``data_dir``
(``tfds build dsprites --data_dir=...`` on a machine with network). Factor classes are read from the
``label_*`` features; images are returned as float32 in [0, 1].

Because the records of a prepared dataset are not stored in grid order, the source reads every
record's labels once and keeps a table from grid position to record. A combination missing from
the files (as in mock data) raises a clear error if asked for.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.ground_truth import GroundTruthData, per_example_keys, step_key
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

  def __init__(self, name: str, data_dir: str | None = None, split: str = "train"):
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
    first = self._source[0]
    self._shape = tuple(int(d) for d in first["image"].shape)
    self._record_factors = np.stack(
        [[int(self._source[i][k]) for k in self._labels] for i in range(len(self._source))])
    self._grid_to_record = {int(g): i for i, g in enumerate(self.factors_to_index(self._record_factors))}

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
    keys = per_example_keys(step_key(seed, step, salt=rng_streams.GROUND_TRUTH_DATA), jnp.arange(start, start + size))
    records = np.asarray(jax.vmap(lambda k: jax.random.randint(k, (), 0, self.num_records))(keys))
    return {
        "image": self._images(records),
        "factors": jnp.asarray(self._record_factors[records], dtype=jnp.int32),
        "index": jnp.arange(start, start + size, dtype=jnp.int32),
    }
