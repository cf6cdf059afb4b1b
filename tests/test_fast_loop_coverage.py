"""Cheap known-answer tests for the modules whose other tests are all marked ``slow``.

The fast loop (``python -m pytest -m "not slow" tests``) must still touch every module of the
package and every launcher: these tests cover the intervention metrics, the multi-process
start-up checks, the plotting modules and the two launchers whose end-to-end runs are slow, each
on an input with a known answer (or a refusal with the fix in its text).
"""

import os

import ml_collections
import numpy as np
import pytest

from jaxdisent.metrics import interventions as I
from jaxdisent.train import distributed
from jaxdisent.viz import ablation_plots, alignment_plots, disentanglement_plots, vae_plots
from launch import alignment_study, sae_sweep


def test_edits_retrieval_and_zero_shot_known_answers():
  codes = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
  np.testing.assert_array_equal(I.edit_codes_core(codes, *I.identity_edit(3)), codes)
  np.testing.assert_array_equal(I.edit_codes_core(codes, *I.ablation_edit(3, [1])),
                                [[1.0, 0.0, 3.0], [4.0, 0.0, 6.0]])
  steered = I.edit_codes_core(codes, *I.steering_edit(3, {0: 0.5}, {2: -1.0}))
  np.testing.assert_array_equal(steered, [[1.5, 2.0, -1.0], [4.5, 5.0, -1.0]])
  eye = np.eye(4, dtype=np.float32)
  assert all(float(v) == 1.0 for v in I.retrieval_recall_core(eye, eye).values())
  collapsed = I.retrieval_recall_core(np.ones((4, 2), np.float32), eye[:, :2] + 1.0, ks=(1, 2))
  # every query scores every key alike (all cosines tie): the true key ranks last, recall 0
  assert float(collapsed[1]) == 0.0
  prompts = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  images = np.array([[2.0, 0.1], [0.1, 3.0], [1.0, 0.2]], np.float32)
  assert float(I.zero_shot_accuracy_core(images, prompts, np.array([0, 1, 1]))) == pytest.approx(2 / 3)
  sets = I.random_feature_sets(np.arange(10, 20), 3, 4, seed=0)
  assert len(sets) == 4 and all(len(set(s)) == 3 and set(s) <= set(range(10, 20)) for s in sets)
  assert all((a == b).all() for a, b in zip(sets, I.random_feature_sets(np.arange(10, 20), 3, 4, 0)))
  with pytest.raises(ValueError, match="cannot draw 11 random control features from 10"):
    I.random_feature_sets(np.arange(10), 11, 1, 0)


def test_distributed_start_up_refuses_half_pinned_settings(monkeypatch):
  for env in (distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID, distributed.ENV_COORDINATOR):
    monkeypatch.delenv(env, raising=False)
  train = lambda **kw: ml_collections.ConfigDict(kw)
  with pytest.raises(ValueError, match="set both the number of processes and this process's id"):
    distributed.initialize(train(num_processes=2))
  with pytest.raises(ValueError, match=r"process id 2 is outside \[0, 2\)"):
    distributed.initialize(train(num_processes=2, process_id=2))
  with pytest.raises(ValueError, match="the processes need a coordinator"):
    distributed.initialize(train(num_processes=2, process_id=0))
  monkeypatch.setenv(distributed.ENV_NUM_PROCESSES, "two")
  with pytest.raises(ValueError, match="is not a valid int"):
    distributed.initialize(train())
  assert distributed.is_primary()                  # one process: process 0 writes


def _is_png(path):
  with open(path, "rb") as f:
    return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000


def test_every_plotting_module_writes_a_png(tmp_path):
  table = {"a": {"mae": (0.5, 0.1), "corr": (0.2, 0.05)}, "b": {"mae": (0.4, 0.1)}}
  path = ablation_plots.variant_bars(table, ["a", "b"], ["mae", "corr"], str(tmp_path / "bars.png"),
                                     "t", lower_is_better=("mae",), zoom=True)
  assert _is_png(path)                             # "corr" is missing from b: left out, no error
  assert ablation_plots.variant_bars(table, ["a", "b"], ["corr"], str(tmp_path / "none.png"), "t") is None
  rows = [{"heterogeneity_depth": h, "num_unique": u, "alignment": 0.1 * u + h}
          for h in (0, 1) for u in (0, 1, 2)]
  assert _is_png(alignment_plots.alignment_vs_uniqueness(rows, str(tmp_path / "align.png")))
  assert _is_png(alignment_plots.correlation_vs_uniqueness({0: 0.5, 1: None, 2: -0.2},
                                                           str(tmp_path / "corr.png")))
  assert _is_png(disentanglement_plots.save_mi_heatmap(np.eye(3, 2), ["shape", "scale"],
                                                       str(tmp_path / "mi.png"), np.ones(2)))
  images = np.random.default_rng(0).random((3, 8, 8, 1))
  assert _is_png(vae_plots.save_reconstructions(images, images[::-1], str(tmp_path / "recon.png")))
  calls = []
  def decode(z):
    calls.append(len(z))
    return np.tile(np.tanh(z[:, :1])[:, None, None, :], (1, 8, 8, 1))
  assert _is_png(vae_plots.save_traversals(decode, np.zeros(2), str(tmp_path / "trav.png"), num_values=3))
  assert calls == [6]   # one decoder call (one compiled shape) for the 2 x 3 grid


def test_image_mosaic_places_each_tile_between_white_gaps():
  tiles = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) / 24   # (R, C, H, W)
  out = vae_plots._mosaic(tiles, gap=1)  # pylint: disable=protected-access
  assert out.shape == (2 * 2 + 1, 3 * 2 + 2, 1)
  for r in range(2):
    for c in range(3):
      np.testing.assert_array_equal(out[3 * r:3 * r + 2, 3 * c:3 * c + 2, 0], tiles[r, c])
  assert np.all(out[2, :, 0] == 1) and np.all(out[:, 2, 0] == 1) and np.all(out[:, 5, 0] == 1)
  rgb = vae_plots._mosaic(np.full((1, 2, 3, 3, 3), 7.0), gap=2)  # pylint: disable=protected-access
  assert rgb.shape == (3, 8, 3) and rgb.max() == 1.0   # clipped to [0, 1]


def test_study_and_sae_sweep_launchers_refuse_bad_flags(capsys):
  assert alignment_study.main(["--config=configs/alignment_emergence.py"]) == 2
  assert "--workdir=DIR is required" in capsys.readouterr().err
  assert sae_sweep.main(["--config=configs/sae_vlm_synthetic.py", "--workdir=w", "--kinds=dense"]) == 2
  err = capsys.readouterr().err
  assert "unknown SAE kind(s) ['dense']" in err and err.startswith("[jaxdisent] error:")
  assert sae_sweep.main(["--config=configs/sae_vlm_synthetic.py", "--workdir=w", "--ks=2,x"]) == 2
  assert "--ks / --l1 / --l0 must be comma-separated numbers" in capsys.readouterr().err
