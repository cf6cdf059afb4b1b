import json
import os

import jax
import pytest

from jaxdisent.methods.alignment_study import run_study, summarize
from jaxdisent.train.config import load_config

from conftest import ROOT


def tiny_config(**overrides):
  base = {"grid.num_unique": [0, 8], "grid.heterogeneity_depth": [0], "grid.encoder_depth": [1, 2],
          "grid.seeds": 1, "data.num_train": 2048, "data.num_eval": 512, "train.steps": 300}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "alignment_emergence.py"), base)


def test_study_runs_shards_and_shows_the_uniqueness_trend(tmp_path):
  result = run_study(tiny_config(), str(tmp_path), log=lambda *a: None, devices=jax.devices()[:4])
  rows = result["rows"]
  assert len(rows) == 4
  assert all(0.0 <= r["alignment"] <= 1.0 + 1e-5 for r in rows)
  by = {(r["num_unique"], r["encoder_depth"]): r for r in rows}
  for depth in (1, 2):
    assert by[(0, depth)]["performance"] > 0.8     # all label bits visible to both modalities
    assert by[(8, depth)]["performance"] < by[(0, depth)]["performance"]
    assert by[(0, depth)]["alignment"] > by[(8, depth)]["alignment"]
  for name in ("results.csv", "results.json", "plots/alignment_vs_uniqueness.png",
               "plots/alignment_performance_correlation.png"):
    assert os.path.getsize(tmp_path / name) > 100
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["summary"]["spearman_alignment_vs_uniqueness"] == {}  # 2 U values: no rank test
  # the same grid on one device gives the same numbers up to float rounding (which can flip a
  # borderline test prediction): sharding only places the group axis
  single = run_study(tiny_config(), None, log=lambda *a: None, devices=jax.devices()[:1])
  for a, b in zip(rows, single["rows"]):
    assert a["alignment"] == pytest.approx(b["alignment"], abs=2e-3)
    assert a["performance"] == pytest.approx(b["performance"], abs=0.01)


def test_summary_statistics():
  rows = []
  for u in range(5):
    for depth in (1, 2):
      rows.append({"num_unique": u, "heterogeneity_depth": 0, "encoder_depth": depth,
                   "alignment": 0.9 - 0.1 * u + 0.01 * depth, "performance": 0.5 + 0.1 * depth})
  summary = summarize(rows)
  assert summary["spearman_range"] == pytest.approx([-1.0, -1.0])
  assert all(c == pytest.approx(1.0) for c in
             summary["alignment_performance_correlation_by_uniqueness"].values())


def test_synergy_grid_is_checked():
  with pytest.raises(ValueError, match="<= 4"):
    run_study(tiny_config(**{"data.synergy": True}), None, log=lambda *a: None)
