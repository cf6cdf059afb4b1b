"""Bad user input: the error type and the small parsers every entry point shares (no JAX here).

:class:`UsageError` is a ``ValueError`` whose text is one line naming the problem and the fix; the
launchers print it as ``[jaxdisent] error: ...`` and exit 2, library calls raise it as it is.
"""

from __future__ import annotations


class UsageError(ValueError):
  """Bad input from the user (a flag, a config value, a file): one line naming the fix."""


def parse_int(flag: str, text: str, minimum: int | None = None) -> int:
  """An integer flag value, or a UsageError naming the flag."""
  try:
    value = int(text)
  except (TypeError, ValueError):
    raise UsageError(f"--{flag}={text}: expected an integer") from None
  if minimum is not None and value < minimum:
    raise UsageError(f"--{flag}={value}: must be >= {minimum}")
  return value


# Keys renamed by the evaluation contract: old name -> new name (the old one still works, with a note).
DEPRECATED_KEYS = {
    "eval.run_at_end": "evals.disentanglement.run_in_training",
    "eval.num_train": "evals.disentanglement.num_train",
    "eval.num_eval": "evals.disentanglement.num_eval",
    "eval.dci_importance": "evals.disentanglement.dci_importance",
    "eval.num_pairs": "evals.dictionary.num_pairs",
    "eval.batch_size": "evals.sentiment.batch_size",
    "train.steps": "train.num_steps",
    "data.name": "data.source",
    "data.data_dir": "data.path",
    "loss.gamma": "loss.capacity_weight",
    "loss.alpha": "loss.heterogeneity_weight",   # DecAlign's alpha
    "loss.beta": "loss.homogeneity_weight",      # DecAlign's beta (beta-VAE keeps loss.beta)
    "train.learning_rate": "optimizer.learning_rate",
}
