"""Command-line plumbing shared by the launch scripts: --config=FILE[:variant] plus --config.a.b=VALUE.

Config files are loaded and overridden with ml_collections' config_flags (the loader of
``DEFINE_config_file`` and the typed field parsers of ``DEFINE_config_dict``); this module adds the
renamed-key notes, the "did you mean" hint and one-line errors with exit status 2.
"""

from __future__ import annotations

import os
import sys

from jaxdisent.usage import UsageError, parse_int  # light: no JAX at --help


def force_cpu_devices(argv) -> None:
  """--devices=N forces N host (CPU) devices; must run before JAX initialises."""
  for arg in argv:
    if arg.startswith("--devices="):
      count = parse_int("devices", arg.split("=", 1)[1], minimum=1)
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                 f" --xla_force_host_platform_device_count={count}")


def apply_overrides(config, overrides: list[tuple[str, str]]):
  """``--config.KEY=VALUE`` overrides (:func:`jaxdisent.runs.apply_overrides`)."""
  from jaxdisent import runs  # pylint: disable=g-import-not-at-top  # JAX loads after --help
  return runs.apply_overrides(config, overrides)


def load_config_from_args(config_path, overrides):
  """The config file with overrides (:func:`jaxdisent.runs.load_config_with_overrides`)."""
  from jaxdisent import runs  # pylint: disable=g-import-not-at-top  # JAX loads after --help
  return runs.load_config_with_overrides(config_path, overrides)


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
