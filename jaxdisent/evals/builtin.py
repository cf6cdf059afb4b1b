"""Imports every module that registers evaluators (one line per module)."""

# pylint: disable=unused-import
from jaxdisent.evals import dictionary  # noqa: F401
from jaxdisent.evals import disentanglement  # noqa: F401
from jaxdisent.evals import sentiment  # noqa: F401
from jaxdisent.evals import graph  # noqa: F401  (GEM: graph_recovery, gem_disentanglement)
