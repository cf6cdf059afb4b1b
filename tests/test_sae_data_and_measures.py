import os

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxdisent.data.embeddings import EmbeddingSource
from jaxdisent.data.synthetic_vlm import IMAGE, SHARED, TEXT, SyntheticVLM
from jaxdisent.metrics import dictionary as D
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config

from conftest import ROOT


# ---- data --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_synthetic_vlm_ground_truth():
  data = SyntheticVLM(dim=32)
  image, text, acts_img, acts_txt = map(np.asarray, data.pairs(jax.random.key(0), 4000))
  np.testing.assert_allclose(np.linalg.norm(image, axis=1), 1.0, rtol=1e-5)
  modality = data.truth()["modality"]
  assert (acts_txt[:, modality == IMAGE] == 0).all() and (acts_img[:, modality == TEXT] == 0).all()
  shared = modality == SHARED
  both = (acts_img[:, shared] > 0) == (acts_txt[:, shared] > 0)
  assert both.all()                                    # bridge concepts fire in both members
  assert 2.5 < (acts_img + acts_txt > 0).sum(1).mean() < 5.5
  gap = data.truth()["gap"]
  assert (image @ gap).mean() > 0 > (text @ gap).mean()  # the modality gap
  batch = data.batch(0, 3, 0, 8)
  np.testing.assert_allclose(np.asarray(batch["x"]), np.asarray(data.batch(0, 3, 0, 8)["x"]))


def test_embedding_files(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(500, 8)).astype(np.float32)
  texts = rng.normal(size=(500, 8)).astype(np.float16)
  np.save(tmp_path / "img.npy", images)
  np.save(tmp_path / "txt.npy", texts)
  np.savez(tmp_path / "both.npz", image=images, text=texts)
  save_file({"image": images, "text": texts.astype(np.float32)}, str(tmp_path / "both.safetensors"))
  single = EmbeddingSource(str(tmp_path / "img.npy"))
  assert isinstance(single.image, np.memmap)           # streamed, not loaded
  batch = single.batch(0, 2, 0, 16)
  assert batch["x"].shape == (16, 8) and batch["x"].dtype == np.float32
  np.testing.assert_array_equal(batch["x"], single.batch(0, 2, 0, 16)["x"])
  rows = {tuple(r) for r in images}
  assert all(tuple(r) in rows for r in batch["x"])
  for source in (EmbeddingSource(str(tmp_path / "img.npy"), text_path=str(tmp_path / "txt.npy")),
                 EmbeddingSource(str(tmp_path / "both.npz"), "image", text_key="text"),
                 EmbeddingSource(str(tmp_path / "both.safetensors"), "image", text_key="text")):
    paired = source.batch(1, 0, 0, 10)["x"]
    # example 2i is an image row and 2i+1 the caption row of the same pair
    for i in range(5):
      row = int(np.nonzero((images == paired[2 * i]).all(1))[0][0])
      np.testing.assert_allclose(paired[2 * i + 1], texts[row].astype(np.float32), rtol=1e-3)


def test_embedding_file_errors(tmp_path):
  rng = np.random.default_rng(0)
  np.save(tmp_path / "int.npy", np.arange(20).reshape(10, 2))
  np.save(tmp_path / "rank3.npy", rng.normal(size=(4, 3, 2)))
  np.save(tmp_path / "a.npy", rng.normal(size=(10, 4)).astype(np.float32))
  np.save(tmp_path / "b.npy", rng.normal(size=(9, 4)).astype(np.float32))
  nan = rng.normal(size=(10, 4)).astype(np.float32)
  nan[7, 1] = np.nan
  np.save(tmp_path / "nan.npy", nan)
  np.savez(tmp_path / "two.npz", x=nan, y=nan)
  with pytest.raises(ValueError, match="floating-point"):
    EmbeddingSource(str(tmp_path / "int.npy"))                      # int64
  (tmp_path / "empty.npy").write_bytes(b"")
  with pytest.raises(ValueError, match="empty"):
    EmbeddingSource(str(tmp_path / "empty.npy"))
  with pytest.raises(ValueError, match="text embedding row 7 of .*nan.npy"):
    EmbeddingSource(str(tmp_path / "a.npy"), text_path=str(tmp_path / "nan.npy")).rows(
        np.arange(10), "text")
  with pytest.raises(ValueError, match="2-D"):
    EmbeddingSource(str(tmp_path / "rank3.npy"))
  with pytest.raises(ValueError, match="same number of rows"):
    EmbeddingSource(str(tmp_path / "a.npy"), text_path=str(tmp_path / "b.npy"))
  with pytest.raises(ValueError, match="row 7"):
    EmbeddingSource(str(tmp_path / "nan.npy")).rows(np.arange(10))
  with pytest.raises(FileNotFoundError, match="not found"):
    EmbeddingSource(str(tmp_path / "missing.npy"))
  with pytest.raises(ValueError, match="name one"):
    EmbeddingSource(str(tmp_path / "two.npz"))
  with pytest.raises(KeyError, match="no array 'z'"):
    EmbeddingSource(str(tmp_path / "two.npz"), "z")
  with pytest.raises(ValueError, match="unsupported"):
    (tmp_path / "x.csv").write_text("1,2")
    EmbeddingSource(str(tmp_path / "x.csv"))


@pytest.mark.slow
def test_sae_embeddings_config_trains_on_a_user_file(tmp_path):
  data = SyntheticVLM(dim=16, num_shared=4, num_image_only=4, num_text_only=4)
  image, text, _, _ = data.pairs(jax.random.key(0), 2000)
  np.save(tmp_path / "img.npy", np.asarray(image))
  np.save(tmp_path / "txt.npy", np.asarray(text))
  config = load_config(os.path.join(ROOT, "configs", "sae_embeddings.py"), {
      "data.path": str(tmp_path / "img.npy"), "data.text_path": str(tmp_path / "txt.npy"),
      "model.dict_size": 32, "model.k": 2, "model.init_batch": 256, "train.batch_size": 64,
      "train.num_steps": 3, "train.log_every": 1, "evals.dictionary.num_pairs": 128,
      "evals.dictionary.plots": False})
  result = fit(config, str(tmp_path / "run"), quiet=True)
  assert os.path.exists(tmp_path / "run" / "eval" / "step_3.json") and result.step == 3
  with pytest.raises(ValueError, match="data.path"):
    fit(load_config(os.path.join(ROOT, "configs", "sae_embeddings.py")), str(tmp_path / "x"), quiet=True)


# ---- measures (known answers) -----------------------------------------------------------------

def test_fvu_l0_dead_dense():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(100, 5))
  assert D.fvu(x, x) == 0.0
  assert D.fvu(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0)
  assert D.r2(x, x) == 1.0
  codes = np.zeros((10, 4))
  codes[:, 0] = 1.0
  codes[:2, 1] = 1.0
  assert D.l0(codes) == pytest.approx(1.2)
  assert D.dead_fraction(codes) == 0.5
  assert D.dense_fraction(codes, 0.5) == 0.25


def test_recovery_and_stability():
  rng = np.random.default_rng(1)
  atoms = rng.normal(size=(20, 32))
  permuted = -atoms[rng.permutation(20)] * 3.0       # permutation, sign flip and scale
  assert D.concept_recovery(atoms, np.concatenate([atoms * 2, rng.normal(size=(5, 32))]))[
      "mean_max_cosine"] == pytest.approx(1.0)
  assert D.stability(atoms, permuted)["mean_matched_cosine"] == pytest.approx(1.0)
  assert D.stability(atoms, rng.normal(size=(20, 32)))["mean_matched_cosine"] < 0.5


def test_energy_modality_bridge_and_dominance():
  n = 1000
  rng = np.random.default_rng(2)
  img = np.zeros((n, 4))
  txt = np.zeros((n, 4))
  img[:, 0] = rng.random(n)          # feature 0: image-only
  txt[:, 1] = rng.random(n)          # feature 1: text-only
  both = rng.random(n) > 0.5         # features 2 (image side) and 3 (text side) co-fire in pairs
  img[both, 2] = 1.0
  txt[both, 3] = 1.0
  img[:, 3] = 0.5 * rng.random(n)    # feature 3 also fires weakly on images: cross-modal
  score = D.modality_score(img, txt)
  assert score[0] == 1.0 and score[1] == 0.0 and score[2] == 1.0 and 0.2 < score[3] < 0.8
  np.testing.assert_allclose(D.energy(np.concatenate([img, txt]))[0], img[:, 0].mean() / 2)
  atoms = np.eye(4)
  atoms[3] = atoms[2]                # 2 and 3 share a direction
  bridge = D.bridge_scores(img, txt, atoms)
  assert np.unravel_index(np.argmax(bridge), bridge.shape) == (2, 3)
  mds = D.modality_dominance(img, txt)
  assert mds["mds"][0] == 1.0 and mds["mds"][1] == -1.0
  assert mds["label"][1] == "text-dominant" and mds["label"][3] == "cross-modal"
  assert mds["label"][0] == "image-dominant"
  paper = D.modality_dominance(img, txt, cutoffs="std")
  assert paper["cutoffs"][0] == pytest.approx(np.nanmean(paper["mds"]) - np.nanstd(paper["mds"]))


def test_monosemanticity():
  rng = np.random.default_rng(3)
  centers = rng.normal(size=(3, 16))
  labels = rng.integers(0, 3, 600)
  inputs = centers[labels] + 0.3 * rng.normal(size=(600, 16))
  codes = np.zeros((600, 2))
  codes[:, 0] = (labels == 0) * rng.random(600)      # monosemantic: one cluster
  codes[:, 1] = rng.random(600)                      # polysemantic: everything
  result = D.monosemanticity(codes, inputs, top_n=20)
  assert result["score"][0] > 0.5 > abs(result["score"][1])
  assert result["win_rate"] >= 0.5


def test_measures_refuse_bad_input():
  rng = np.random.default_rng(4)
  img, txt = rng.random((500, 8)), rng.random((400, 8))
  with pytest.raises(ValueError, match="paired"):
    D.modality_dominance(img, txt)
  with pytest.raises(ValueError, match="paired"):
    D.modality_score(img, txt)
  with pytest.raises(ValueError, match="constant"):
    D.fvu(np.ones((10, 3)), rng.random((10, 3)))
  with pytest.raises(ValueError, match="NaN"):
    D.l0(np.full((4, 3), np.nan))
  with pytest.raises(ValueError, match="at least 1 sample"):
    D.energy(np.zeros((0, 3)))
  with pytest.raises(ValueError, match="cutoffs"):
    D.modality_dominance(img[:400], txt, cutoffs=(0.5, -0.5))
