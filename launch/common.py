"""Command-line plumbing shared by the launch scripts: --config=FILE plus --config.a.b=VALUE."""

from __future__ import annotations

import ast
import difflib
import os
import sys


def parse_int(flag: str, text: str, minimum: int | None = None) -> int:
  """An integer flag value, or a UsageError naming the flag."""
  try:
    value = int(text)
  except (TypeError, ValueError):
    raise UsageError(f"--{flag}={text}: expected an integer") from None
  if minimum is not None and value < minimum:
    raise UsageError(f"--{flag}={value}: must be >= {minimum}")
  return value


def force_cpu_devices(argv) -> None:
  """--devices=N forces N host (CPU) devices; must run before JAX initialises."""
  for arg in argv:
    if arg.startswith("--devices="):
      count = parse_int("devices", arg.split("=", 1)[1], minimum=1)
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                 f" --xla_force_host_platform_device_count={count}")


def _coerce(text: str, current):
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"expected true/false, got {text!r}")
  if isinstance(current, int):
    return int(float(text)) if float(text).is_integer() else int(text)
  if isinstance(current, float):
    return float(text)
  if isinstance(current, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


class UsageError(ValueError):
  pass


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


def apply_overrides(config, overrides: list[tuple[str, str]]):
  from jaxdisent.train.config import flatten  # pylint: disable=g-import-not-at-top
  known = flatten(config)
  renamed = []
  for key, text in overrides:
    if key not in known and key in DEPRECATED_KEYS and DEPRECATED_KEYS[key] in known:
      print(f"[jaxdisent] note: --config.{key} is deprecated; use --config.{DEPRECATED_KEYS[key]}",
            file=sys.stderr)
      key = DEPRECATED_KEYS[key]
    renamed.append((key, text))
  for key, text in renamed:
    if key not in known:
      close = difflib.get_close_matches(key, list(known), n=3)
      hint = f" Did you mean {', '.join(close)}?" if close else ""
      raise UsageError(f"unknown config key --config.{key}.{hint} Known keys: "
                       f"{', '.join(sorted(known))}")
    try:
      value = _coerce(text, known[key])
    except ValueError as error:
      raise UsageError(f"--config.{key}={text}: {error}") from error
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    with config.unlocked() if hasattr(config, "unlocked") else _null():
      try:
        node[leaf] = value
      except TypeError:
        current = known[key]
        example = "(0, 4, 8)" if isinstance(current, (tuple, list)) else repr(current)
        raise UsageError(f"--config.{key}={text}: expected a {type(current).__name__} like "
                         f"{example}, got {type(value).__name__}") from None
  return config


class _null:
  def __enter__(self):
    return self

  def __exit__(self, *exc):
    return False


def parse_args(argv, flags: dict[str, object]):
  """Split argv into (config overrides, known flags). ``flags`` maps names to defaults."""
  values = dict(flags)
  overrides = []
  for arg in argv:
    if not arg.startswith("--") or "=" not in arg:
      raise UsageError(f"unexpected argument {arg!r}; use --name=value")
    name, text = arg[2:].split("=", 1)
    if name.startswith("config."):
      overrides.append((name[len("config."):], text))
    elif name in values:
      values[name] = text
    else:
      raise UsageError(f"unknown flag --{name}; known: "
                       f"{', '.join('--' + n for n in values)}, --config.KEY=VALUE")
  return overrides, values


def load_config_from_args(config_path, overrides):
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  if not config_path:
    raise UsageError("--config=FILE is required (e.g. --config=configs/beta_vae_dsprites.py)")
  try:
    config = load_config(config_path)
  except (FileNotFoundError, ValueError) as error:
    raise UsageError(str(error)) from None
  return apply_overrides(config, overrides)


def fail(message: str) -> int:
  print(f"[jaxdisent] error: {message}", file=sys.stderr)
  return 2
