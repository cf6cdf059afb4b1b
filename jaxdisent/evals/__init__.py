"""Evaluators registered by name (see ``jaxdisent.evals.base`` for the contract)."""

from jaxdisent.evals.base import (EVALUATORS, EvalContext, flat_scalars, read_record, register,
                                  run_evaluations, selected, write_record)

__all__ = ["EVALUATORS", "EvalContext", "flat_scalars", "read_record", "register",
           "run_evaluations", "selected", "write_record"]
