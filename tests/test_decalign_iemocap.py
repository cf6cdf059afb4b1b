"""IEMOCAP path: WAcc / WAF1 known answers, the MMSA-style pickle reader, a tiny training run."""

import os
import pickle

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from jaxdisent.data.multimodal_sequences import IEMOCAPData
from jaxdisent.evals import read_record
from jaxdisent.metrics.multimodal import (emotion_classification_metrics, weighted_accuracy,
                                          weighted_f1)
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config

from conftest import ROOT


# ---- metrics ----------------------------------------------------------------------------------

def test_weighted_accuracy_and_f1_hand_computed():
  y_true = [0, 0, 0, 1, 1, 2]
  y_pred = [0, 0, 1, 1, 2, 2]
  # WAcc: 4 of 6 correct
  assert weighted_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
  # per class: 0: tp 2, support 3, predicted 2 -> F1 = 4/5; 1: tp 1, s 2, p 2 -> 1/2;
  # 2: tp 1, s 1, p 2 -> 2/3. WAF1 = (3 * 4/5 + 2 * 1/2 + 1 * 2/3) / 6
  assert weighted_f1(y_true, y_pred) == pytest.approx((2.4 + 1.0 + 2 / 3) / 6, rel=1e-12)
  # a class that is only predicted (never true) has weight 0; a missed class has F1 0:
  # class 0: tp 1, support 2, predicted 3 -> F1 = 2 / 5; class 1: F1 0; class 3: weight 0
  assert weighted_f1([0, 0, 1, 1], [0, 3, 0, 0]) == pytest.approx((2 * 0.4 + 2 * 0) / 4)
  assert weighted_f1([2, 2], [2, 2]) == 1.0 and weighted_accuracy([1], [0]) == 0.0


def test_weighted_metrics_match_scikit_learn():
  rng = np.random.default_rng(0)
  for trial in range(5):
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
    if trial == 4:
      y_pred[y_pred == 3] = 2          # a class never predicted
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    assert weighted_f1(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, average="weighted", zero_division=0), rel=1e-12)
  logits = np.eye(4)[[0, 1, 2, 3, 3]]
  out = emotion_classification_metrics(logits, [0, 1, 2, 3, 0])
  assert out["wacc"] == pytest.approx(0.8)
  assert out["ua"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)   # mean per-class recall


def test_weighted_metrics_refuse_bad_input():
  with pytest.raises(ValueError, match="same number of samples"):
    weighted_f1([0, 1], [0])
  with pytest.raises(ValueError, match="integer class ids"):
    weighted_accuracy([0.5, 1.0], [0, 1])
  with pytest.raises(ValueError, match=">= 0"):
    weighted_f1([0, -1], [0, 1])
  with pytest.raises(ValueError, match="1-D"):
    weighted_f1(np.zeros((3, 4)), [0, 1, 2])


# ---- reader -----------------------------------------------------------------------------------

def write_iemocap_pickle(path, n=(40, 12, 12), length=1, widths=(10, 6, 8), num_classes=4,
                         two_d=True, labels=None):
  """A pickle with the structure of DecAlign's prepare_iemocap.py output (random features)."""
  rng = np.random.default_rng(1)
  raw = {}
  for split, count in zip(("train", "valid", "test"), n):
    d = {}
    for name, w in zip(("text", "audio", "vision"), widths):
      shape = (count, w) if two_d else (count, length, w)
      d[name] = rng.normal(size=shape).astype(np.float32)
    y = rng.integers(0, num_classes, count) if labels is None else labels[split]
    d["classification_labels"] = np.asarray(y)
    # make the task learnable from text: its first feature encodes the class
    if two_d:
      d["text"][:, 0] = 2.0 * d["classification_labels"]
    d["raw_text"] = [f"utterance {i}" for i in range(count)]
    d["id"] = [f"Ses0{1 + i % 5}_{split}_{i}" for i in range(count)]
    raw[split] = d
  with open(path, "wb") as f:
    pickle.dump(raw, f)
  return raw


def test_iemocap_reader_structure(tmp_path):
  path = str(tmp_path / "iemocap.pkl")
  raw = write_iemocap_pickle(path)
  data = IEMOCAPData(path, global_batch_size=8)
  assert data.task == "classification" and data.num_classes == 4
  assert data.widths == (10, 6, 8) and data.lengths == (1, 1, 1)     # (N, D) -> length 1
  test = data.split("test")
  assert test["label"].dtype == np.int32
  np.testing.assert_array_equal(test["label"], raw["test"]["classification_labels"])
  np.testing.assert_array_equal(test["audio"][:, 0], raw["test"]["audio"])
  assert np.all(test["text_mask"] == 1)
  batch = data.batch(0, 0, 0, 8)
  assert batch["vision"].shape == (8, 1, 8) and batch["label"].shape == (8,)
  seq = str(tmp_path / "seq.pkl")
  write_iemocap_pickle(seq, two_d=False, length=3)
  assert IEMOCAPData(seq).lengths == (3, 3, 3)


def test_iemocap_reader_refuses_bad_labels(tmp_path):
  path = str(tmp_path / "five.pkl")
  write_iemocap_pickle(path, num_classes=5)
  with pytest.raises(ValueError, match=r"class id 4 outside \[0, 4\).*num_classes"):
    IEMOCAPData(path)
  assert IEMOCAPData(path, num_classes=5).num_classes == 5
  frac = str(tmp_path / "frac.pkl")
  labels = {s: np.full(n, 0.5) for s, n in zip(("train", "valid", "test"), (40, 12, 12))}
  write_iemocap_pickle(frac, labels=labels)
  with pytest.raises(ValueError, match="non-integer"):
    IEMOCAPData(frac)
  with pytest.raises(ValueError, match="num_classes >= 2"):
    IEMOCAPData(path, num_classes=1)


@pytest.mark.slow
def test_iemocap_config_trains_and_reports_wacc_waf1(tmp_path):
  path = str(tmp_path / "iemocap.pkl")
  write_iemocap_pickle(path, n=(32, 16, 16))
  config = load_config(os.path.join(ROOT, "configs", "decalign_iemocap.py"), {
      "data.path": path, "model.width": 8, "model.num_heads": 2, "model.fusion_layers": 1,
      "loss.num_prototypes": 3, "loss.ot_iterations": 10, "train.batch_size": 16,
      "train.num_steps": 2, "train.log_every": 1, "train.checkpoint_every": 100,
      "evals.sentiment.batch_size": 64, "train.plots_at_end": False})
  fit(config, str(tmp_path / "run"), quiet=True)
  result = read_record(str(tmp_path / "run"))["evals"]["sentiment"]
  assert result["num_examples"] == 16
  for key in ("wacc", "waf1", "ua"):
    assert 0.0 <= result[key] <= 1.0, key
  assert result["wacc"] == result["accuracy"]
