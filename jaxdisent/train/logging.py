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
  """Appends one JSON object per logged step to WORKDIR/metrics.jsonl.

  ``enabled=False`` (every process but process 0 of a multi-process run) makes it a no-op, so the
  file is written once.
  """

  def __init__(self, path: str, enabled: bool = True):
    self.path = path
    self.enabled = enabled

  def truncate_after(self, step: int) -> None:
    """Drop lines logged after `step` (they belong to a run that died after its last checkpoint).

    A run killed mid-write leaves a partial last line; it is dropped too (only a complete line
    ends with a newline). The rewrite goes through a temporary file and a rename, so a kill
    during truncation leaves the old file, not half of it.
    """
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    kept = [line for line in lines if line.endswith("\n") and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
      tmp = f"{self.path}.tmp{os.getpid()}"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    record = {"step": int(step)}
    record.update({k: _to_json(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
