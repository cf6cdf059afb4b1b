"""Config files (ml_collections), overrides, and the workdir's config.json."""

from __future__ import annotations

import importlib.util
import json
import os

import ml_collections

# Sections whose change makes an existing checkpoint meaningless (different parameters/state).
INCOMPATIBLE_SECTIONS = ("method", "model")


def load_config(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """Load ``get_config()`` from a config file and apply dotted overrides ({'train.num_steps': 5}).

  An unknown override key is an error that names the key and the keys that exist.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file {path!r} not found")
  spec = importlib.util.spec_from_file_location("_jaxdisent_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in (overrides or {}).items():
    set_dotted(config, key, value)
  return config


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


def check_and_write_workdir_config(config, workdir: str, write: bool = True) -> list[str]:
  """Write WORKDIR/config.json, or compare with the one already there.

  Returns the names of changed keys that are allowed to change on resume (e.g. train.num_steps).
  Raises ValueError naming the keys if the existing run has a different method or model.
  ``write=False`` only compares: in a multi-process run every process checks, process 0 writes.
  """
  path = os.path.join(workdir, "config.json")
  new = config_to_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      try:
        old = json.load(f)
      except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); restore it or use a new workdir") from error
    old_flat, new_flat = flatten(old), flatten(new)
    changed = sorted(k for k in set(old_flat) | set(new_flat) if old_flat.get(k) != new_flat.get(k))
    fatal = [k for k in changed if k.split(".")[0] in INCOMPATIBLE_SECTIONS]
    if fatal:
      details = "; ".join(f"{k}: {old_flat.get(k)!r} -> {new_flat.get(k)!r}" for k in fatal)
      raise ValueError(
          f"workdir {workdir} holds a run with a different method/model ({details}). Its "
          "checkpoints cannot be resumed with this config: use a new --workdir, or the same config")
    if write:
      _write_json_atomically(path, new)
    return changed
  os.makedirs(workdir, exist_ok=True)
  if write:
    _write_json_atomically(path, new)
  return []


def _write_json_atomically(path: str, value) -> None:
  # Write-then-rename: a kill mid-write (or another process reading while process 0 writes)
  # sees the old file or the new one, never a truncated config.json that blocks every resume.
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def read_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a jaxdisent run directory")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))
