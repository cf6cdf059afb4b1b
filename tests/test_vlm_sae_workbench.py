"""The VLM-SAE workbench (issue 24): linear-structure analyses, the SAE evaluator's MDS / subspace /
classifier / bridge / monosemanticity keys, interventions scored by retrieval, concept naming."""

import json
import os

import jax
import numpy as np
import pytest

from jaxdisent.data.embeddings import EmbeddingSource
from jaxdisent.data.synthetic_vlm import IMAGE, SHARED, TEXT, SyntheticVLM, mixture_is_image
from jaxdisent.metrics import linear_structure as L


# ---- part 2: linear structure on the planted concepts ------------------------------------------

def test_modality_subspace_is_the_planted_gap():
  # only shared concepts: the image and text means differ by the planted modality gap alone
  data = SyntheticVLM(dim=32, num_image_only=0, num_text_only=0, noise=0.0)
  image, text, _, _ = map(np.asarray, data.pairs(jax.random.key(0), 4000))
  basis = L.modality_subspace(image, text)
  np.testing.assert_allclose(basis @ basis.T, np.eye(len(basis)), atol=1e-9)
  gap = data.truth()["gap"] / np.linalg.norm(data.truth()["gap"])
  assert abs(basis[0] @ gap) > 0.99
  # the fraction of an atom inside the subspace: the gap itself 1, a direction orthogonal to
  # the basis 0, the planted concepts their squared projection
  orth = np.linalg.qr(np.concatenate([basis, np.eye(32)]).T)[0].T[len(basis)]
  out = L.subspace_energy_fraction(np.stack([basis[0], orth, 3 * basis[0]]), basis)
  np.testing.assert_allclose(out["per_atom"], [1.0, 0.0, 1.0], atol=1e-9)
  atoms = data.truth()["directions"].astype(np.float64)
  expected = np.sum((atoms @ basis.T) ** 2, 1) / np.sum(atoms ** 2, 1)
  out = L.subspace_energy_fraction(atoms, basis, energy_M=np.arange(len(atoms), dtype=float))
  np.testing.assert_allclose(out["per_atom"], expected, rtol=1e-9)
  # random concept directions in 32 dims are nearly orthogonal to a 2-D subspace (E = 2/32)
  assert out["mean"] < 0.2 and out["near_orthogonal_fraction"] > 0.6
  np.testing.assert_allclose(out["energy_weighted_mean"],
                             np.sum(expected * np.arange(len(atoms))) / np.arange(len(atoms)).sum())


def test_modality_classifier_known_answers():
  data = SyntheticVLM(dim=32)
  _, _, acts_img, acts_txt = map(np.asarray, data.pairs(jax.random.key(1), 3000))
  modality = data.truth()["modality"]
  out = L.modality_classifier(acts_img, acts_txt, good=0.9)
  acc = out["balanced_accuracy"]
  fires = (acts_img > 0).mean(0)
  # image-only concept firing on a fraction f of images and never on texts: (1 + f) / 2 exactly
  np.testing.assert_allclose(acc[modality == IMAGE], 0.5 * (1 + fires[modality == IMAGE]), atol=1e-12)
  np.testing.assert_allclose(acc[modality == TEXT], 0.5 * (1 + (acts_txt > 0).mean(0)[modality == TEXT]),
                             atol=1e-12)
  # shared concepts fire in both members with 10% jitter: close to chance
  assert acc[modality == SHARED].max() < 0.56
  # a perfect classifier: a feature that fires on every image and no text, carrying 3/4 of energy
  img = np.concatenate([acts_img[:, :2] * 0, np.ones((3000, 1))], 1)
  txt = np.concatenate([np.ones((3000, 2)) * 0.5, np.zeros((3000, 1))], 1)
  out = L.modality_classifier(img, txt)
  np.testing.assert_allclose(out["balanced_accuracy"], [1.0, 1.0, 1.0])
  noisy = np.concatenate([img, txt]).copy()
  out = L.modality_classifier(np.c_[img, noisy[:3000, :1]], np.c_[txt, noisy[:3000, :1]])
  assert out["balanced_accuracy"][-1] == 0.5          # same values in both modalities
  with pytest.raises(ValueError, match="good"):
    L.modality_classifier(img, txt, good=1.5)
  with pytest.raises(ValueError, match="same width"):
    L.modality_classifier(img, txt[:, :2])


def test_subspace_bad_inputs():
  x = np.random.default_rng(0).normal(size=(10, 4))
  with pytest.raises(ValueError, match="same mean"):
    L.modality_subspace(x, x)
  with pytest.raises(ValueError, match="orthonormal"):
    L.subspace_energy_fraction(x, 2 * np.eye(4)[:1])
  with pytest.raises(ValueError, match="NaN"):
    L.modality_subspace(np.full((3, 4), np.nan), x)


def test_image_fraction_mixture(tmp_path):
  index = np.arange(10_000)
  for p in (0.0, 0.1, 0.25, 0.5, 0.8, 1.0):
    is_image = mixture_is_image(index, p)
    assert abs(is_image[:1000].sum() - 1000 * p) <= 1 and abs(is_image.sum() - 10_000 * p) <= 1
  np.testing.assert_array_equal(mixture_is_image(index, 0.5), index % 2 == 0)
  # synthetic: the default 0.5 is the paired batch; p = 1 holds images only, p = 0 texts only
  base = SyntheticVLM(dim=16, modality_gap=2.0)
  gap = base.truth()["gap"]
  assert np.mean(np.asarray(SyntheticVLM(dim=16, modality_gap=2.0, image_fraction=1.0)
                            .batch(0, 1, 0, 64)["x"]) @ gap > 0) == 1.0
  assert np.mean(np.asarray(SyntheticVLM(dim=16, modality_gap=2.0, image_fraction=0.0)
                            .batch(0, 1, 0, 64)["x"]) @ gap < 0) == 1.0
  quarter = np.asarray(SyntheticVLM(dim=16, modality_gap=2.0, image_fraction=0.25)
                       .batch(0, 1, 0, 400)["x"])
  np.testing.assert_array_equal(quarter @ gap > 0, mixture_is_image(np.arange(400), 0.25))
  with pytest.raises(ValueError, match="image_fraction"):
    SyntheticVLM(image_fraction=1.5)
  # files: image rows where the mixture says so, text rows elsewhere
  rng = np.random.default_rng(0)
  images = rng.normal(size=(50, 4)).astype(np.float32) + 10
  texts = rng.normal(size=(50, 4)).astype(np.float32) - 10
  np.save(tmp_path / "i.npy", images)
  np.save(tmp_path / "t.npy", texts)
  source = EmbeddingSource(str(tmp_path / "i.npy"), text_path=str(tmp_path / "t.npy"),
                           image_fraction=0.3)
  x = source.batch(0, 2, 5, 100)["x"]
  np.testing.assert_array_equal(x[:, 0] > 0, mixture_is_image(np.arange(5, 105), 0.3))
  paired = EmbeddingSource(str(tmp_path / "i.npy"), text_path=str(tmp_path / "t.npy"))
  np.testing.assert_array_equal(paired.batch(0, 2, 0, 8)["x"],
                                EmbeddingSource(str(tmp_path / "i.npy"), text_path=str(tmp_path / "t.npy"),
                                                image_fraction=0.5).batch(0, 2, 0, 8)["x"])
  with pytest.raises(ValueError, match="text_path"):
    EmbeddingSource(str(tmp_path / "i.npy"), image_fraction=0.3)


# ---- part 1: the evaluator's paired analyses --------------------------------------------------

def test_paired_analyses_on_the_planted_dictionary(tmp_path):
  """The ideal SAE (codes = planted activations, atoms = planted directions) has known classes."""
  from jaxdisent.evals.dictionary import paired_analyses
  data = SyntheticVLM(dim=32, num_shared=8, num_image_only=6, num_text_only=5, active_per_pair=6.0)
  image, text, acts_img, acts_txt = map(np.asarray, data.pairs(jax.random.key(2), 3000))
  truth = data.truth()
  live = (acts_img + acts_txt > 0).any(0)
  assert live.all()
  out = paired_analyses(image, text, acts_img, acts_txt, truth["directions"],
                        planted_directions=truth["directions"], out_dir=str(tmp_path), title="t")
  # image-only concepts have MDS = 1, text-only -1, shared ~0 (10% magnitude jitter)
  assert (out["mds_image-dominant"], out["mds_text-dominant"], out["mds_cross-modal"],
          out["mds_dead"]) == (6, 5, 8, 0)
  assert out["mds_fraction_image-dominant"] == 6 / 19
  assert out["modality_score_q10"] == 0.0 and out["modality_score_q90"] == 1.0
  assert 0.45 < out["modality_score_q50"] < 0.55              # a shared concept in the middle
  # single-modality concepts fire on a fraction f of one modality: balanced accuracy (1 + f) / 2
  fires = np.where(truth["modality"] == IMAGE, (acts_img > 0).mean(0), (acts_txt > 0).mean(0))
  expected = np.where(truth["modality"] == SHARED, np.nan, 0.5 * (1 + fires))
  features = json.loads((tmp_path / "features.json").read_text())["features"]
  got = np.array([f["modality_classifier_balanced_accuracy"] for f in features])
  single = truth["modality"] != SHARED
  np.testing.assert_allclose(got[single], expected[single], atol=1e-12)
  assert np.all(got[~single] < 0.56)
  assert out["subspace_fraction_planted"] == pytest.approx(out["subspace_fraction_mean"])
  # the planted concepts are the monosemantic ideal: every live one beats random samples
  assert out["monosemanticity_win_rate"] == 1.0 and out["monosemanticity_mean_score"] > 0.2
  # bridges: positive co-firing across a pair times atom cosine, i != j only
  bridges = json.loads((tmp_path / "bridges.json").read_text())["top_pairs"]
  assert bridges and all(b["image_feature"] != b["text_feature"] and b["score"] > 0 for b in bridges)
  assert out["bridge_count"] >= 1 and out["bridge_top_score"] == pytest.approx(bridges[0]["score"])
  for name in ("modality_histogram.png", "energy_vs_modality.png"):
    assert (tmp_path / name).stat().st_size > 5000
  with pytest.raises(ValueError, match="mds_cutoffs"):
    paired_analyses(image, text, acts_img, acts_txt, truth["directions"],
                    settings={"mds_cutoffs": "wide"})
