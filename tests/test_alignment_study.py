import json
import os

import jax
import pytest

from jaxdisent.methods.alignment_study import run_study, summarize
from jaxdisent.train.config import load_config

from conftest import ROOT


def tiny_config(**overrides):
  base = {"grid.num_unique": [0, 8], "grid.heterogeneity_depth": [0], "grid.encoder_depth": [1, 2],
          "grid.seeds": 1, "data.num_train": 2048, "data.num_eval": 512, "train.num_steps": 300}
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


def test_sharding_the_group_axis_only_places_it():
  """4 devices vs 1 device, in float64: each model's arithmetic is the same, only XLA's blocking
  differs, so alignments agree to float64 rounding amplified by 20 Adam steps (<< 1e-6); an
  accuracy can differ only by predictions whose top logits tie to ~1e-12: at most one of 512."""
  config = tiny_config(**{"train.num_steps": 20})
  with jax.enable_x64(True):
    sharded = run_study(config, None, log=lambda *a: None, devices=jax.devices()[:4])
    single = run_study(config, None, log=lambda *a: None, devices=jax.devices()[:1])
  for a, b in zip(sharded["rows"], single["rows"], strict=True):
    assert (a["num_unique"], a["encoder_depth"]) == (b["num_unique"], b["encoder_depth"])
    assert a["alignment"] == pytest.approx(b["alignment"], abs=1e-6)
    assert abs(a["performance"] - b["performance"]) <= 1 / 512 + 1e-12


def test_grid_errors_and_a_single_uniqueness_value(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  from launch.alignment_study import main
  assert main(["--config=configs/alignment_emergence.py", f"--workdir={tmp_path}/x",
               "--config.grid.num_unique=4,x"]) == 2
  assert "every value must be an integer; '4,x' is not" in capsys.readouterr().err
  # config_flags reads a single value for a tuple field as a one-element tuple
  from launch.common import apply_overrides
  assert apply_overrides(tiny_config(), [("grid.num_unique", "4")]).grid.num_unique == (4,)
  with pytest.raises(ValueError, match="grid.encoder_depth=\\(\\) must be a non-empty list"):
    run_study(tiny_config(**{"grid.encoder_depth": ()}), None, log=lambda *a: None)
  result = run_study(tiny_config(**{"grid.num_unique": (0,), "grid.encoder_depth": (1,),
                                    "train.num_steps": 20}), str(tmp_path), log=lambda *a: None)
  summary = json.loads((tmp_path / "results.json").read_text())["summary"]
  assert summary["spearman_range"] is None and summary["notes"]
  assert "NaN" not in (tmp_path / "results.json").read_text()


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
