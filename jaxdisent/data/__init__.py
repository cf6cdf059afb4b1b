"""Data sources. Every training batch is a pure function of (seed, step, process index)."""

from jaxdisent.data.ground_truth import GroundTruthData, describe, per_example_keys, step_key
from jaxdisent.data.dsprites import DSprites


def make_ground_truth(data_config) -> GroundTruthData:
  """Ground-truth-factor image dataset named by ``data_config.name``.

  ``dsprites`` (default) is the built-in procedural renderer; ``tfds:dsprites`` and
  ``tfds:shapes3d`` read prepared TFDS files from ``data_config.data_dir``.
  """
  name = data_config.name
  if name == "dsprites":
    return DSprites()
  if name.startswith("tfds:"):
    from jaxdisent.data.tfds_source import TFDSGroundTruth  # tfds import is slow; only when asked
    return TFDSGroundTruth(name[len("tfds:"):], data_dir=data_config.get("data_dir") or None)
  raise ValueError(
      f"unknown ground-truth dataset {name!r}; use 'dsprites' (procedural, no download), "
      "'tfds:dsprites' or 'tfds:shapes3d' (prepared TFDS files in data.data_dir)")


__all__ = ["GroundTruthData", "DSprites", "describe", "make_ground_truth", "per_example_keys",
           "step_key"]
