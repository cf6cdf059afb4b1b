import json
import os

import jax
import pytest

from jaxdisent.studies.alignment_emergence import run_study, summarize
from jaxdisent.train.config import load_config

from conftest import ROOT


def tiny_config(**overrides):
  base = {"grid.num_unique": [0, 8], "grid.heterogeneity_depth": [0], "grid.encoder_depth": [1, 2],
          "grid.seeds": 1, "data.num_train": 2048, "data.num_eval": 512, "train.num_steps": 300}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "alignment_emergence.py"), base)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_paper_variant_is_the_papers_grid():
  config = load_config(os.path.join(ROOT, "configs", "alignment_emergence.py:paper"))
  assert config.model.width == 12
  assert tuple(config.grid.num_unique) == tuple(range(9))
  assert tuple(config.grid.heterogeneity_depth) == (1, 3, 5, 7, 9)
  assert tuple(config.grid.encoder_depth) == tuple(range(1, 11))
  sizes = (config.data.num_train, config.data.num_val, config.data.num_eval)
  assert sum(sizes) == 65_536 and [round(s / 65_536, 2) for s in sizes] == [0.7, 0.15, 0.15]
  assert config.grid.seeds >= 2 and config.study.pairing == "fixed"
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(os.path.join(ROOT, "configs", "alignment_emergence.py:papr"))


def fixed_config(**overrides):
  base = {"grid.num_unique": [0, 4, 8], "grid.heterogeneity_depth": [1], "grid.encoder_depth": [1, 2],
          "grid.seeds": 1, "data.num_train": 512, "data.num_val": 64, "data.num_eval": 128,
          "train.num_steps": 30, "study.pairing": "fixed", "study.fixed_depth": 2}
  base.update(overrides)
  return tiny_config(**base)


@pytest.mark.slow
def test_fixed_pairing_resume_and_summary_json(tmp_path):
  workdir = str(tmp_path / "w")
  first = run_study(fixed_config(), workdir, log=lambda *a: None)
  rows = first["rows"]
  assert len(rows) == 6 and all(r["reference_depth"] == 2 for r in rows)
  assert all(r["val_accuracy2"] is not None for r in rows)
  # the reference encoder (depth 2) is trained in the depth-2 cell: with pairing 'same' the
  # depth-2 rows are the same computation
  same = run_study(fixed_config(**{"study.pairing": "same", "grid.encoder_depth": [2]}), None,
                   log=lambda *a: None)["rows"]
  for a, b in zip([r for r in rows if r["encoder_depth"] == 2], same, strict=True):
    assert a["alignment"] == b["alignment"] and a["accuracy1"] == b["accuracy1"]
  summary = json.loads((tmp_path / "w" / "summary.json").read_text())
  per_d = summary["per_heterogeneity_depth"]["1"]
  assert set(per_d["max_alignment"]) == {"0", "4", "8"}
  assert summary["performance_for_trend_2"] == "accuracy2"
  assert os.path.getsize(tmp_path / "w" / "plots" / "trends_per_d.png") > 1000
  # resume: a lost cell is recomputed (with the reference cell), the others reused, same rows
  os.remove(tmp_path / "w" / "cells" / "h1_L1.json")
  again = run_study(fixed_config(), workdir, log=lambda *a: None)
  assert again["rows"] == rows and again["summary"]["cells_reused"] == 0
  third = run_study(fixed_config(), workdir, log=lambda *a: None)
  assert third["rows"] == rows and third["summary"]["cells_reused"] == 2
  with pytest.raises(ValueError, match="written with other settings"):
    run_study(fixed_config(**{"train.num_steps": 31}), workdir, log=lambda *a: None)


@pytest.mark.slow
def test_metric_is_selectable():
  config = fixed_config(**{"study.metric": "mutual_knn", "study.k": 5, "grid.num_unique": [0],
                           "study.pairing": "same", "grid.encoder_depth": [1]})
  rows = run_study(config, None, log=lambda *a: None)["rows"]
  assert len(rows) == 1 and 0 <= rows[0]["alignment"] <= 1
  # mutual k-NN values are multiples of 1 / (N k)
  assert rows[0]["alignment"] * 128 * 5 == pytest.approx(round(rows[0]["alignment"] * 128 * 5))


@pytest.mark.parametrize("override,message", [
    ({"study.metric": "cosine"}, "study.metric='cosine' is not one of"),
    ({"study.pairing": "cross"}, "study.pairing='cross' must be"),
    ({"study.fixed_depth": 3}, "study.fixed_depth=3 must be one of grid.encoder_depth"),
    ({"study.metric": "mutual_knn", "study.k": 128}, "study.k=128 must be in"),
    ({"study.metric": "svcca", "study.cca_dim": 65}, "study.cca_dim=65 must be in"),
    ({"grid.num_unique": [0, 9]}, "9 is outside 0..8"),
    ({"grid.encoder_depth": [1, 2, 2]}, "repeats a value"),
])
def test_study_config_errors(override, message):
  with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
    run_study(fixed_config(**override), None, log=lambda *a: None)


def test_per_d_trends_on_known_rows():
  """Alignment falls with U and rises with depth; performance follows alignment at U = 0 only."""
  rows = []
  for h in (1, 3):
    for u in range(4):
      for seed in (0, 1):
        for depth in (1, 2, 3):
          alignment = 0.9 - 0.2 * u + 0.01 * depth * (3 - u)
          performance = alignment if u == 0 else 0.5 + 0.1 * ((depth * 7 + seed) % 3)
          rows.append({"num_unique": u, "heterogeneity_depth": h, "encoder_depth": depth,
                       "seed": seed, "alignment": alignment, "performance": performance,
                       "accuracy2": performance})
  summary = summarize(rows, pairing="fixed")
  for h in (1, 3):
    entry = summary["per_heterogeneity_depth"][h]
    assert entry["spearman_max_alignment_vs_uniqueness"] == pytest.approx(-1.0)
    assert entry["max_alignment_monotone_decreasing"]
    assert entry["max_alignment"][0] == pytest.approx(0.99)
    assert entry["alignment_performance_correlation"][0] == pytest.approx(1.0)
    assert entry["alignment_depth_correlation"][0] == pytest.approx(1.0)
    assert entry["alignment_depth_correlation"][3] is None      # alignment constant over depth
  assert summary["alignment_depth_correlation_median_by_uniqueness"][1] == pytest.approx(1.0)
  assert summary["spearman_max_alignment_range"] == pytest.approx([-1.0, -1.0])
