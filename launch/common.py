"""Command-line plumbing shared by the launch scripts: --config=FILE[:variant] plus --config.a.b=VALUE.

Config files are loaded and overridden with ml_collections' config_flags (the loader of
``DEFINE_config_file`` and the typed field parsers of ``DEFINE_config_dict``); this module adds the
renamed-key notes, the "did you mean" hint and one-line errors with exit status 2.
"""

from __future__ import annotations

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
  """Apply ``--config.KEY=VALUE`` overrides with ml_collections' config_flags.

  config_flags parses each value by the type of the field it replaces (int, float, bool, str,
  tuple). Before it runs, renamed keys are mapped to their new names (with a note) and unknown keys
  fail with a "did you mean" hint, which config_flags does not give.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections.config_flags import config_flags  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import flatten  # pylint: disable=g-import-not-at-top
  known = flatten(config)
  renamed = []
  for key, text in overrides:
    if key not in known and key in DEPRECATED_KEYS and DEPRECATED_KEYS[key] in known:
      print(f"[jaxdisent] note: --config.{key} is deprecated; use --config.{DEPRECATED_KEYS[key]}",
            file=sys.stderr)
      key = DEPRECATED_KEYS[key]
    if key not in known:
      close = difflib.get_close_matches(key, list(known), n=3)
      hint = f" Did you mean {', '.join(close)}?" if close else ""
      raise UsageError(f"unknown config key --config.{key}.{hint} Known keys: "
                       f"{', '.join(sorted(known))}")
    renamed.append((key, text))
  if not renamed:
    return config
  argv = ["jaxdisent"] + [f"--config.{key}={text}" for key, text in renamed]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_dict("config", config, flag_values=flag_values, sys_argv=argv,
                                  lock_config=False)
  try:
    flag_values(argv)
  except flags.Error as error:
    message = str(error).removeprefix("flag ")
    key = next((k for k, _ in renamed if f"--config.{k}=" in message), None)
    if key is not None:
      current = known[key]
      example = "(0, 4, 8)" if isinstance(current, (tuple, list)) else repr(current)
      kind = type(current).__name__
      message += f" (expected {'an' if kind[0] in 'aeiou' else 'a'} {kind} like {example})"
    raise UsageError(message) from None
  return flag_values.config


def parse_args(argv, flags: dict[str, object]):
  """Split argv into (config overrides, known flags). ``flags`` maps names to defaults."""
  values = dict(flags)
  overrides = []
  seen = {}
  for arg in argv:
    if not arg.startswith("--") or "=" not in arg:
      raise UsageError(f"unexpected argument {arg!r}; use --name=value (--help prints the usage)")
    name, text = arg[2:].split("=", 1)
    if name in seen and not name.startswith("config."):  # a repeated --config.KEY: last wins
      raise UsageError(f"--{name} is given twice ({seen[name]!r} and {text!r}); give it once")
    seen[name] = text
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
  from jaxdisent.train.config import validate_domains  # pylint: disable=g-import-not-at-top
  try:
    config = load_config(config_path)
  except (FileNotFoundError, ValueError) as error:
    raise UsageError(str(error)) from None
  config = apply_overrides(config, overrides)
  try:
    validate_domains(config)
  except ValueError as error:
    raise UsageError(f"invalid config: {error}") from None
  return config


def fail(message: str) -> int:
  message = " ".join(str(message).split())  # one line, whatever the exception carried
  print(f"[jaxdisent] error: {message}", file=sys.stderr)
  return 2


def _expected_errors() -> tuple:
  """Exceptions that mean bad input or a bad environment: one line, exit 2."""
  kinds = [UsageError, ValueError, KeyError, TypeError, OSError, FloatingPointError, RuntimeError]
  try:
    from safetensors import SafetensorError  # pylint: disable=g-import-not-at-top
    kinds.append(SafetensorError)
  except ImportError:
    pass
  return tuple(kinds)


def _describe(error: BaseException) -> str:
  text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
  text = text.strip() or type(error).__name__
  if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
    text = f"{error.filename}: {text}"
  import re  # pylint: disable=g-import-not-at-top
  text = re.sub(r"(Error dispatching computation: )+", "Error dispatching computation: ", text)
  if "Out of memory" in text or "RESOURCE_EXHAUSTED" in text and "alloc" in text:
    text += (" (the step needs more memory than this machine has: lower train.batch_size or the "
             "model's size)")
  if isinstance(error, OSError) and error.errno == 28:  # ENOSPC
    text += " (the disk is full: free space, or lower train.keep_checkpoints)"
  return text


def run_main(main, argv=None, doc: str | None = None) -> int:
  """The launchers' one entry point: --help prints usage; every failure is one line.

  Bad input and environment problems (UsageError, ValueError, OSError, a corrupt file, a busy
  workdir, ...) print ``[jaxdisent] error: ...`` and return 2; Ctrl-C returns 130. Anything else is
  a bug of ours: one line naming it, the traceback in a file for the report, and status 1.
  ``JAXDISENT_TRACEBACK=1`` lets every exception through with its traceback.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  own = argv[:argv.index("--")] if "--" in argv else argv  # what follows -- belongs to a child
  if any(arg in ("--help", "-h", "--helpfull") for arg in own):
    print((doc or main.__doc__ or "").strip() or "see the module's docstring")
    return 0
  if os.environ.get("JAXDISENT_TRACEBACK") == "1":
    return main(argv)
  try:
    return main(argv)
  except KeyboardInterrupt:
    print("[jaxdisent] interrupted", file=sys.stderr)
    return 130
  except _expected_errors() as error:
    return fail(_describe(error))
  except Exception as error:  # pylint: disable=broad-except
    import tempfile  # pylint: disable=g-import-not-at-top
    import traceback  # pylint: disable=g-import-not-at-top
    handle, path = tempfile.mkstemp(prefix="jaxdisent-traceback-", suffix=".txt")
    with os.fdopen(handle, "w") as f:
      traceback.print_exc(file=f)
    print(f"[jaxdisent] error: internal error {type(error).__name__}: {_describe(error)} "
          f"(a bug; the traceback is in {path}, please report it)", file=sys.stderr)
    return 1
