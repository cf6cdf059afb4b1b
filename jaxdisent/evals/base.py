"""The evaluation contract: evaluators registered by name, one record per evaluated step.

An evaluator is a function ``run(ctx, settings) -> dict[str, float]``:

* ``ctx`` (:class:`EvalContext`) carries the method, the plain (host) train state, the step, the
  workdir, a seed and a logger; ``ctx.out_dir`` is where the evaluator writes arrays (``.npy``,
  ``.json``) and pictures beside its scalars;
* ``settings`` is the evaluator's section of the config (``config.evals.<name>``);
* it returns flat scalars (``float``/``int``); anything else goes to files in ``ctx.out_dir``.

A method declares the evaluators it supports in ``Method.evaluators`` and a config selects them
with one ``config.evals.<name>`` section each. The same list runs

* during training every ``train.eval_every`` steps (0: never) and when training ends
  (``train.eval_at_end``), skipping sections with ``run_in_training=False`` (slow ones);
* from ``python -m launch.evaluate --workdir=W [--step=N] [--only=a,b]`` (all sections).

Every run writes ``WORKDIR/eval/step_<N>.json`` = ``{"step": N, "evals": {name: scalars}}`` (files
in ``WORKDIR/eval/step_<N>/<name>/``), keeps ``WORKDIR/eval/latest.json`` pointing at the newest,
and appends ``eval/<name>/<key>`` scalars to ``metrics.jsonl`` through the training writer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable

from jaxdisent.programs import release_compiled_programs, release_fraction

EVALUATORS: dict[str, Callable] = {}
RESERVED_SETTINGS = ("run_in_training",)


# Settings an evaluator documents as its defaults (register(..., defaults=)): a workdir written
# before the evaluator existed is evaluated with them (launch.evaluate --only=NAME), and they are
# the keys --config.evals.NAME.KEY=VALUE may set there.
DEFAULT_SETTINGS: dict[str, dict] = {}


def register(name: str, defaults: dict | None = None):
  """Decorator: make ``fn(ctx, settings) -> dict[str, float]`` available as ``evals.<name>``."""
  def wrap(fn):
    if name in EVALUATORS and EVALUATORS[name] is not fn:
      raise ValueError(f"evaluator {name!r} is registered twice")
    EVALUATORS[name] = fn
    if defaults is not None:
      DEFAULT_SETTINGS[name] = dict(defaults)
    return fn
  return wrap


@dataclasses.dataclass
class EvalContext:
  method: Any          # the Method instance (knows its data, model and how to encode)
  state: Any           # plain host TrainState (params, model_state, ...)
  step: int
  workdir: str
  seed: int = 0
  log: Callable = print
  name: str = ""       # the evaluator being run (set by run_evaluations)

  @property
  def out_dir(self) -> str:
    path = os.path.join(self.workdir, "eval", f"step_{self.step}", self.name)
    os.makedirs(path, exist_ok=True)
    return path


def selected(config, *, training: bool, only=None) -> list[str]:
  """Names of the evaluators a run uses, in config order; validated against the method."""
  sections = config.get("evals", None) or {}
  names = list(sections.keys())
  unknown = [n for n in names if n not in EVALUATORS]
  if unknown:
    raise ValueError(f"unknown evaluator(s) {unknown} in config.evals; known: {sorted(EVALUATORS)}")
  if only:
    missing = [n for n in only if n not in names]
    if missing:
      raise ValueError(f"--only names evaluator(s) {missing} that this run's config does not "
                       f"declare; it declares {names}")
    names = [n for n in names if n in only]
  if training:
    names = [n for n in names if sections[n].get("run_in_training", True)]
  return names


def _scalar(name: str, key: str, value):
  if isinstance(value, bool):
    return int(value)
  if isinstance(value, (int, float)):
    return value
  try:
    import numpy as np  # pylint: disable=g-import-not-at-top
    array = np.asarray(value)
    if array.ndim == 0 and array.dtype.kind in "biuf":
      return array.item()
  except Exception:  # pylint: disable=broad-except
    pass
  raise TypeError(f"evaluator {name!r} returned a non-scalar for {key!r} ({type(value).__name__}); "
                  "evaluators return flat scalars and write arrays to ctx.out_dir")


def run_evaluations(method, state, step: int, workdir: str, config, *, training: bool,
                    only=None, log=print, is_writer: bool = True) -> dict[str, dict]:
  """Run the selected evaluators; write the step's record; return {name: {key: scalar}}."""
  release_fraction()   # read when they finish (programs.py): a bad value fails before the work
  names = selected(config, training=training, only=only)
  if not names:
    return {}
  seed = int(config.get("seed", 0))
  results = {}
  for name in names:
    settings = config.evals[name]
    ctx = EvalContext(method=method, state=state, step=int(step), workdir=workdir, seed=seed,
                      log=log, name=name)
    start = time.time()
    log(f"[jaxdisent] eval/{name} at step {step} ...")
    scores = EVALUATORS[name](ctx, settings)
    clean = {key: _scalar(name, key, value) for key, value in scores.items()}
    clean["seconds"] = round(time.time() - start, 2)
    results[name] = clean
    shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in list(clean.items())[:8])
    log(f"[jaxdisent] eval/{name}: {shown}")
  if is_writer:
    write_record(workdir, step, results)
  release_compiled_programs()  # evaluating many steps or runs in one process (programs.py)
  return results


def flat_scalars(results: dict[str, dict]) -> dict[str, float]:
  """{'eval/<name>/<key>': value} for metrics.jsonl."""
  return {f"eval/{name}/{key}": value for name, scores in results.items()
          for key, value in scores.items()}


def _json_safe(value):
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def write_record(workdir: str, step: int, results: dict[str, dict]) -> str:
  directory = os.path.join(workdir, "eval")
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"step_{int(step)}.json")
  old = read_record(workdir, step) or {"evals": {}}
  merged = dict(old["evals"])
  merged.update(results)
  record = {"step": int(step),
            "evals": {n: {k: _json_safe(v) for k, v in s.items()} for n, s in merged.items()}}
  tmp = f"{path}.tmp{os.getpid()}"  # per process: an evaluation may run beside training
  with open(tmp, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  latest = {"step": int(step), "path": os.path.basename(path)}
  steps = recorded_steps(workdir)
  if steps and max(steps) == int(step):
    tmp = os.path.join(directory, f"latest.json.tmp{os.getpid()}")
    with open(tmp, "w") as f:
      json.dump(latest, f)
    os.replace(tmp, os.path.join(directory, "latest.json"))
  return path


def recorded_steps(workdir: str) -> list[int]:
  directory = os.path.join(workdir, "eval")
  if not os.path.isdir(directory):
    return []
  steps = []
  for name in os.listdir(directory):
    if name.startswith("step_") and name.endswith(".json"):
      try:
        steps.append(int(name[5:-5]))
      except ValueError:
        continue
  return sorted(steps)


def read_record(workdir: str, step: int | None = None) -> dict | None:
  """The evaluation record of `step` (default: the newest), or None if there is none."""
  steps = recorded_steps(workdir)
  if step is None:
    if not steps:
      return None
    step = steps[-1]
  path = os.path.join(workdir, "eval", f"step_{int(step)}.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
