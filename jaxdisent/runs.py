"""Runs: what the launchers and your own Python call between a config file and the engine.

The one module that builds a method from a config (``jaxdisent.methods.make_method``) for the
engine: restore a workdir (:func:`restore_latest`), evaluate it (:func:`evaluate_workdir`), train a
grid of cells and tabulate their records (:func:`run_cells`, :func:`parse_grid`,
:func:`summarize`), and load a config file with ``KEY=VALUE`` overrides the way ``--config.KEY=VALUE``
does (:func:`load_config_with_overrides`). The launchers in ``launch/`` parse argv and make one
call here; nothing here reads argv.

  from jaxdisent import runs
  rows = runs.run_cells("configs/sae_vlm_synthetic.py", "runs/k_sweep",
                        [(f"k={k}_seed{s}", [("model.k", str(k)), ("seed", str(s))])
                         for k in (8, 16, 32) for s in (0, 1)])
  table, markdown = runs.summarize(rows, group_keys=[])

Bad input raises :class:`UsageError` (a ``ValueError``) with one line naming the problem and the
fix; the launchers print it as ``[jaxdisent] error: ...`` and exit 2.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import sys

import jax
import ml_collections
import numpy as np
from absl import flags as absl_flags
from absl import logging as absl_logging
from ml_collections.config_flags import config_flags

from jaxdisent.evals import flat_scalars, read_record, run_evaluations
from jaxdisent.evals.base import DEFAULT_SETTINGS
from jaxdisent.methods import make_method
from jaxdisent.train import lock
from jaxdisent.train.checkpoint import CheckpointError, Checkpointer
from jaxdisent.train.config import flatten, load_config, read_workdir_config, validate_domains
from jaxdisent.train.lock import workdir_lock
from jaxdisent.train.logging import MetricsWriter
from jaxdisent.train import loop as _loop
from jaxdisent.train import model_axis as _model_axis
from jaxdisent.train.loop import validate_train_config
from jaxdisent.train.model_axis import group_key
from jaxdisent.train.state import TrainState
from jaxdisent.usage import DEPRECATED_KEYS, UsageError, parse_int

__all__ = ["UsageError", "apply_overrides", "cell_name", "evaluate_workdir", "load_config_with_overrides",
           "parse_grid", "parse_seeds", "restore_latest", "run_cells", "split_seed_axis",
           "summarize", "write_summary"]


def fit(config, workdir: str, *, method=None, **kwargs):
  """``jaxdisent.train.fit`` with the method built from ``config.method`` when not given.

  The engine takes the method as an argument and imports nothing from ``jaxdisent.methods``; this
  is the convenience that does (``kwargs``: devices, step_callback, quiet, as the engine's fit).
  """
  if method is None:
    validate_train_config(config)   # the config's own errors first, as the engine reports them
    method = make_method(config)
  return _loop.fit(config, workdir, method=method, **kwargs)


def fit_group(cells, *, methods=None, **kwargs):
  """``jaxdisent.train.model_axis.fit_group`` with each cell's method built from its config when
  ``methods`` is not given (cells: [(config, workdir), ...] differing only in seed)."""
  if methods is None:
    for config, _ in cells:
      validate_train_config(config)
    methods = [make_method(config) for config, _ in cells]
  return _model_axis.fit_group(cells, methods=methods, **kwargs)


def apply_overrides(config, overrides: list[tuple[str, str]]):
  """Apply ``--config.KEY=VALUE`` overrides with ml_collections' config_flags.

  config_flags parses each value by the type of the field it replaces (int, float, bool, str,
  tuple). Before it runs, renamed keys are mapped to their new names (with a note) and unknown keys
  fail with a "did you mean" hint, which config_flags does not give.
  """
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
  flag_values = absl_flags.FlagValues()
  config_flags.DEFINE_config_dict("config", config, flag_values=flag_values, sys_argv=argv,
                                  lock_config=False)
  try:
    flag_values(argv)
  except absl_flags.Error as error:
    message = str(error).removeprefix("flag ")
    key = next((k for k, _ in renamed if f"--config.{k}=" in message), None)
    if key is not None:
      current = known[key]
      example = "(0, 4, 8)" if isinstance(current, (tuple, list)) else repr(current)
      kind = type(current).__name__
      message += f" (expected {'an' if kind[0] in 'aeiou' else 'a'} {kind} like {example})"
    raise UsageError(message) from None
  return flag_values.config


def load_config_with_overrides(config_path, overrides):
  if not config_path:
    raise UsageError("--config=FILE is required (e.g. --config=configs/beta_vae_dsprites.py)")
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


def restore_latest(workdir: str, step: int | None = None, devices=None, config=None):
  """(config, method, plain TrainState, step) of the latest (or given) checkpoint in `workdir`.

  The state lands on this process's first device (or ``devices[0]``) whatever device count or
  parallel mode wrote it, and is verified against the checksums recorded at save time.
  ``config`` (default: the workdir's config.json) must describe the same model.
  """
  config = read_workdir_config(workdir) if config is None else config
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoints in {workdir}: train first (python -m launch.train "
                            f"--config=... --workdir={workdir})")
  device = (jax.local_devices() if devices is None else list(devices))[0]
  checkpointer = Checkpointer(directory, max_to_keep=None, is_writer=False)
  try:
    available = checkpointer.all_steps()
    if not available:
      raise FileNotFoundError(f"{directory} holds no finished checkpoint; train first")
    if step is None:
      step = max(available)
    elif step not in available:
      raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; have {available}")
    method = make_method(config)
    # (a concrete init, not jax.eval_shape: some methods' init inspects data, e.g. the SAE's b_dec)
    abstract = _template(method, config.seed)
    sharding = jax.sharding.SingleDeviceSharding(device)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                            abstract)
    try:
      state = checkpointer.restore(step, abstract)
    except CheckpointError as error:
      if error.kind == "corrupt":
        earlier = [s for s in available if s < step]
        hint = (f"use --step={max(earlier)} (an earlier checkpoint)" if earlier else
                "no earlier checkpoint exists")
        raise CheckpointError(f"{error}. Re-running launch.train on {workdir} moves the bad step "
                              f"aside and retrains it from the previous good one; or {hint}",
                              kind="corrupt", step=step) from error
      raise
  finally:
    checkpointer.close()
  return config, method, state, step


def _template(method, seed):
  params, model_state = method.init(jax.random.key(seed))
  return TrainState.create(params, method.optimizer().init(params), model_state)


def evaluate_untrained(config, workdir: str, *, only=None, log=None) -> dict:
  """The untrained control: the model at initialisation (seed ``config.seed``), scored by the
  evaluators ``only`` (default: the config's), written as WORKDIR/eval/step_0.json under the
  workdir's lock; returns the record. A record already there is returned as is (resumable)."""
  record = read_record(workdir, 0)
  if record is not None:
    return record
  log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
  method = make_method(config)
  os.makedirs(workdir, exist_ok=True)
  with workdir_lock(workdir, "evaluating the untrained control"):
    run_evaluations(method, _template(method, config.seed), 0, workdir, config, training=False,
                    only=None if only is None else list(only), log=log)
  return read_record(workdir, 0)


def evaluate_workdir(workdir: str, *, step: int | None = None, only=None, overrides=(),
                     log=None) -> dict:
  """Run the workdir's evaluators on its latest (or given) checkpoint; returns {name: scalars}."""
  log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
  config = read_workdir_config(workdir)
  if "evals" not in config:  # a workdir written before the evaluation contract
    with config.unlocked():
      config.evals = ml_collections.ConfigDict(
          {name: {} for name in make_method(config).evaluators})
  missing = [name for name in (only or []) if name not in config.evals]
  if missing and set(missing) <= set(make_method(config).evaluators):
    # evaluators added to the method after this workdir was written: their documented defaults
    # (which --config.evals.<name>.KEY=VALUE can then set)
    with config.unlocked():
      for name in missing:
        config.evals[name] = ml_collections.ConfigDict(
            DEFAULT_SETTINGS.get(name, {"run_in_training": False}))
  bad = [key for key, _ in overrides if not (key.startswith("evals.") or key == "seed")]
  if bad:
    raise UsageError(f"--config.{bad[0]} cannot change at evaluation: the model and data are "
                     "those of the checkpoint. Only --config.evals.* and --config.seed may be set "
                     "here (train a new run to change the model)")
  config = apply_overrides(config, list(overrides))
  validate_domains(config)
  config, method, state, step = restore_latest(workdir, step, config=config)
  # metrics.jsonl has one writer: the holder of the workdir's lock. While a run trains there,
  # the evaluation still writes its own record (eval/step_<N>.json) but appends nothing.
  owner = lock.try_acquire(workdir, "evaluating")
  try:
    log(f"[jaxdisent] evaluating {workdir} at step {step}")
    results = run_evaluations(method, state, step, workdir, config, training=False, only=only,
                              log=log)
    if not results:
      raise ValueError(f"{workdir}'s config declares no evaluators (config.evals is empty)")
    if owner:
      MetricsWriter(os.path.join(workdir, "metrics.jsonl")).write(step, flat_scalars(results))
    else:
      log(f"[jaxdisent] note: another process is writing {workdir} (see its .lock); the "
          "scalars are in the record below, not appended to metrics.jsonl")
  finally:
    if owner:
      lock.release(workdir)
  log(f"[jaxdisent] wrote {os.path.join(workdir, 'eval', f'step_{step}.json')}")
  return results


def parse_grid(spec: str) -> list[dict]:
  """'a.b=1,2;c=x,y' -> [{'a.b': '1', 'c': 'x'}, ...] (the product of the axes)."""
  axes = []
  for part in [p for p in (spec or "").split(";") if p.strip()]:
    if "=" not in part:
      raise UsageError(f"--grid axis {part!r} has no values: write KEY=V1,V2 (axes separated by ';'),"
                       " e.g. --grid='loss.beta=1,4;seed=0,1'")
    key, values = part.split("=", 1)
    values = [v.strip() for v in values.split(",") if v.strip() != ""]
    if not values:
      raise UsageError(f"--grid axis {key!r} has no values: write {key}=V1,V2")
    if len(set(values)) != len(values):
      raise UsageError(f"--grid axis {key.strip()} repeats a value ({','.join(values)}); list "
                       "distinct values")
    if any(key.strip() == k for axis in axes for k, _ in axis[:1]):
      raise UsageError(f"--grid names {key.strip()!r} twice; give each key one axis")
    axes.append([(key.strip(), v) for v in values])
  return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def parse_seeds(text: str) -> list[int]:
  seeds = [parse_int("seeds", s.strip(), minimum=0) for s in text.split(",") if s.strip()]
  if not seeds:
    raise UsageError("--seeds needs at least one integer, e.g. --seeds=0,1")
  repeated = sorted({s for s in seeds if seeds.count(s) > 1})
  if repeated:
    raise UsageError(f"--seeds={text} repeats seed(s) {repeated}: each seed would train the same "
                     "run twice and count it twice in the mean +- std; list distinct seeds")
  return seeds


def split_seed_axis(grid: list[dict], seeds_text: str | None) -> tuple[list[dict], str | None]:
  """A grid axis 'seed=0,1' means --seeds=0,1 (each cell's seed is set after the grid's keys)."""
  if not grid or "seed" not in grid[0]:
    return grid, seeds_text
  if seeds_text is not None:
    raise UsageError("the seeds are given twice (--grid's seed axis and --seeds); use one")
  seeds_text = ",".join(dict.fromkeys(point["seed"] for point in grid))
  rest = []
  for point in grid:
    reduced = {k: v for k, v in point.items() if k != "seed"}
    if reduced not in rest:
      rest.append(reduced)
  return rest, seeds_text


def cell_name(point: dict, seed: int) -> str:
  parts = [f"{k.split('.')[-1]}={v}" for k, v in point.items()]
  return "_".join(parts + [f"seed{seed}"])


def run_cells(config_path: str, workdir: str, cells: list[tuple[str, list[tuple[str, str]]]], *,
              evaluate: bool = False, only=None, log=None, vmap_cells: bool = False,
              model_axis: str = "auto") -> list[dict]:
  """Train + evaluate each (name, overrides) cell in WORKDIR/name; rows of eval scalars.

  All cells' configs are built (and so validated) before the first one trains. ``vmap_cells``:
  cells that differ only in ``seed`` train as one vmapped program (``model_axis.fit_group``).
  """
  absl_logging.set_verbosity(absl_logging.WARNING)
  log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
  configs = []
  for name, overrides in cells:
    config = load_config_with_overrides(config_path, list(overrides))
    try:
      validate_train_config(config)
      make_method(config)
    except (ValueError, KeyError) as error:
      raise UsageError(f"cell {name}: invalid config: {error}") from None
    configs.append((name, config))
  with workdir_lock(workdir, "sweep"):  # one sweep per root; each cell's fit locks the cell too
    results = _vmapped_results(configs, workdir, log, model_axis) if vmap_cells else {}
    return _train_cells(configs, workdir, fit, evaluate_workdir, read_record, evaluate, only, log,
                        results)


def _finished(config, cell) -> bool:
  """The cell's config.json matches and its final step is checkpointed (re-running is a no-op)."""
  directory = os.path.join(cell, "checkpoints")
  return os.path.isdir(directory) and str(int(config.train.num_steps)) in os.listdir(directory)


def _vmapped_results(configs, workdir, log, how="auto") -> dict:
  """Train the groups of >= 2 unfinished cells that differ only in seed; {name: FitResult}."""
  groups: dict[str, list] = {}
  for name, config in configs:
    if not _finished(config, os.path.join(workdir, name)):
      groups.setdefault(group_key(config), []).append((name, config))
  results = {}
  for members in groups.values():
    names = [name for name, _ in members]
    if len(members) < 2:
      log(f"[sweep] note: {names[0]} shares its config with no other seed; it trains alone "
          "(--vmap_cells groups cells that differ only in seed)")
      continue
    log(f"[sweep] vmapped group of {len(members)}: {', '.join(names)}")
    for name, result in zip(names, fit_group([(c, os.path.join(workdir, n)) for n, c in members],
                                             quiet=True, how=how)):
      results[name] = result
  return results


def _train_cells(configs, workdir, fit, evaluate_workdir, read_record, evaluate, only, log,
                 results=None):
  rows = []
  results = results or {}
  for index, (name, config) in enumerate(configs, 1):
    cell = os.path.join(workdir, name)
    if name in results:
      result = results[name]
    else:
      log(f"[sweep] {index}/{len(configs)} {name}")
      result = fit(config, cell, quiet=True)
    if result.preempted:
      raise RuntimeError(f"cell {name} was preempted; re-run the same command to resume")
    if evaluate:
      evaluate_workdir(cell, only=only, log=lambda *a: None)
    record = read_record(cell, result.step) or {"evals": {}}
    scalars = {f"eval/{n}/{k}": v for n, s in record["evals"].items() for k, v in s.items()
               if k != "seconds"}
    rows.append({"run": name, "seed": int(config.seed), "step": result.step, **scalars})
  return rows


def summarize(rows: list[dict], group_keys: list[str], keys=None) -> tuple[list[dict], str]:
  """Mean and std over seeds of every numeric column, per group; (table, markdown)."""
  metric_keys = keys or sorted({k for r in rows for k, v in r.items()
                                if k.startswith("eval/") and isinstance(v, (int, float))})
  groups = []
  for row in rows:
    point = tuple(row.get(k) for k in group_keys)
    if point not in groups:
      groups.append(point)
  table = []
  for point in groups:
    members = [r for r in rows if tuple(r.get(k) for k in group_keys) == point]
    entry = {**dict(zip(group_keys, point)), "seeds": len(members)}
    for key in metric_keys:
      values = np.array([r[key] for r in members if isinstance(r.get(key), (int, float))], float)
      if len(values):
        entry[key] = {"mean": float(values.mean()), "std": float(values.std())}
    table.append(entry)
  short = [k.split("/", 2)[-1] for k in metric_keys]
  lines = ["| " + " | ".join(group_keys + ["seeds"] + short) + " |",
           "|" + "---|" * (len(group_keys) + 1 + len(metric_keys))]
  for entry in table:
    cells = [str(entry[k]) for k in group_keys] + [str(entry["seeds"])]
    cells += [f"{entry[k]['mean']:.3f} +- {entry[k]['std']:.3f}" if k in entry else "-"
              for k in metric_keys]
    lines.append("| " + " | ".join(cells) + " |")
  return table, "\n".join(lines) + "\n"


def write_summary(workdir: str, rows, table, markdown, stem: str = "summary") -> None:
  with workdir_lock(workdir, "sweep summary"):
    for name, text in ((f"{stem}.json", json.dumps({"rows": rows, "summary": table}, indent=2)),
                       (f"{stem}.md", markdown)):
      path = os.path.join(workdir, name)
      with open(path + ".tmp", "w") as f:
        f.write(text)
      os.replace(path + ".tmp", path)


