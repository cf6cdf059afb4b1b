"""Attribute tables of real image datasets prepared with TFDS (e.g. ``celeb_a``'s 40 binary
attributes), read with ``tfds.data_source`` (no TensorFlow, nothing downloaded).

The pool is the split's records in file order (``data.max_records`` caps it). Per-image values are
the attribute columns as floats in [0, 1] (binary attributes 0 / 1), so the ``labels`` oracle and the
``simulated`` oracle work on them and a chat oracle's scores line up by pool index. Images are
centre-cropped to a square of ``data.crop`` pixels (0: the shorter side; 148 is the usual CelebA
crop) and resized to 64 x 64 (what the VAE decodes). There is no ground-truth graph
(``true_adjacency()`` is None): the relations come from the oracle alone.
Prepare the dataset elsewhere (``tfds build celeb_a --data_dir=DIR``) and pass
``--config.data.source=tfds --config.data.name=celeb_a --config.data.path=DIR``.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxdisent.data.graph_source import GraphSource

IMAGE_SIZE = 64


class TFDSAttributeSource(GraphSource):
  """A prepared TFDS dataset with a dict feature of per-image attributes."""

  jittable = False

  def __init__(self, dataset: str = "celeb_a", data_dir: str | None = None, split: str = "train",
               attributes_feature: str = "attributes", max_records: int = 0, crop: int = 148):
    if data_dir and not os.path.isdir(os.path.expanduser(data_dir)):
      raise FileNotFoundError(f"data.path {data_dir!r} does not exist; prepare the dataset there "
                              f"first (on a machine with network: `tfds build {dataset} "
                              "--data_dir=DIR`)")
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    self.name = f"tfds:{dataset}"
    self.dataset, self.split, self.crop = dataset, split, int(crop)
    try:
      self._source = tfds.data_source(dataset, split=split, data_dir=data_dir or None,
                                      download=False)
    except Exception as error:  # tfds raises several types for a missing dataset
      raise FileNotFoundError(
          f"could not open prepared TFDS dataset {dataset!r} (split {split!r}) under "
          f"data.path={data_dir!r}: {error}. jaxdisent never downloads; prepare it with "
          f"`tfds build {dataset} --data_dir=DIR`") from error
    first = self._source[0]
    if attributes_feature not in first or not isinstance(first[attributes_feature], dict):
      raise ValueError(f"{dataset} has no dict feature {attributes_feature!r} of attributes; its "
                       f"features are {sorted(first)}")
    self._names = tuple(sorted(first[attributes_feature]))
    count = len(self._source) if not max_records else min(int(max_records), len(self._source))
    table = np.array([[float(self._source[i][attributes_feature][a]) for a in self._names]
                      for i in range(count)], np.float32)
    low, high = table.min(axis=0), table.max(axis=0)
    self._values = (table - low) / np.where(high > low, high - low, 1.0)

  @classmethod
  def from_config(cls, data_config):
    return cls(dataset=data_config.get("name", "celeb_a") or "celeb_a",
               data_dir=data_config.get("path", "") or None,
               split=data_config.get("split", "train"),
               max_records=int(data_config.get("max_records", 0)),
               crop=int(data_config.get("crop", 148)))

  @property
  def attribute_names(self):
    return self._names

  @property
  def pool_size(self):
    return len(self._values)

  @property
  def observation_shape(self):
    return (IMAGE_SIZE, IMAGE_SIZE, 3)

  def settings(self):
    return {"dataset": self.dataset, "split": self.split, "crop": self.crop}

  def true_adjacency(self):
    return None

  def pool_values(self, index_N):
    return jnp.asarray(self._values[self.check_index(index_N)])

  def pool_images(self, index_N):
    images = []
    for i in self.check_index(index_N):
      image = np.asarray(self._source[int(i)]["image"], np.float32) / 255.0
      if image.ndim == 2:
        image = image[..., None]
      height, width = image.shape[:2]
      side = min(self.crop or min(height, width), height, width)
      top, left = (height - side) // 2, (width - side) // 2
      image = image[top:top + side, left:left + side]
      if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
      images.append(np.asarray(jax.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE, 3), "linear")))
    return jnp.asarray(np.stack(images))
