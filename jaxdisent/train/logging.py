"""metrics.jsonl writer and terminal progress."""

from __future__ import annotations

import json
import math
import os

import numpy as np


def _to_json(value):
  array = np.asarray(value)
  if array.ndim == 0:
    scalar = array.item()
    if isinstance(scalar, float) and not math.isfinite(scalar):
      return str(scalar)
    return scalar
  return array.tolist()


class MetricsWriter:
  """Appends one JSON object per logged step to WORKDIR/metrics.jsonl (process 0 only)."""

  def __init__(self, path: str, enabled: bool = True):
    self.path = path
    self.enabled = enabled

  def truncate_after(self, step: int, log=None) -> None:
    """Drop lines logged after `step` (they belong to a run that died after its last checkpoint).

    A last line cut short (a crash or a full disk mid-write) is dropped with a note; a damaged
    line anywhere else is an error naming its line number.
    """
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
      try:
        records.append((json.loads(line), line))
      except json.JSONDecodeError as error:
        if number == len(lines):
          if log:
            log(f"[jaxdisent] {self.path}: dropped a half-written last line ({error})")
          continue
        raise ValueError(f"{self.path} line {number} is not valid JSON ({error}); fix or delete "
                         "that line (it is a log, the checkpoints are unaffected)") from error
    kept = [line for record, line in records if record.get("step", 0) <= step]
    if len(kept) != len(lines):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(line if line.endswith("\n") else line + "\n" for line in kept)
      os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    record = {"step": int(step)}
    record.update({k: _to_json(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: str) -> list[dict]:
  """All records of a metrics.jsonl (a half-written last line is skipped)."""
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  out = []
  for number, line in enumerate(lines, 1):
    try:
      out.append(json.loads(line))
    except json.JSONDecodeError:
      if number != len(lines):
        raise
  return out
