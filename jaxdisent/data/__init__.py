"""Data sources. Every training batch is a pure function of (seed, step, process index)."""

from jaxdisent.data.ground_truth import GroundTruthData, describe, per_example_keys, step_key
from jaxdisent.data.dsprites import DSprites


def make_ground_truth(data_config) -> GroundTruthData:
  """Ground-truth-factor image dataset named by ``data_config.source``.

  ``dsprites`` (default) is the built-in procedural renderer; ``tfds:dsprites`` and
  ``tfds:shapes3d`` read prepared TFDS files from ``data_config.path``. (Workdirs written before
  the config vocabulary was unified use ``data.name`` / ``data.data_dir``; both are read.)
  """
  name = data_config.get("source", None) or data_config.get("name", "dsprites")
  path = data_config.get("path", None) or data_config.get("data_dir", None)
  if name == "dsprites":
    return DSprites()
  if name.startswith("tfds:"):
    from jaxdisent.data.tfds_source import TFDSGroundTruth  # tfds import is slow; only when asked
    return TFDSGroundTruth(name[len("tfds:"):], data_dir=path or None)
  raise ValueError(
      f"unknown ground-truth dataset data.source={name!r}; use 'dsprites' (procedural, no "
      "download), 'tfds:dsprites' or 'tfds:shapes3d' (prepared TFDS files in data.path)")


__all__ = ["GroundTruthData", "DSprites", "describe", "make_ground_truth", "per_example_keys",
           "step_key"]
