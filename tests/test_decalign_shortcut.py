"""The shortcut benchmark (issue 23 part 1) and the paired ablation protocol (parts 2 and 5)."""

import json
import os

import numpy as np
import pytest

from jaxdisent.data.multimodal_sequences import ShortcutMultimodalSequences
from launch import decalign_ablation as A


def small(**kw):
  base = dict(widths=(6, 3, 4), lengths=(4, 9, 12), hidden=8, num_train=40, num_valid=400,
              num_test=4000, global_batch_size=16)
  base.update(kw)
  return ShortcutMultimodalSequences(**base)


def test_shortcut_correlation_holds_in_train_and_valid_only():
  data = small(num_train=4000)
  for split, rho in (("valid", 0.6), ("test", 0.0)):
    d = data.split(split)
    c, u = d["common"], d["unique"]
    # u_m[j] is correlated with c[(m + j) mod 4] with correlation rho
    for m in range(3):
      for j in range(2):
        r = np.corrcoef(u[:, m, j], c[:, (m + j) % 4])[0, 1]
        assert r == pytest.approx(rho, abs=0.06), (split, m, j)
  train = data._splits["train"]
  assert np.corrcoef(train["unique"][:, 0, 0], train["common"][:, 0])[0, 1] == pytest.approx(0.6, abs=0.05)


def test_shortcut_in_one_modality_only():
  """rho_train_scale = (1, 0, 0): u_0 carries the train correlation, u_1 and u_2 do not; the test
  split is untouched; all ones is bitwise the scalar rho_train; a bad scale is refused."""
  data = small(num_train=4000, rho_train_scale=(1.0, 0.0, 0.0))
  for split in ("train", "valid"):
    d = data._splits[split]
    for m, rho in ((0, 0.6), (1, 0.0), (2, 0.0)):
      for j in range(2):
        r = np.corrcoef(d["unique"][:, m, j], d["common"][:, (m + j) % 4])[0, 1]
        assert r == pytest.approx(rho, abs=0.06), (split, m, j)
  base = small(num_train=4000)
  for key, value in base.split("test").items():
    np.testing.assert_array_equal(data.split("test")[key], value)
  ones = small(num_train=4000, rho_train_scale=(1.0, 1.0, 1.0))
  for split in ("train", "valid", "test"):
    for key, value in base._splits[split].items():
      np.testing.assert_array_equal(ones._splits[split][key], value)
  with pytest.raises(ValueError, match="rho_train_scale has 2 entries, widths has 3"):
    small(rho_train_scale=(1.0, 0.0))
  with pytest.raises(ValueError, match="must stay a correlation in"):
    small(rho_train_scale=(2.0, 0.0, 0.0))


def test_shortcut_label_follows_lambda_and_structure():
  data = small(label_unique_weight=0.0)
  test = data.split("test")
  score = test["common"] @ data._w_common / 2.0           # g(c) = c . w / sqrt(4)
  np.testing.assert_allclose(test["label"], 3 * np.tanh(1.5 * score), rtol=1e-5, atol=1e-5)
  mixed = small(label_unique_weight=0.3)
  t = mixed.split("test")
  s = (t["common"] @ mixed._w_common / 2.0
       + 0.3 * np.sum(t["unique"] * mixed._w_unique, axis=(1, 2)) / np.sqrt(2))
  np.testing.assert_allclose(t["label"], 3 * np.tanh(1.5 * s), rtol=1e-5, atol=1e-5)
  for name, length in zip(data.names, data.lengths):
    assert test[name].shape[:2] == (4000, length)
    assert np.all(test[name][test[name + "_mask"] == 0] == 0)     # padding is zero


def test_shortcut_noise_shift_and_seeds():
  clean = small(noise=(0.0, 0.0, 0.0))
  noisy = small(noise=(0.0, 0.0, 2.0))
  a, b = clean.split("test"), noisy.split("test")
  np.testing.assert_array_equal(a["m0"], b["m0"])                # same seed, same examples
  mask = a["m2_mask"] > 0
  assert np.std((b["m2"] - a["m2"])[mask]) == pytest.approx(2.0, rel=0.05)
  shifted = small(noise=(0.0, 0.0, 0.0), test_scale=(1.0, 1.0, 2.0), test_offset=(0.0, 0.0, 0.5))
  s = shifted.split("test")
  np.testing.assert_allclose(s["m2"][mask], 2 * a["m2"][mask] + 0.5, rtol=1e-5)
  np.testing.assert_array_equal(shifted.split("valid")["m2"], clean.split("valid")["m2"])  # test only
  other = small(seed=1)
  assert not np.array_equal(other.split("test")["label"], a["label"])
  np.testing.assert_array_equal(other._w_common, clean._w_common)   # same task, other examples


def test_shortcut_batches_recycle_the_fixed_training_set():
  data = small()
  batches = [data.batch(0, s, 0, 16) for s in range(5)]   # 80 draws = two epochs of 40
  labels = np.concatenate([b["label"] for b in batches])
  train = data._splits["train"]["label"]
  np.testing.assert_array_equal(np.sort(labels[:40]), np.sort(train))
  np.testing.assert_array_equal(np.sort(labels[40:]), np.sort(train))
  np.testing.assert_array_equal(data.batch(0, 2, 4, 8)["m1"], batches[2]["m1"][4:12])
  assert "common" not in batches[0]


def test_shortcut_refuses_bad_knobs():
  with pytest.raises(ValueError, match="noise has 2 entries"):
    small(noise=(0.1, 1.0))
  with pytest.raises(ValueError, match="rho_train=1.5"):
    small(rho_train=1.5)
  with pytest.raises(ValueError, match="max_lag"):
    small(max_lag=(0, 9, 1))


# ---- protocol ------------------------------------------------------------------------------------

def test_early_stopping_selection_hand_computed():
  rows = [{"step": s, "eval/decalign/valid_mae": v, "eval/sentiment/mae": t}
          for s, v, t in [(10, 0.9, 0.8), (20, 0.5, 0.6), (30, 0.6, 0.5), (40, 0.55, 0.4),
                          (50, 0.4, 0.3)]]
  rows.insert(2, {"step": 15, "loss": 1.0})                        # training rows are ignored
  assert A.select_evaluation(rows, patience=2)["step"] == 20      # 30, 40 no better: stop
  assert A.select_evaluation(rows, patience=3)["step"] == 50
  assert A.select_evaluation(rows, patience=0)["step"] == 50      # no early stopping: last
  up = [{"step": 1, "k": 0.2}, {"step": 2, "k": 0.7}, {"step": 3, "k": 0.5}]
  assert A.select_evaluation(up, 1, "k", higher_is_better=True)["step"] == 2


def test_paired_differences_hand_computed():
  rows = [{"variant": "task_only", "seed": s, "mae": m} for s, m in enumerate([1.0, 2.0, 3.0])]
  rows += [{"variant": "full", "seed": s, "mae": m} for s, m in enumerate([0.9, 1.7, 2.9])]
  rows += [{"variant": "other", "seed": 0, "mae": 5.0}]
  out = A.paired_differences(rows, ["full", "task_only", "other"], "task_only")
  # diffs -0.1, -0.3, -0.1: mean -0.5/3, sd = sqrt(((1/15)^2 * 2 + (2/15)^2) / 2)... computed below
  diffs = np.array([-0.1, -0.3, -0.1])
  sd = diffs.std(ddof=1)
  half = 4.302652729911275 * sd / np.sqrt(3)                     # t_{0.975, 2}
  assert out["full"]["n"] == 3 and out["full"]["diff_mean"] == pytest.approx(diffs.mean())
  np.testing.assert_allclose(out["full"]["ci95"], [diffs.mean() - half, diffs.mean() + half])
  assert out["task_only"]["diff_mean"] == 0.0 and out["task_only"]["n"] == 3
  assert out["other"]["n"] == 1 and np.isnan(out["other"]["ci95"][0])


@pytest.mark.slow
def test_ablation_on_the_shortcut_benchmark_writes_paired_entries(tmp_path):
  tiny = ["--config.data.shortcut.widths=6,3,4", "--config.data.shortcut.lengths=4,6,8",
          "--config.data.shortcut.max_lag=0,1,2", "--config.data.shortcut.hidden=8",
          "--config.data.shortcut.num_test=64", "--config.data.num_train=40",
          "--config.model.width=8", "--config.model.num_heads=2", "--config.loss.num_prototypes=3",
          "--config.loss.ot_iterations=10", "--config.train.batch_size=16",
          "--config.train.num_steps=4", "--config.train.eval_every=2", "--config.train.log_every=2",
          "--config.evals.decalign.patience=1"]
  root = tmp_path / "shortcut"
  assert A.main([f"--workdir={root}", "--config=configs/decalign_shortcut.py",
                 "--variants=task_only,instance_align", "--seeds=0,1", *tiny]) == 0
  result = json.loads((root / "ablation.json").read_text())
  # one variant beside the baseline (the full model's cells are the same code path with other terms
  # on, and train in tests/test_decalign.py)
  assert set(result["paired"]) == {"task_only", "instance_align"}
  for variant in ("instance_align",):
    entry = result["paired"][variant]
    assert entry["n"] == 2 and entry["ci95"][0] <= entry["diff_mean"] <= entry["ci95"][1]
    rows = {r["seed"]: r for r in result["rows"] if r["variant"] == variant}
    base = {r["seed"]: r for r in result["rows"] if r["variant"] == "task_only"}
    assert entry["diff_mean"] == pytest.approx(np.mean([rows[s]["mae"] - base[s]["mae"] for s in (0, 1)]))
  assert all(r["selected_step"] in (2, 4) for r in result["rows"])
  # the positive control's term is on in its runs
  lines = [json.loads(l) for l in open(root / "instance_align_seed0" / "metrics.jsonl")]
  assert any("instance_align" in l for l in lines)
  assert "| instance_align |" in (root / "ablation.md").read_text()


def _hand_written_ablation(root, data, diff, baseline_mae=None):
  (root / "full_seed0").mkdir(parents=True)
  (root / "full_seed0" / "config.json").write_text(json.dumps({"data": data}))
  paired = {v: {"diff_mean": d, "ci95": [d - 0.01, d + 0.01], "n": 12, "key": "mae",
                "baseline": "task_only"} for v, d in (("full", diff), ("task_only", 0.0))}
  result = {"rows": [{"variant": "full", "seed": 0}], "paired": paired}
  if baseline_mae is not None:
    result["summary"] = {"task_only": {"mae": [baseline_mae, 0.05]}}
  (root / "ablation.json").write_text(json.dumps(result))
  return str(root)


def test_collect_over_n_train_tables_and_plots(tmp_path, capsys):
  """--collect reads finished ablations (here written by hand) and tabulates / plots them by N."""
  dirs = [_hand_written_ablation(tmp_path / f"n{n}", {"num_train": n}, diff)
          for n, diff in ((300, -0.02), (100, -0.05))]
  out = str(tmp_path / "over_n")
  assert A.main([f"--collect={','.join(dirs)}", f"--out={out}"]) == 0
  table = open(out + ".md").read().splitlines()
  assert table[2] == "| 100 | -0.0500 [-0.0600, -0.0400], 12 | - |"   # sorted by N, baseline left out
  assert table[3] == "| 300 | -0.0200 [-0.0300, -0.0100], 12 | - |"
  assert os.path.getsize(out + ".png") > 0
  assert A.main([f"--collect={tmp_path / 'missing'}", f"--out={out}"]) == 2
  assert "does not exist" in capsys.readouterr().err
  assert A.main([f"--workdir={tmp_path / 'w'}", "--baseline=nope"]) == 2
  assert "--baseline=nope: choose from" in capsys.readouterr().err


def test_collect_by_another_config_key(tmp_path, capsys):
  """--by: a numeric key (the train correlation) sorts numerically; a tuple key (the test-time
  offset) keeps the given order as categories; the baseline's own test MAE is its own column."""
  dirs = [_hand_written_ablation(tmp_path / f"rho{r}", {"shortcut": {"rho_train": r}}, d, 0.5 + r)
          for r, d in ((0.9, -0.03), (0.0, 0.01))]
  out = str(tmp_path / "by_rho")
  assert A.main([f"--collect={','.join(dirs)}", f"--out={out}", "--by=data.shortcut.rho_train"]) == 0
  table = open(out + ".md").read().splitlines()
  assert table[0].startswith("| data.shortcut.rho_train | full - task_only (mae)")
  assert table[2] == "| 0.0 | +0.0100 [+0.0000, +0.0200], 12 | 0.500 +- 0.050 |"
  assert table[3] == "| 0.9 | -0.0300 [-0.0400, -0.0200], 12 | 1.400 +- 0.050 |"
  dirs = [_hand_written_ablation(tmp_path / f"off{i}", {"shortcut": {"test_offset": o}}, d)
          for i, (o, d) in enumerate((([0.0, 0.0, 0.0], 0.0), ([0.5, 0.0, 0.0], -0.02)))]
  out = str(tmp_path / "by_offset")
  assert A.main([f"--collect={','.join(dirs)}", f"--out={out}", "--by=data.shortcut.test_offset"]) == 0
  table = open(out + ".md").read().splitlines()
  assert [row.split(" | ")[0] for row in table[2:]] == ["| 0.0,0.0,0.0", "| 0.5,0.0,0.0"]
  assert os.path.getsize(out + ".png") > 0
  # a variant run in only some ablations is "-" where it is missing (and left out of the plot there)
  extra = _hand_written_ablation(tmp_path / "off_extra", {"shortcut": {"test_offset": [1.0, 0.0, 0.0]}},
                                 -0.04)
  result = json.loads(open(os.path.join(extra, "ablation.json")).read())
  result["paired"]["common_head"] = {"diff_mean": 0.03, "ci95": [0.01, 0.05], "n": 12, "key": "mae",
                                     "baseline": "task_only"}
  open(os.path.join(extra, "ablation.json"), "w").write(json.dumps(result))
  assert A.main([f"--collect={','.join(dirs + [extra])}", f"--out={out}",
                 "--by=data.shortcut.test_offset"]) == 0
  table = open(out + ".md").read().splitlines()
  assert "common_head - task_only" in table[0]
  assert table[2].endswith("| - | - |") and "+0.0300 [+0.0100, +0.0500], 12" in table[4]
  assert A.main([f"--collect={','.join(dirs)}", f"--out={out}", "--by=data.nope"]) == 2
  err = capsys.readouterr().err
  assert "--by=data.nope" in err and "no 'data.nope'" in err and "Traceback" not in err
