"""Short version of benchmarks/soak_kill.py: SIGKILL a training run, resume, compare bitwise.

Two kills: one at a random moment up to 0.5 s after a checkpoint commits, one while an Orbax
save is in flight (the tiny SAE saves every step). Resume is exact in this engine (batches and
noise are functions of (seed, step, example), the state is restored bit for bit and
metrics.jsonl is cut back to the checkpoint), so the final state and every metrics line must
equal the uninterrupted run's, and no committed checkpoint may be lost.
"""

import os
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # SIGKILL soak: the full suite (CI) runs it

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import soak_kill  # noqa: E402  pylint: disable=g-import-not-at-top


def test_sigkill_and_resume_equals_uninterrupted(tmp_path):
  overrides = dict(soak_kill.TINY_SAE, **{"train.num_steps": 40})
  figures = soak_kill.soak(str(tmp_path / "soak"), kills=2, overrides=overrides, seed=1,
                           timeout=300, log=lambda *a: None)
  assert figures["kills"] == 2 and figures["finished"], figures
  assert figures["failed_resumes"] == 0, figures
  assert figures["checkpoints_lost"] == 0, figures
  assert figures["states_equal"] and figures["metrics_equal"], figures
