"""Data sources. Every training batch is a pure function of (seed, step, process index)."""

from jaxdisent.data.ground_truth import GroundTruthData, describe
from jaxdisent.rng import per_example_keys, step_key
from jaxdisent.data.dsprites import DSprites
from jaxdisent.data.registry import SOURCES, Source, make_source, register_source, sources_of


__all__ = ["GroundTruthData", "DSprites", "SOURCES", "Source", "describe", "make_source",
           "per_example_keys", "register_source", "sources_of", "step_key"]
