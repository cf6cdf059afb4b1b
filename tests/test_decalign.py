import json
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from jaxdisent.data.multimodal_sequences import MMSAData, SyntheticMultimodalSequences
from jaxdisent.losses import decalign as L
from jaxdisent.metrics.multimodal import linear_probe_r2, sentiment_regression_metrics
from jaxdisent.models.decalign import DecAlignNet
from jaxdisent.evals import read_record
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config

from conftest import ROOT


def tiny_config(path="decalign_synthetic.py", **overrides):
  base = {"data.synthetic.widths": (6, 3, 4), "data.synthetic.lengths": (5, 7, 4),
          "data.synthetic.split_sizes": (64, 128, 128), "model.width": 8, "model.num_heads": 2,
          "loss.num_prototypes": 3, "loss.ot_iterations": 10, "train.batch_size": 16,
          "train.num_steps": 3, "train.log_every": 1, "train.checkpoint_every": 100,
          "evals.sentiment.batch_size": 64}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", path), base)


def gaussian_blobs(key, centres, sizes, scale=0.2):
  parts = [c + scale * jax.random.normal(jax.random.fold_in(key, i), (n, len(c)))
           for i, (c, n) in enumerate(zip(centres, sizes))]
  return jnp.concatenate(parts)


# ---- decoupling ---------------------------------------------------------------------------------

def test_decoupling_zero_for_orthogonal_one_for_parallel_and_differentiable():
  u = jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
  c_orth = jnp.array([[0.0, 3.0, 0.0], [0.0, 0.0, -1.0]])
  assert float(L.decoupling_loss([u, u], [c_orth, c_orth])) == pytest.approx(0.0, abs=1e-7)
  assert float(L.decoupling_loss([u], [-2 * u])) == pytest.approx(1.0, rel=1e-6)
  c = jax.random.normal(jax.random.key(0), u.shape)
  grad = jax.grad(lambda x: L.decoupling_loss([x], [c]))(u)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0


# ---- GMM + OT -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_gmm_em_recovers_well_separated_clusters():
  centres = jnp.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, -6.0, 3.0]])
  x = gaussian_blobs(jax.random.key(1), centres, (30, 50, 70), scale=0.3)
  gmm = jax.jit(lambda x: L.fit_diagonal_gmm(x, 3, num_steps=5))(x)
  order = [int(jnp.argmin(jnp.linalg.norm(gmm.means - c, axis=1))) for c in centres]
  assert sorted(order) == [0, 1, 2]
  np.testing.assert_allclose(gmm.means[jnp.array(order)], centres, atol=0.15)
  np.testing.assert_allclose(gmm.weights[jnp.array(order)], [0.2, 1 / 3, 70 / 150], atol=1e-3)
  # separated clusters -> hard assignments -> each variance is its blob's ML variance + floor
  blobs = np.split(np.asarray(x), [30, 80])
  np.testing.assert_allclose(gmm.variances[jnp.array(order)], [b.var(0) + 1e-4 for b in blobs],
                             rtol=1e-3)
  assert np.all(np.asarray(gmm.responsibilities).max(1) > 0.99)
  grad = jax.grad(lambda x: jnp.sum(L.fit_diagonal_gmm(x, 3).means ** 2))(x)
  assert np.all(np.isfinite(grad))


def test_gmm_variance_floor_and_too_few_samples():
  x = jnp.zeros((10, 2))  # all points identical: variances are just the floor, no NaN
  gmm = L.fit_diagonal_gmm(x, 2, var_floor=1e-4)
  assert np.all(np.isfinite(gmm.means)) and np.allclose(gmm.variances, 1e-4)
  with pytest.raises(ValueError, match="num_prototypes"):
    L.fit_diagonal_gmm(x, 11)


def test_w2_between_diagonal_gaussians():
  mu_a, sd_a = jnp.array([[0.0, 1.0]]), jnp.array([[1.0, 2.0]])
  mu_b, sd_b = jnp.array([[3.0, 1.0], [0.0, 1.0]]), jnp.array([[1.0, 2.0], [3.0, 0.5]])
  w2 = L.gaussian_w2_squared(mu_a, sd_a, mu_b, sd_b)
  np.testing.assert_allclose(w2, [[9.0, 4.0 + 2.25]])


def _gmms(shifts, key=0, n=60):
  centres = jnp.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
  base = gaussian_blobs(jax.random.key(key), centres, (n // 3,) * 3, scale=0.3)
  return [base + s for s in shifts], [L.fit_diagonal_gmm(base + s, 3) for s in shifts]


@pytest.mark.slow
def test_multimarginal_ot_cost_tensor_and_marginals():
  _, gmms = _gmms([0.0, jnp.array([1.0, 0.0]), jnp.array([0.0, -2.0])])
  ot = L.multimarginal_prototype_ot(gmms, epsilon=0.1, iterations=500)
  # the cost of a tuple is the sum of the pairwise squared W2 between its Gaussians
  sd = [jnp.sqrt(g.variances) for g in gmms]
  pair = lambda a, b: L.gaussian_w2_squared(gmms[a].means, sd[a], gmms[b].means, sd[b])
  expected = pair(0, 1)[:, :, None] + pair(0, 2)[:, None, :] + pair(1, 2)[None, :, :]
  np.testing.assert_allclose(ot.cost_tensor, expected, rtol=1e-4, atol=1e-4)
  assert float(ot.plan.sum()) == pytest.approx(1.0, abs=1e-4)
  for m, g in enumerate(gmms):
    axes = tuple(i for i in range(3) if i != m)
    np.testing.assert_allclose(ot.plan.sum(axis=axes), g.weights / g.weights.sum(), atol=1e-3)
  # two-marginals are oriented (rows = first modality named)
  np.testing.assert_allclose(L.pairwise_plan(ot.plan, 2, 0), L.pairwise_plan(ot.plan, 0, 2).T)
  np.testing.assert_allclose(L.pairwise_plan(ot.plan, 2, 1).sum(1), gmms[2].weights / gmms[2].weights.sum(),
                             atol=1e-3)


def test_ot_matches_identical_prototypes_at_zero_cost_and_grows_with_shift():
  _, same = _gmms([0.0, 0.0, 0.0])
  ot = L.multimarginal_prototype_ot(same)
  assert float(ot.cost) == pytest.approx(0.0, abs=1e-4)
  # mass sits on matching tuples (i, i, i)
  assert float(sum(ot.plan[i, i, i] for i in range(3))) > 0.99
  _, shifted = _gmms([0.0, jnp.array([1.0, 0.0]), jnp.array([2.0, 0.0])])
  cost = float(L.multimarginal_prototype_ot(shifted).cost)
  # each prototype of modality 3 is 2 away from modality 1's: pairwise W2^2 = 1 + 4 + 1
  assert cost == pytest.approx(6.0, rel=0.05)


@pytest.mark.slow
def test_heterogeneity_loss_minimal_for_identical_modalities_and_differentiable():
  feats_same, _ = _gmms([0.0, 0.0, 0.0])
  feats_diff, _ = _gmms([0.0, jnp.array([1.5, 0.0]), jnp.array([0.0, 1.5])])
  fn = jax.jit(lambda f: L.heterogeneity_loss(f, num_prototypes=3))
  same, aux_same = fn(feats_same)
  diff, aux_diff = fn(feats_diff)
  assert float(aux_same["ot_cost"]) < 1e-3 < float(aux_diff["ot_cost"])
  assert float(aux_same["sample_to_prototype"]) < float(aux_diff["sample_to_prototype"])
  assert float(same) < float(diff)
  grads = jax.grad(lambda f: fn(f)[0])(feats_diff)
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert float(sum(jnp.abs(g).sum() for g in grads)) > 0


# ---- homogeneity --------------------------------------------------------------------------------

@pytest.mark.slow
def test_homogeneity_terms_zero_for_identical_and_positive_otherwise():
  x = jax.random.normal(jax.random.key(3), (128, 4))
  loss, aux = L.homogeneity_loss([x, x, x])
  assert float(loss) == pytest.approx(0.0, abs=1e-6)
  assert float(aux["mmd"]) == pytest.approx(0.0, abs=1e-6)
  shifted = x + jnp.array([1.0, 0.0, 0.0, 0.0])
  loss_shift, aux_shift = L.homogeneity_loss([x, shifted])
  assert float(aux_shift["moment"]) > 0.1 and float(aux_shift["mmd"]) > 0.01
  grads = jax.grad(lambda f: L.homogeneity_loss(f)[0])([x, shifted])
  assert all(np.all(np.isfinite(g)) for g in grads) and float(jnp.abs(grads[1]).sum()) > 0


def test_moment_loss_sees_skewness_when_mean_and_variance_agree():
  e = jax.random.exponential(jax.random.key(4), (4000, 1))
  e = (e - e.mean()) / e.std()    # mean 0, var 1, skew ~2
  m = -e                          # mean 0, var 1, skew ~-2
  mean_cov = float(jnp.square(e.mean() - m.mean()) + jnp.square(e.var() - m.var()))
  assert mean_cov < 1e-6
  assert float(L.moment_loss(e, m)) == pytest.approx(16.0, rel=0.2)   # (2 - (-2))^2


def test_mmd_matches_its_definition():
  a = jnp.array([[0.0], [1.0]])
  b = jnp.array([[3.0]])
  k = lambda x, y: np.exp(-(x - y) ** 2 / 2.0)   # one bandwidth h = 1, d = 1
  expected = (k(0, 0) + k(1, 1) + 2 * k(0, 1)) / 4 + k(3, 3) - 2 * (k(0, 3) + k(1, 3)) / 2
  assert float(L.mmd_loss(a, b, bandwidths=(1.0,))) == pytest.approx(expected, rel=1e-5)


def test_task_losses():
  assert float(L.task_loss(jnp.array([[1.0], [-1.0]]), jnp.array([0.5, 1.0]))) == pytest.approx(1.25)
  logits = jnp.array([[0.0, jnp.log(3.0)]])
  assert float(L.task_loss(logits, jnp.array([1]), "classification")) == pytest.approx(-np.log(0.75),
                                                                                       rel=1e-5)
  with pytest.raises(ValueError, match="task"):
    L.task_loss(logits, jnp.array([1]), "ranking")


# ---- metrics ------------------------------------------------------------------------------------

def test_sentiment_metrics_follow_mmsa_definitions():
  rng = np.random.default_rng(0)
  label = np.round(rng.uniform(-3, 3, 200) * 3) / 3
  label[:10] = 0.0
  pred = label + rng.normal(0, 1.0, 200)
  out = sentiment_regression_metrics(pred, label)
  nz = label != 0
  assert out["mae"] == pytest.approx(np.mean(np.abs(pred - label)))
  assert out["corr"] == pytest.approx(np.corrcoef(pred, label)[0, 1])
  assert out["acc2"] == pytest.approx(accuracy_score(label[nz] > 0, pred[nz] > 0))
  assert out["f1"] == pytest.approx(f1_score(label[nz] > 0, pred[nz] > 0, average="weighted"))
  assert out["f1_has0"] == pytest.approx(f1_score(label >= 0, pred >= 0, average="weighted"))
  # acc7: clip to [-3, 3] and round half to even
  small = sentiment_regression_metrics(np.array([2.5, 3.7, -0.4, 1.5]), np.array([2.0, 3.0, 0.0, 1.0]))
  assert small["acc7"] == pytest.approx(0.75)  # 2.5->2 ok, 3.7->3 ok, -0.4->0 ok, 1.5->2 != 1


def test_linear_probe_r2_known_answers():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(600, 5))
  y = x @ rng.normal(size=(5, 2)) + 0.01 * rng.normal(size=(600, 2))
  assert linear_probe_r2(x[:400], y[:400], x[400:], y[400:]) > 0.99
  noise = rng.normal(size=(600, 1))
  assert abs(linear_probe_r2(x[:400], noise[:400], x[400:], noise[400:])) < 0.05


# ---- model + data -------------------------------------------------------------------------------

@pytest.mark.slow
def test_model_ignores_padding_and_takes_any_number_of_modalities():
  key = jax.random.key(0)
  for m in (2, 4):
    xs = [jax.random.normal(jax.random.fold_in(key, i), (3, 4 + i, 2 + i)) for i in range(m)]
    masks = [jnp.ones((3, 4 + i)).at[:, -2:].set(0.0) for i in range(m)]
    net = DecAlignNet(width=8, num_heads=2, conv_kernel=1)
    params = jax.jit(net.init)(key, xs, masks)
    apply = jax.jit(net.apply)
    out = apply(params, xs, masks)
    assert out["output"].shape == (3, 1) and len(out["unique"]) == m
    # garbage in padded positions changes nothing
    noisy = [x.at[:, -2:].set(100.0) for x in xs]
    np.testing.assert_allclose(apply(params, noisy, masks)["output"], out["output"], atol=1e-5)
  with pytest.raises(ValueError, match="mask"):
    net.apply(params, xs, [mk[:, :-1] for mk in masks])


@pytest.mark.slow
def test_synthetic_sequences_are_pure_and_padded():
  data = SyntheticMultimodalSequences(widths=(6, 3), lengths=(8, 5), split_sizes=(16, 32, 32))
  full = data.batch(0, 3, 0, 16)
  part = data.batch(0, 3, 4, 6)
  for k in full:  # same examples whatever the slicing (XLA may round differently per batch size)
    np.testing.assert_allclose(full[k][4:10], part[k], rtol=1e-5, atol=1e-6)
  assert not np.array_equal(full["m0"], data.batch(0, 4, 0, 16)["m0"])
  for name, length in zip(data.names, data.lengths):
    mask = full[name + "_mask"]
    assert mask.shape == (16, length)
    valid = mask.sum(1)
    assert valid.min() >= np.ceil(0.6 * length) and valid.max() <= length
    assert np.all(full[name][mask == 0] == 0)
  assert np.all(np.abs(full["label"]) <= 3)
  test = data.split("test")
  assert test["common"].shape == (32, 4) and test["unique"].shape == (32, 2, 2)
  np.testing.assert_array_equal(test["label"], data.split("test")["label"])


def write_mmsa_pickle(path, n=(40, 12, 12), length=6, widths=(16, 5, 20), neg_inf=True,
                      drop=None, lengths=True):
  rng = np.random.default_rng(0)
  raw = {}
  for split, count in zip(("train", "valid", "test"), n):
    d = {name: rng.normal(size=(count, length, w)).astype(np.float32)
         for name, w in zip(("text", "audio", "vision"), widths)}
    if neg_inf:
      d["audio"][0, 0, 0] = -np.inf
    if lengths:
      d["audio_lengths"] = rng.integers(1, length + 1, count)
    d["regression_labels"] = np.round(rng.uniform(-3, 3, count), 1).astype(np.float32)
    d["id"] = [f"{split}_{i}" for i in range(count)]
    raw[split] = d
  if drop:
    del raw[drop[0]][drop[1]]
  with open(path, "wb") as f:
    pickle.dump(raw, f)
  return raw


def test_mmsa_reader(tmp_path):
  path = str(tmp_path / "mosi.pkl")
  raw = write_mmsa_pickle(path)
  data = MMSAData(path, global_batch_size=16)
  assert data.widths == (16, 5, 20) and data.lengths == (6, 6, 6)
  train = data.split("train")
  assert train["audio"][0, 0, 0] == 0.0                       # -inf -> 0 as in MMSA
  np.testing.assert_array_equal(train["audio_mask"].sum(1), raw["train"]["audio_lengths"])
  assert np.all(train["text_mask"] == 1)
  # an epoch of batches covers every training example once
  seen = [data.batch(0, s, 0, 16) for s in range(3)]
  np.testing.assert_array_equal(data.batch(0, 2, 4, 8)["text"], seen[2]["text"][4:12])
  rows = np.concatenate([s["text"][:, 0, 0] for s in seen])
  # the first 40 draws (one epoch of the 40 training examples) are each training row exactly once
  np.testing.assert_array_equal(np.sort(rows[:40]), np.sort(train["text"][:, 0, 0]))


def test_mmsa_reader_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="data.path"):
    MMSAData(str(tmp_path / "missing.pkl"))
  bad = str(tmp_path / "bad.pkl")
  write_mmsa_pickle(bad, drop=("valid", "vision"))
  with pytest.raises(ValueError, match=r"'valid' is missing \['vision'\]"):
    MMSAData(bad)
  nosplit = str(tmp_path / "nosplit.pkl")
  write_mmsa_pickle(nosplit, drop=("test", "audio"))
  raw = pickle.load(open(nosplit, "rb"))
  del raw["test"]
  pickle.dump(raw, open(nosplit, "wb"))
  with pytest.raises(ValueError, match=r"missing split\(s\) \['test'\]"):
    MMSAData(nosplit)
  shapes = str(tmp_path / "shapes.pkl")
  raw = write_mmsa_pickle(shapes)
  raw["test"]["vision"] = raw["test"]["vision"][:, :, :3]
  pickle.dump(raw, open(shapes, "wb"))
  with pytest.raises(ValueError, match="vision"):
    MMSAData(shapes)
  nan = str(tmp_path / "nan.pkl")
  raw = write_mmsa_pickle(nan)
  raw["train"]["text"][1, 1, 1] = np.nan
  pickle.dump(raw, open(nan, "wb"))
  with pytest.raises(ValueError, match="NaN"):
    MMSAData(nan)


# ---- engine ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_logs_every_term_and_writes_the_evaluation(tmp_path):
  # 1 vs N devices, pmap, resume: tests/test_engine_contract.py; here only DecAlign's outputs
  fit(tiny_config(), str(tmp_path / "run"), devices=jax.devices()[:2], quiet=True)
  lines = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert {"task", "decoupling", "ot_cost", "sample_to_prototype", "moment", "mmd"} <= set(lines[-2])
  result = read_record(str(tmp_path / "run"))["evals"]["sentiment"]
  for key in ("mae", "corr", "acc2", "f1", "acc7", "probe_unique_to_own_unique",
              "probe_common_to_common", "probe_common_to_unique", "probe_unique_to_common"):
    assert np.isfinite(result[key]), key
    assert lines[-1][f"eval/sentiment/{key}"] == result[key]


@pytest.mark.slow
def test_ablation_switches_remove_terms(tmp_path):
  config = tiny_config(**{"loss.heterogeneity": False, "loss.homogeneity": False,
                          "loss.decoupling": False})
  fit(config, str(tmp_path / "task_only"), devices=jax.devices()[:2], quiet=True)
  last = [m for m in map(json.loads, open(tmp_path / "task_only" / "metrics.jsonl"))
          if "loss" in m][-1]
  assert "ot_cost" not in last and "mmd" not in last and "decoupling" not in last
  assert last["loss"] == pytest.approx(last["task"], rel=1e-6)


@pytest.mark.slow
def test_mosi_config_trains_on_an_mmsa_pickle(tmp_path):
  path = str(tmp_path / "mosi.pkl")
  write_mmsa_pickle(path, n=(32, 16, 16))
  config = tiny_config("decalign_mosi.py", **{"data.path": path, "data.synthetic.widths": (1, 1),
                                              "data.synthetic.lengths": (1, 1)})
  fit(config, str(tmp_path / "run"), quiet=True)
  result = read_record(str(tmp_path / "run"))["evals"]["sentiment"]
  assert result["num_examples"] == 16 and "probe_common_to_common" not in result
  assert 0.0 <= result["acc2"] <= 1.0 and np.isfinite(result["mae"])
  empty = tiny_config("decalign_mosi.py")
  with pytest.raises(ValueError, match="data.path"):
    fit(empty, str(tmp_path / "empty"), quiet=True)


@pytest.mark.slow
def test_ablation_launcher_writes_table_and_plot(tmp_path, capsys):
  from launch import decalign_ablation
  tiny = ["--config.data.synthetic.widths=6,3,4", "--config.data.synthetic.lengths=5,7,4",
          "--config.data.synthetic.split_sizes=64,128,128", "--config.model.width=8",
          "--config.model.num_heads=2", "--config.loss.num_prototypes=3",
          "--config.loss.ot_iterations=10", "--config.train.batch_size=16",
          "--config.train.num_steps=2", "--config.train.log_every=1", "--config.evals.sentiment.batch_size=64"]
  root = tmp_path / "ablation"
  assert decalign_ablation.main([f"--workdir={root}", "--variants=full,no_homogeneity", "--seeds=0",
                                 *tiny]) == 0
  table = (root / "ablation.md").read_text().splitlines()
  assert table[0].startswith("| variant | seeds | mae") and len(table) == 4
  assert table[2].startswith("| full | 1 |") and table[3].startswith("| no_homogeneity | 1 |")
  assert (root / "ablation.png").stat().st_size > 0
  assert decalign_ablation.main([f"--workdir={root}", "--variants=full,no_ot"]) == 2
  assert "unknown variant" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_on_mmsa_data_is_exact(tmp_path):
  path = str(tmp_path / "mosi.pkl")
  write_mmsa_pickle(path, n=(24, 8, 8))   # batch 16 over 24 examples: crosses an epoch boundary
  config = lambda steps: tiny_config("decalign_mosi.py", **{
      "data.path": path, "train.num_steps": steps, "train.checkpoint_every": 2,
      "train.eval_at_end": False})
  straight = fit(config(4), str(tmp_path / "straight"), quiet=True)
  fit(config(2), str(tmp_path / "resumed"), quiet=True)
  resumed = fit(config(4), str(tmp_path / "resumed"), quiet=True)
  for a, b in zip(jax.tree.leaves(straight.state.params), jax.tree.leaves(resumed.state.params)):
    np.testing.assert_array_equal(a, b)
  losses = lambda d: [m["loss"] for m in map(json.loads, open(tmp_path / d / "metrics.jsonl"))
                      if "loss" in m]
  assert losses("straight") == losses("resumed")
