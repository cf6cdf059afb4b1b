"""Data sources. Every training batch is a pure function of (seed, step, process index)."""

from jaxdisent.data.ground_truth import GroundTruthData, describe
from jaxdisent.rng import per_example_keys, step_key
from jaxdisent.data.dsprites import DSprites
from jaxdisent.data.registry import SOURCES, make_source, register_source, sources_of


def make_ground_truth(data_config) -> GroundTruthData:
  """Ground-truth-factor image dataset named by ``data_config.source`` (default dsprites).

  ``dsprites`` is the built-in procedural renderer; ``tfds:dsprites`` and ``tfds:shapes3d`` read
  prepared TFDS files from ``data_config.path``. Built by the one data factory, ``make_source``.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  return make_source(ml_collections.ConfigDict({"data": data_config}), "ground_truth",
                     default="dsprites")


__all__ = ["GroundTruthData", "DSprites", "SOURCES", "describe", "make_ground_truth", "make_source",
           "per_example_keys", "register_source", "sources_of", "step_key"]
