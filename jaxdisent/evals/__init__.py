"""Evaluators registered by name (see ``jaxdisent.evals.base`` for the contract)."""

from jaxdisent.evals.base import (EVALUATORS, EvalContext, flat_scalars, read_record, register,
                                  run_evaluations, selected, write_record)
# Importing an evaluator module registers its evaluators (one line per module).
from jaxdisent.evals import dictionary  # noqa: F401,E402  pylint: disable=unused-import
from jaxdisent.evals import disentanglement  # noqa: F401,E402  pylint: disable=unused-import
from jaxdisent.evals import graph  # noqa: F401,E402  (GEM: graph_recovery, gem_disentanglement, ...)
from jaxdisent.evals import sentiment  # noqa: F401,E402  pylint: disable=unused-import

__all__ = ["EVALUATORS", "EvalContext", "flat_scalars", "read_record", "register",
           "run_evaluations", "selected", "write_record"]
