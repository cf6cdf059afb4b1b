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
  """Appends one JSON object per logged step to WORKDIR/metrics.jsonl."""

  def __init__(self, path: str):
    self.path = path

  def truncate_after(self, step: int) -> None:
    """Drop lines logged after `step` (they belong to a run that died after its last checkpoint)."""
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
      with open(self.path, "w") as f:
        f.writelines(kept)

  def write(self, step: int, metrics: dict) -> None:
    record = {"step": int(step)}
    record.update({k: _to_json(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
