"""Config files (ml_collections), overrides, and the workdir's config.json."""

from __future__ import annotations

import json
import os
import sys

import ml_collections

# Sections whose change makes an existing checkpoint meaningless (different parameters/state).
INCOMPATIBLE_SECTIONS = ("method", "model")


def load_config(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Load ``get_config()`` from a config file and apply dotted overrides ({'train.num_steps': 5}).

  An unknown override key is an error that names the key and the keys that exist.
  ``path`` may name a variant, big_vision style: ``configs/x.py:variant`` calls
  ``get_config("variant")``.
  """
  variant = None
  if ":" in os.path.basename(path):
    path, variant = path.rsplit(":", 1)
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file {path!r} not found")
  if os.path.isdir(path) or not path.endswith(".py"):
    raise ValueError(f"--config={path!r} is not a Python config file; pass a .py file that "
                     "defines get_config(), e.g. configs/beta_vae_dsprites.py")
  # ml_collections' own loader (the one config_flags.DEFINE_config_file uses); the checks above
  # and below turn its tracebacks into one-line messages.
  from ml_collections.config_flags import config_flags  # pylint: disable=g-import-not-at-top
  parser = config_flags.ConfigFileFlagParser("jaxdisent", lock_config=False)
  # Its SourceFileLoader.load_module() re-executes into a module already in sys.modules, so a
  # second config file would inherit the first one's get_config(): start from a fresh module.
  sys.modules.pop("jaxdisent_config", None)
  try:
    config = parser.parse(path if variant is None else f"{path}:{variant}")
  except AttributeError as error:
    if "get_config" not in str(error):
      raise _config_file_error(path, error) from None
    raise ValueError(f"config file {path!r} defines no get_config() function returning an "
                     "ml_collections.ConfigDict; see configs/ for examples") from None
  except TypeError as error:
    if variant is not None and "positional argument" in str(error):
      raise ValueError(f"{path} has no variants (its get_config() takes no argument); drop "
                       f"':{variant}'") from None
    if variant is None and "required positional argument" in str(error):
      raise ValueError(f"{path}'s get_config() needs a variant: --config={path}:VARIANT "
                       "(its docstring lists them)") from None
    raise _config_file_error(path, error) from None
  except Exception as error:  # pylint: disable=broad-except
    # Anything the file itself raises (a syntax error, a failing import, get_config() raising)
    # is the file's problem: one line naming it, not our traceback.
    raise _config_file_error(path, error) from None
  finally:
    sys.modules.pop("jaxdisent_config", None)
  if type(config).__name__ == "_ErrorConfig":  # config_flags defers IOErrors; raise them now
    raise FileNotFoundError(f"config file {path!r} could not be loaded: {config._error}")  # pylint: disable=protected-access
  if not isinstance(config, ml_collections.ConfigDict):
    raise ValueError(f"get_config() in {path!r} returned {type(config).__name__}, not an "
                     "ml_collections.ConfigDict")
  for key, value in (overrides or {}).items():
    set_dotted(config, key, value)
  return config


def _config_file_error(path: str, error: BaseException) -> ValueError:
  where = ""
  if isinstance(error, SyntaxError):
    where = f" at line {error.lineno}" if error.lineno else ""
    text = error.msg
  else:
    text = " ".join(str(error).split()) or "(no message)"
  return ValueError(f"config file {path!r} could not be loaded{where}: {type(error).__name__}: "
                    f"{text}; fix the file")


def set_dotted(config: ml_collections.ConfigDict, key: str, value) -> None:
  *parents, leaf = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if part not in node:
      raise KeyError(unknown_key_message(".".join(parents[: i + 1]), node))
    node = node[part]
  if leaf not in node:
    raise KeyError(unknown_key_message(key, node))
  node[leaf] = value


def unknown_key_message(key: str, node) -> str:
  return (f"unknown config key {key!r}; keys at that level: {sorted(node.keys())}. "
          "Check the spelling or add the key to the config file")


def flatten(config, prefix: str = "") -> dict:
  out = {}
  items = config.items() if hasattr(config, "items") else []
  for key, value in items:
    name = f"{prefix}{key}"
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      out.update(flatten(value, name + "."))
    else:
      out[name] = value
  return out


def config_to_dict(config) -> dict:
  return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else dict(config)


def check_and_write_workdir_config(config, workdir: str, *, has_checkpoints: bool = True,
                                   write: bool = True) -> list[str]:
  """Write WORKDIR/config.json, or compare with the one already there.

  Returns the names of changed keys that are allowed to change on resume (e.g. train.num_steps).
  Raises ValueError naming the keys if the existing run has checkpoints and a different method or
  model. Without checkpoints there is nothing to protect: the new config replaces the old one (a
  first run that crashed on a bad value must not block the corrected command).
  """
  path = os.path.join(workdir, "config.json")
  new = config_to_dict(config)
  changed = []
  if os.path.exists(path) and has_checkpoints:
    with open(path) as f:
      try:
        old = json.load(f)
      except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}) but the workdir has checkpoints; restore the "
            "file from the command you trained with (or delete it: the checkpoints' manifests "
            "still refuse a different model), or use a new --workdir") from error
    old_flat, new_flat = flatten(old), flatten(new)
    changed = sorted(k for k in set(old_flat) | set(new_flat) if old_flat.get(k) != new_flat.get(k))
    # A model key the run's config.json does not have is a setting added to jaxdisent after the
    # run started (e.g. model.fusion_layers); the checkpoint's manifest still refuses a state of
    # another shape, so such keys do not block the resume (they are listed as changed).
    fatal = [k for k in changed if k.split(".")[0] in INCOMPATIBLE_SECTIONS and k in old_flat]
    if fatal:
      details = "; ".join(f"{k}: {old_flat.get(k)!r} -> {new_flat.get(k)!r}" for k in fatal)
      raise ValueError(
          f"workdir {workdir} holds a run with a different method/model ({details}). Its "
          "checkpoints cannot be resumed with this config: use a new --workdir, or the same config")
  if write:
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(new, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
  return changed


def read_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a jaxdisent run directory")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


# Domains of config values, by the key's last name (one meaning per name in every method, see
# docs/configs.md). Checked for every config before anything is written: a value outside its
# domain would train something else than asked (a negative beta, k > dict_size) or fail late.
# (lower, upper, lower_inclusive, upper_inclusive, integer); None = unbounded.
_POSITIVE_INT = (1, None, True, False, True)
_NONNEGATIVE_INT = (0, None, True, False, True)
_NONNEGATIVE = (0.0, None, True, False, False)
_POSITIVE = (0.0, None, False, False, False)
_PROBABILITY = (0.0, 1.0, True, True, False)
_DECAY = (0.0, 1.0, True, False, False)
DOMAINS = {
    **{name: _POSITIVE_INT for name in (
        "batch_size", "dict_size", "k", "latent_dim", "width", "hidden", "num_heads",
        "num_prototypes", "em_steps", "ot_iterations", "dim", "num_bins", "num_eval", "num_train",
        "num_pairs", "num_examples", "num_images", "concurrency", "levels", "gnn_hidden",
        "gnn_layers", "init_batch", "sparse_chunk", "discriminator_hidden", "conv_kernel",
        "pool_size", "dead_tokens", "num_common", "widths", "lengths", "split_sizes", "num_steps",
        "log_every", "checkpoint_every", "fusion_layers")},
    **{name: _NONNEGATIVE_INT for name in (
        "seed", "warmup_steps", "row_cap", "k_aux", "max_retries", "threshold_start_step",
        "iteration_threshold", "num_classes", "eval_every", "num_unique", "num_image_only",
        "num_text_only", "num_shared", "seeds")},
    **{name: _NONNEGATIVE for name in (
        "beta", "c_max", "noise", "noise_std", "ridge", "var_floor", "learning_rate",
        "grad_clip_norm", "eps", "gain", "modality_gap", "auxk_alpha", "sparse_capacity",
        "jumprelu_init_threshold", "retry_after_cap_s", "dropout_rate", "weight_decay",
        "graph_learning_rate")},
    **{name: _POSITIVE for name in (
        "temperature", "ot_epsilon", "timeout_s", "jumprelu_bandwidth", "active_per_pair",
        "mmd_bandwidths")},
    **{name: _PROBABILITY for name in (
        "accuracy", "missing_rate", "min_length_fraction", "dropout", "image_fraction",
        "min_answer_rate")},
    **{name: _DECAY for name in ("b1", "b2", "threshold_beta", "match_decay")},
}
# Every *_weight and *_coeff (loss coefficients) is >= 0.
_SUFFIX_DOMAINS = {"_weight": _NONNEGATIVE, "_coeff": _NONNEGATIVE}


def _domain_of(key: str):
  name = key.rsplit(".", 1)[-1]
  if name in DOMAINS:
    return DOMAINS[name]
  for suffix, domain in _SUFFIX_DOMAINS.items():
    if name.endswith(suffix):
      return domain
  return None


def _describe_domain(domain) -> str:
  lower, upper, lower_in, upper_in, integer = domain
  kind = "an integer" if integer else "a finite number"
  parts = []
  if lower is not None:
    parts.append(f"{'>=' if lower_in else '>'} {lower:g}")
  if upper is not None:
    parts.append(f"{'<=' if upper_in else '<'} {upper:g}")
  return f"{kind} {' and '.join(parts)}" if parts else kind


def _outside(value, domain) -> bool:
  lower, upper, lower_in, upper_in, integer = domain
  if integer and not (isinstance(value, int) or float(value).is_integer()):
    return True
  if lower is not None and (value < lower if lower_in else value <= lower):
    return True
  if upper is not None and (value > upper if upper_in else value >= upper):
    return True
  return False


def validate_domains(config) -> None:
  """Refuse NaN/inf anywhere and any value outside its key's domain (``DOMAINS``).

  Raises ValueError naming the key, the value, the domain and the flag that fixes it.
  """
  import math  # pylint: disable=g-import-not-at-top
  for key, value in flatten(config).items():
    values = value if isinstance(value, (tuple, list)) else (value,)
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for number in numbers:
      if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{key}={value!r} is not a finite number; set --config.{key}= to a "
                         "finite value")
    domain = _domain_of(key)
    if domain is None or not numbers:
      continue
    bad = [v for v in numbers if _outside(v, domain)]
    if bad:
      each = "(each value) " if isinstance(value, (tuple, list)) else ""
      raise ValueError(f"{key}={value!r} {each}must be {_describe_domain(domain)}; set "
                       f"--config.{key}= accordingly")
