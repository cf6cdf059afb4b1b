"""Imports every module that registers evaluators (one line per module)."""

# pylint: disable=unused-import
from jaxdisent.evals import graph  # GEM: graph_recovery, gem_disentanglement
