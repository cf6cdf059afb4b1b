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


@pytest.mark.slow
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
  # plots=false: the same values and files, without the two plots
  quiet = tmp_path / "no_plots"
  quiet.mkdir()
  again = paired_analyses(image, text, acts_img, acts_txt, truth["directions"],
                          planted_directions=truth["directions"], out_dir=str(quiet), title="t",
                          settings={"plots": False})
  assert again == out
  assert sorted(p.name for p in quiet.iterdir()) == ["bridges.json", "features.json"]
  with pytest.raises(ValueError, match="evals.dictionary.plots='no' must be true or false"):
    paired_analyses(image, text, acts_img, acts_txt, truth["directions"], out_dir=str(quiet),
                    settings={"plots": "no"})


# ---- end to end: one trained synthetic run, the evaluator, interventions -----------------------

PAIRED_KEYS = ("mds_fraction_cross-modal", "mds_cross-modal", "modality_score_q50",
               "energy_top10pct_share", "bridge_count", "monosemanticity_win_rate",
               "subspace_fraction_mean", "modality_classifier_good_energy_share")

SYNTHETIC = {"data.synthetic.dim": 32, "data.synthetic.num_shared": 16,
             "data.synthetic.num_image_only": 8, "data.synthetic.num_text_only": 8,
             "data.synthetic.active_per_pair": 6.0}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  """A BatchTopK SAE that recovers most planted concepts (~20 s on 2 CPU cores), trained once per
  test run and copied to each xdist worker that runs this module's tests (conftest)."""
  from conftest import built_once_per_run, tiny_sae_config
  from jaxdisent.runs import fit
  config = tiny_sae_config(**SYNTHETIC, **{
      "model.dict_size": 128, "model.k": 6, "train.num_steps": 600, "train.batch_size": 256,
      "train.log_every": 300, "train.checkpoint_every": 600, "loss.dead_tokens": 4096,
      "evals.dictionary.num_pairs": 512, "evals.dictionary.plots": True,  # the evaluations plot
      "train.eval_at_end": False, "train.plots_at_end": False})
  return built_once_per_run(tmp_path_factory, "vlm", lambda workdir: fit(config, workdir, quiet=True))


def _record(workdir):
  from jaxdisent.evals import read_record
  return read_record(workdir)["evals"]["dictionary"]


@pytest.mark.slow
def test_evaluate_writes_the_paired_keys(trained_run):
  from launch.evaluate import main
  assert main([f"--workdir={trained_run}"]) == 0
  scores = _record(trained_run)
  for key in PAIRED_KEYS:
    assert key in scores, key
  assert scores["concept_recovery"] > 0.8
  # every class is present on a run that recovers the planted image-only, text-only and shared
  # concepts, and the counts add up to the dictionary
  classes = ("image-dominant", "text-dominant", "cross-modal", "dead")
  assert all(scores[f"mds_{c}"] > 0 for c in classes)
  assert sum(scores[f"mds_{c}"] for c in classes) == 128
  assert sum(scores[f"mds_fraction_{c}"] for c in classes) == pytest.approx(1.0)
  out = os.path.join(trained_run, "eval", "step_600", "dictionary")
  for name in ("features.json", "bridges.json", "modality_histogram.png", "energy_vs_modality.png"):
    assert os.path.getsize(os.path.join(out, name)) > 1000, name
  lines = [json.loads(line) for line in open(os.path.join(trained_run, "metrics.jsonl"))]
  assert any("eval/dictionary/subspace_fraction_mean" in line for line in lines)


@pytest.mark.slow
def test_crossd_deletion_hurts_retrieval_more_than_random(trained_run):
  from launch.intervene import main
  for spec in ("mds:CrossD", "mds:ImgD", "mds:TxtD", "random:4"):
    assert main([f"--workdir={trained_run}", f"--ablate={spec}", "--num_pairs=256",
                 "--num_random=3"]) == 0
  directory = os.path.join(trained_run, "interventions")
  cross = json.loads(open(os.path.join(directory, "mds_CrossD.json")).read())
  assert cross["ablate"] == "mds:CrossD" and cross["num_features"] > 0
  for direction in ("image_to_text", "text_to_image"):
    for k in (1, 5, 10):
      assert set(cross[direction][f"recall_at_{k}"]) >= {"before", "after", "random_control"}
  r1 = cross["image_to_text"]["recall_at_1"]
  # the planted shared concepts carry the image-text alignment: deleting the cross-modal
  # features collapses retrieval, deleting as many random live features does not
  assert r1["before"] > 0.1
  assert r1["after"] < 0.5 * r1["random_control"]
  assert cross["text_to_image"]["recall_at_1"]["after"] < cross["text_to_image"]["recall_at_1"]["random_control"]
  summary = open(os.path.join(directory, "summary.md")).read()
  assert all(name in summary for name in ("mds_CrossD", "mds_ImgD", "mds_TxtD", "random_4"))
  assert os.path.getsize(os.path.join(directory, "deletion.png")) > 5000
  # bad specs: one line, exit 2, nothing written
  assert main([f"--workdir={trained_run}", "--ablate=mds:Foo"]) == 2
  assert main([f"--workdir={trained_run}", "--ablate=idx:100000"]) == 2
  assert main([f"--workdir={trained_run}", "--ablate=foo:1"]) == 2
  assert main([f"--workdir={trained_run}", "--steer=3"]) == 2
  assert main([f"--workdir={trained_run}", "--ablate=random:2", "--steer=3:1"]) == 2
  assert main([f"--workdir={trained_run}"]) == 2
  assert sorted(os.listdir(directory)) == ["deletion.png", "mds_CrossD.json", "mds_ImgD.json",
                                           "mds_TxtD.json", "random_4.json", "summary.md"]


def _zero_shot_set(data, n=600, classes=(0, 1, 2, 3)):
  """Images where exactly one of ``classes`` (planted shared concepts) fires, labelled by it; the
  class prompt is the text embedding of that concept alone (direction minus the modality gap)."""
  truth = data.truth()
  image, _, acts, _ = map(np.asarray, data.pairs(jax.random.key(77), 20 * n))
  on = acts[:, list(classes)] > 0
  keep = on.sum(1) == 1
  images, labels = image[keep][:n], on[keep].argmax(1)[:n]
  prompts = truth["directions"][list(classes)] - truth["gap"]
  return images, labels.astype(np.int64), prompts / np.linalg.norm(prompts, axis=1, keepdims=True)


@pytest.mark.slow
def test_zero_shot_and_steering(trained_run, tmp_path):
  from jaxdisent.runs import restore_latest
  from launch.intervene import intervene
  config, method, state, _ = restore_latest(trained_run)
  images, labels, prompts = _zero_shot_set(method.data)
  np.savez(tmp_path / "zs.npz", images=images, labels=labels, prompts=prompts)
  record = intervene(trained_run, ablate="mds:CrossD", zero_shot=str(tmp_path / "zs.npz"),
                     num_pairs=256, num_random=3, name="cross_zero_shot", log=lambda *a: None)
  zs = record["zero_shot_accuracy"]
  assert zs["num_classes"] == 4 and zs["num_images"] == len(images)
  assert zs["before"] > 0.6                       # 4 classes: chance 0.25
  assert zs["after"] < zs["random_control"]       # the class concepts are cross-modal features
  # steering: decode(z + alpha e_j) - decode(z) = alpha * input_scale * d_j, exactly linear
  from jaxdisent.metrics import interventions as I
  from jaxdisent.models.sae import SparseAutoencoder
  import jax.numpy as jnp
  codes = np.asarray(method.encode(state.params, state.model_state, images[:16]))
  edit = I.steering_edit(codes.shape[1], {5: 2.0, 9: -0.5})
  decode = lambda z: np.asarray(method.model.apply({"params": state.params}, jnp.asarray(z),
                                                   method=SparseAutoencoder.decode))
  shift = decode(I.edit_codes_core(codes, *edit)) - decode(codes)
  atoms = np.asarray(state.params["W_dec"])
  np.testing.assert_allclose(shift, np.broadcast_to(2.0 * atoms[5] - 0.5 * atoms[9], shift.shape),
                             atol=1e-5)
  # set a code, then ablate: the edit composes as documented
  keep, add, mask, value = I.ablation_edit(codes.shape[1], [3])
  mask[7], value[7] = True, 1.5
  edited = np.asarray(I.edit_codes_core(codes, keep, add, mask, value))
  assert (edited[:, 3] == 0).all() and (edited[:, 7] == 1.5).all()
  np.testing.assert_array_equal(np.delete(edited, [3, 7], 1), np.delete(codes, [3, 7], 1))
  # the launcher's steering record: the same shape, keyed "steer"
  record = intervene(trained_run, steer={5: 2.0}, num_pairs=64, num_random=2, log=lambda *a: None)
  assert record["steer"] == "5:2" and record["num_features"] == 1
  assert os.path.exists(os.path.join(trained_run, "interventions", "steer_5-2.json"))


# ---- part 4: naming --------------------------------------------------------------------------

def _planted_vocabulary(data, tmp_path):
  """One phrase per planted concept, embedded as a caption of that concept alone would be."""
  truth = data.truth()
  vocab = truth["directions"] - truth["gap"]
  vocab /= np.linalg.norm(vocab, axis=1, keepdims=True)
  phrases = [f"concept {c}" for c in range(len(vocab))]
  (tmp_path / "vocab.txt").write_text("\n".join(phrases) + "\n")
  np.save(tmp_path / "vocab.npy", vocab.astype(np.float32))
  return phrases, vocab


def test_naming_planted_atoms(tmp_path):
  from jaxdisent.metrics import naming
  data = SyntheticVLM(dim=32, num_shared=16, num_image_only=8, num_text_only=8)
  phrases, vocab = _planted_vocabulary(data, tmp_path)
  atoms = data.truth()["directions"]
  names = naming.name_atoms(atoms, vocab, phrases, top=3)
  assert [n["name"] for n in names] == phrases                  # every planted atom named right
  assert all(n["margin"] > 0 and n["cosines"][0] >= n["cosines"][1] for n in names)
  # a margin threshold withholds names
  assert all(n["name"] is None for n in naming.name_atoms(atoms, vocab, phrases, min_margin=2.0))
  loaded, emb = naming.load_vocabulary(str(tmp_path / "vocab.txt"), str(tmp_path / "vocab.npy"))
  assert loaded == phrases and emb.shape == vocab.shape
  with pytest.raises(ValueError, match="phrases but"):
    naming.name_atoms(atoms, vocab[:-1], phrases)
  with pytest.raises(ValueError, match="model that embedded"):
    naming.name_atoms(atoms[:, :8], vocab, phrases)
  np.save(tmp_path / "short.npy", vocab[:3].astype(np.float32))
  with pytest.raises(ValueError, match="embed exactly"):
    naming.load_vocabulary(str(tmp_path / "vocab.txt"), str(tmp_path / "short.npy"))


@pytest.mark.slow
def test_names_on_the_trained_run(trained_run, tmp_path):
  from jaxdisent.metrics import dictionary as D
  from jaxdisent.metrics import naming
  from jaxdisent.runs import restore_latest
  from launch.evaluate import main as evaluate_main
  from launch.explore import explore
  from launch.intervene import main as intervene_main
  _, method, state, _ = restore_latest(trained_run)
  phrases, vocab = _planted_vocabulary(method.data, tmp_path)
  atoms = np.asarray(state.params["W_dec"])
  recovery = D.concept_recovery(method.data.truth()["directions"], atoms)
  names = naming.name_atoms(atoms, vocab, phrases)
  recovered = np.nonzero(recovery["per_concept"] > 0.95)[0]
  assert len(recovered) >= 5
  for c in recovered:  # the atom that recovers planted concept c is named after it
    assert names[recovery["best_atom"][c]]["name"] == f"concept {c}"
  assert evaluate_main([f"--workdir={trained_run}",
                        f"--config.evals.dictionary.vocabulary={tmp_path / 'vocab.txt'}",
                        f"--config.evals.dictionary.vocabulary_embeddings={tmp_path / 'vocab.npy'}"]) == 0
  from jaxdisent.evals import read_record
  assert read_record(trained_run)["evals"]["dictionary"]["named_fraction"] > 0.5
  features = json.loads(open(os.path.join(trained_run, "eval", "step_600", "dictionary",
                                          "features.json")).read())["features"]
  c = int(recovered[0])
  assert features[recovery["best_atom"][c]]["name"] == f"concept {c}"
  vocabulary = [f"--vocabulary={tmp_path / 'vocab.txt'}", f"--vocabulary_embeddings={tmp_path / 'vocab.npy'}"]
  assert intervene_main([f"--workdir={trained_run}", f"--ablate=name:concept {c}", "--num_pairs=64",
                         "--num_random=2", *vocabulary]) == 0
  record = json.loads(open(os.path.join(trained_run, "interventions", f"name_concept-{c}.json")).read())
  assert record["features"] == [int(recovery["best_atom"][c])]
  assert record["feature_names"] == [f"concept {c}"]
  assert intervene_main([f"--workdir={trained_run}", "--ablate=name:zebra", *vocabulary]) == 2
  page = explore(trained_run, num_pairs=64, out=str(tmp_path / "e.html"), log=lambda *a: None,
                 vocabulary=str(tmp_path / "vocab.txt"),
                 vocabulary_embeddings=str(tmp_path / "vocab.npy"))
  assert f'"name": "concept {c}"' in open(page).read()


@pytest.mark.slow
def test_embedding_file_run_writes_the_same_keys(tmp_path):
  """configs/sae_embeddings.py on paired image/text files (trained on a 30 % image mixture)."""
  from conftest import ROOT
  from jaxdisent.evals import read_record
  from jaxdisent.runs import fit
  from jaxdisent.train.config import load_config
  from launch.evaluate import main
  data = SyntheticVLM(dim=16, num_shared=6, num_image_only=5, num_text_only=5)
  image, text, _, _ = map(np.asarray, data.pairs(jax.random.key(5), 3000))
  np.save(tmp_path / "img.npy", image)
  np.save(tmp_path / "txt.npy", text)
  config = load_config(os.path.join(ROOT, "configs", "sae_embeddings.py"), {
      "data.path": str(tmp_path / "img.npy"), "data.text_path": str(tmp_path / "txt.npy"),
      "data.image_fraction": 0.3, "model.dict_size": 64, "model.k": 3, "model.init_batch": 256,
      "train.batch_size": 64, "train.num_steps": 30, "train.log_every": 10,
      "train.checkpoint_every": 30, "loss.dead_tokens": 128, "loss.threshold_start_step": 1,
      "evals.dictionary.num_pairs": 512, "train.eval_at_end": False, "train.plots_at_end": False})
  workdir = str(tmp_path / "run")
  fit(config, workdir, quiet=True)
  assert main([f"--workdir={workdir}"]) == 0
  scores = read_record(workdir)["evals"]["dictionary"]
  for key in PAIRED_KEYS:
    assert key in scores, key
  classes = ("image-dominant", "text-dominant", "cross-modal", "dead")
  assert sum(scores[f"mds_{c}"] for c in classes) == 64
  assert "concept_recovery" not in scores                 # no planted truth in files
  assert main([f"--workdir={workdir}", "--config.evals.dictionary.mds_cutoffs=wide"]) == 2


def test_embed_a_vocabulary(tmp_path_factory, tmp_path):
  """launch.embed --texts: one normalised text embedding per phrase, loadable for naming."""
  pytest.importorskip("transformers")
  import test_embed
  from jaxdisent.metrics import naming
  from launch.embed import Embedder, main as embed_main
  # test_embed's module fixture imports torch/transformers into its globals, which tiny_clip uses:
  # run it here too, or this test fails with a NameError on a worker that ran no test_embed test
  test_embed._embed_libraries.__wrapped__()  # pylint: disable=protected-access
  model = test_embed.tiny_clip.__wrapped__(tmp_path_factory)
  (tmp_path / "vocab.txt").write_text("red cat\n\nblue car\ngreen grass\n")
  out = tmp_path / "out"
  assert embed_main([f"--model={model}", f"--texts={tmp_path / 'vocab.txt'}", f"--out={out}",
                     "--batch_size=2"]) == 0
  phrases, emb = naming.load_vocabulary(str(out / "vocabulary.txt"),
                                        str(out / "vocabulary_embeddings.npy"))
  assert phrases == ["red cat", "blue car", "green grass"]
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(emb, Embedder(model).texts(phrases), atol=1e-5)
  assert embed_main([f"--model={model}", f"--texts={tmp_path / 'none.txt'}", f"--out={out}"]) == 2


@pytest.mark.slow
def test_sae_sweep_mixture_grid_and_seed_stability(tmp_path):
  from conftest import ROOT
  from launch.sae_sweep import main as sweep_main, seed_stability
  config = os.path.join(ROOT, "configs", "sae_vlm_synthetic.py")
  small = ["--config.data.synthetic.dim=16", "--config.data.synthetic.num_shared=6",
           "--config.data.synthetic.num_image_only=5", "--config.data.synthetic.num_text_only=5",
           "--config.model.dict_size=32", "--config.model.init_batch=128",
           "--config.train.batch_size=64", "--config.train.num_steps=5",
           "--config.train.log_every=5", "--config.evals.dictionary.num_pairs=128"]
  assert sweep_main([f"--config={config}", f"--workdir={tmp_path}", "--kinds=batchtopk", "--ks=2",
                     "--seeds=0,1", "--grid=data.image_fraction=0.3,0.7", *small]) == 0
  rows = json.loads((tmp_path / "stability.json").read_text())
  assert [(r["data.image_fraction"], r["seeds"]) for r in rows] == [("0.3", [0, 1]), ("0.7", [0, 1])]
  assert all(0 < r["mean_matched_cosine"] <= 1 and r["num_seed_pairs"] == 1 for r in rows)
  points = json.loads((tmp_path / "frontier.json").read_text())
  assert {p["run"] for p in points} == {f"batchtopk_k=2_image_fraction={f}_seed{s}"
                                        for f in ("0.3", "0.7") for s in (0, 1)}
  assert all("stability" in p for p in points)
  # known answer: a run paired with itself is perfectly stable
  run = points[0]["run"]
  same = seed_stability(str(tmp_path), [{"kind": "batchtopk", "seed": 0, "run": run},
                                        {"kind": "batchtopk", "seed": 1, "run": run}])
  assert same[0]["mean_matched_cosine"] == pytest.approx(1.0, abs=1e-9)
  assert same[0]["energy_weighted_matched_cosine"] == pytest.approx(1.0, abs=1e-9)
  assert sweep_main([f"--config={config}", f"--workdir={tmp_path}", "--grid=seed=0,1"]) == 2


def test_zero_shot_file_errors_name_the_problem(tmp_path):
  from launch.intervene import _zero_shot_file
  rng = np.random.default_rng(0)
  good = {"images": rng.normal(size=(6, 4)), "labels": np.array([0, 1, 0, 1, 1, 0]),
          "prompts": rng.normal(size=(2, 4))}

  def npz(name, **over):
    path = str(tmp_path / name)
    np.savez(path, **{**good, **over})
    return path

  images, labels, prompts = _zero_shot_file(npz("ok.npz"), 4)
  assert images.shape == (6, 4) and labels.dtype == np.int32 and prompts.shape == (2, 4)
  cases = [
      (str(tmp_path / "absent.npz"), FileNotFoundError, "not found"),
      (npz("wide.npz", prompts=rng.normal(size=(2, 5))), ValueError, "the run's width 4"),
      (npz("labels.npz", labels=np.array([0.0, 1, 0, 1, 1, 0])), ValueError, "6 integers"),
      (npz("range.npz", labels=np.array([0, 1, 2, 1, 1, 0])), ValueError, r"in \[0, 2\)"),
      (npz("nan.npz", images=np.full((6, 4), np.nan)), ValueError, "NaN or inf"),
  ]
  missing = str(tmp_path / "missing.npz")
  np.savez(missing, images=good["images"], labels=good["labels"])
  cases.append((missing, KeyError, r"lacks array\(s\) \['prompts'\]"))
  single = str(tmp_path / "single.npy")
  np.save(single, good["images"])
  cases.append((single, ValueError, "holds one array, not an .npz"))
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not numpy at all")
  cases.append((str(garbage), ValueError, "cannot be read as .npz"))
  for path, error, message in cases:
    with pytest.raises(error, match=message):
      _zero_shot_file(path, 4)
