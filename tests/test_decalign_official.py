"""Official-protocol switches (issue 23 part 4), scale-invariant terms and diagnostics (part 3):
each switch changes what it says on a tiny input with a hand-computed value."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdisent.losses import decalign as L
from jaxdisent.methods import make_method
from jaxdisent.models.decalign import DecAlignNet
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config

from conftest import ROOT
from test_decalign import tiny_config, write_mmsa_pickle


# ---- prototype cost: sum vs mean over dimensions ------------------------------------------------

def _one_prototype(mean, std):
  mean, std = jnp.asarray([mean], jnp.float32), jnp.asarray([std], jnp.float32)
  return L.GMM(jnp.ones((1,)), mean, std ** 2, jnp.ones((4, 1)))


def test_prototype_cost_reduction_sum_vs_mean():
  a = _one_prototype([0.0, 1.0], [1.0, 2.0])
  b = _one_prototype([3.0, 1.0], [1.0, 4.0])
  # one prototype each: the plan is 1, the cost is the W2^2 = |mu_a - mu_b|^2 + |sd_a - sd_b|^2
  # = (9 + 0) + (0 + 4) = 13 summed over the 2 dimensions, 13 / 2 averaged over them
  summed = L.multimarginal_prototype_ot([a, b], cost_reduction="sum")
  mean = L.multimarginal_prototype_ot([a, b], cost_reduction="mean")
  assert float(summed.cost) == pytest.approx(13.0, rel=1e-5)
  assert float(mean.cost) == pytest.approx(6.5, rel=1e-5)
  with pytest.raises(ValueError, match="prototype_cost_reduction"):
    L.multimarginal_prototype_ot([a, b], cost_reduction="max")


# ---- decoupling on pooled vectors vs flattened sequences ------------------------------------------

def test_decouple_on_sequence_vs_pooled_hand_computed():
  u = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])      # (B=1, L=2, d=2)
  c = jnp.array([[[1.0, 0.0], [1.0, 0.0]]])
  # pooled: u = (.5, .5), c = (1, 0): cos = .5 / (sqrt(.5) * 1) -> cos^2 = 0.5
  assert float(L.decoupling_loss([u.mean(1)], [c.mean(1)])) == pytest.approx(0.5, rel=1e-6)
  # flattened: u = (1, 0, 0, 1), c = (1, 0, 1, 0): cos = 1 / 2 -> cos^2 = 0.25
  assert float(L.sequence_decoupling_loss([u], [c])) == pytest.approx(0.25, rel=1e-6)
  # padding the second step leaves (1, 0) vs (1, 0): cos^2 = 1
  mask = jnp.array([[1.0, 0.0]])
  assert float(L.sequence_decoupling_loss([u], [c], [mask])) == pytest.approx(1.0, rel=1e-6)


@pytest.mark.slow
def test_method_uses_the_switches():
  """The method's logged terms are the library functions of the model's outputs under each switch."""
  def terms(**overrides):
    method = make_method(tiny_config(**overrides))
    params, state = method.init(jax.random.key(0))
    batch = method.local_batch(0, 0, 0, 16)
    _, (metrics, _) = jax.jit(lambda p, b: method.loss(p, state, b, jax.random.key(1), 0))(params, batch)
    return method, params, batch, metrics
  method, params, batch, seq = terms(**{"loss.decouple_on": "sequence", "loss.regression_loss": "mse",
                                        "loss.prototype_cost_reduction": "mean"})
  out = jax.jit(method.apply)(params, batch)   # jitted: op by op it compiles ~10x longer
  masks = [batch[n + "_mask"] for n in method.data.names]
  np.testing.assert_allclose(seq["decoupling"], L.sequence_decoupling_loss(
      out["unique_seq"], out["common_seq"], masks), rtol=1e-5)
  np.testing.assert_allclose(seq["task"], np.mean((np.asarray(out["output"]).reshape(-1)
                                                   - batch["label"]) ** 2), rtol=1e-5)
  _, _, _, pooled = terms()
  np.testing.assert_allclose(pooled["decoupling"], L.decoupling_loss(out["unique"], out["common"]),
                             rtol=1e-5)
  assert abs(float(pooled["decoupling"]) - float(seq["decoupling"])) > 1e-4
  # 'mean' divides the OT cost (not the sample-to-prototype term) by the width d = 8
  assert float(seq["ot_cost"]) == pytest.approx(float(pooled["ot_cost"]) / 8, rel=0.2)
  with pytest.raises(ValueError, match="loss.decouple_on='time'"):
    make_method(tiny_config(**{"loss.decouple_on": "time"}))


# ---- GMM seeding ----------------------------------------------------------------------------------

def test_index_gmm_seeding_takes_the_official_rows():
  np.testing.assert_array_equal(L.index_seed_indices(10, 4), [0, 3, 6, 9])
  np.testing.assert_array_equal(L.index_seed_indices(8, 3), [0, 4, 7])   # 3.5 -> 4 (half to even)
  x = jax.random.normal(jax.random.key(0), (8, 2))
  gmm = L.fit_diagonal_gmm(x, 3, num_steps=0, init="index")
  np.testing.assert_array_equal(gmm.means, x[jnp.array([0, 4, 7])])
  far = L.fit_diagonal_gmm(x, 3, num_steps=0, init="farthest")
  np.testing.assert_array_equal(far.means, x[L.farthest_point_indices(x, 3)])
  with pytest.raises(ValueError, match="gmm_init"):
    L.fit_diagonal_gmm(x, 3, init="kmeans++")


# ---- fusion depth and dropout ---------------------------------------------------------------------

@pytest.mark.slow
def test_fusion_layers_and_dropout():
  key = jax.random.key(0)
  xs = [jax.random.normal(jax.random.fold_in(key, i), (3, 4, 2)) for i in range(2)]
  masks = [jnp.ones((3, 4)) for _ in range(2)]
  one = DecAlignNet(width=8, num_heads=2).init(key, xs, masks)["params"]
  three = DecAlignNet(width=8, num_heads=2, fusion_layers=3).init(key, xs, masks)["params"]
  blocks = lambda p: sorted(k for k in p if k.startswith("cross_0"))
  assert blocks(one) == ["cross_0"] and blocks(three) == ["cross_0", "cross_0_1", "cross_0_2"]
  block_size = sum(x.size for x in jax.tree.leaves(one["cross_0"]))
  assert (sum(x.size for x in jax.tree.leaves(three))
          == sum(x.size for x in jax.tree.leaves(one)) + 2 * 2 * block_size)
  net = DecAlignNet(width=8, num_heads=2, fusion_layers=2, dropout=0.5)
  params = net.init(key, xs, masks)
  det = net.apply(params, xs, masks)["output"]
  np.testing.assert_array_equal(net.apply(params, xs, masks, deterministic=True)["output"], det)
  a = net.apply(params, xs, masks, deterministic=False, rngs={"dropout": jax.random.key(1)})["output"]
  b = net.apply(params, xs, masks, deterministic=False, rngs={"dropout": jax.random.key(2)})["output"]
  assert not np.allclose(a, det) and not np.allclose(a, b)
  # dropout 0 in training mode is the deterministic network
  plain = DecAlignNet(width=8, num_heads=2, fusion_layers=2)
  np.testing.assert_array_equal(plain.apply(params, xs, masks, deterministic=False)["output"],
                                plain.apply(params, xs, masks)["output"])
  with pytest.raises(ValueError, match="fusion_layers"):
    make_method(tiny_config(**{"model.fusion_layers": 0}))
  with pytest.raises(ValueError, match="model.dropout"):
    make_method(tiny_config(**{"model.dropout": 1.0}))


@pytest.mark.slow
def test_dropout_masks_are_per_example_and_change_the_step():
  """Dropout masks come from each example's position in the global batch: dropout changes the
  output, and the first 4 examples' masks do not depend on what else is in the batch. That 1 and 4
  devices then train the same numbers (with one key per device the 4 shards would each reuse one
  mask pattern) is the engine contract's float64 one-vs-four-devices test, whose DecAlign case
  trains with dropout 0.3 (tests/test_engine_contract.py)."""
  method = make_method(tiny_config(**{"model.dropout": 0.3}))
  params, _ = method.init(jax.random.key(0))
  batch = jax.tree.map(jnp.asarray, method.local_batch(0, 0, 0, 8))
  apply = jax.jit(method.apply)   # op by op, the model's three calls compiled for ~20 s
  dropped = apply(params, batch, jax.random.key(1))["output"]
  assert not np.allclose(dropped, apply(params, batch)["output"])
  # the first 4 examples' masks do not depend on what else is in the batch
  head = jax.tree.map(lambda x: x[:4], batch)
  np.testing.assert_allclose(apply(params, head, jax.random.key(1))["output"], dropped[:4],
                             rtol=1e-5, atol=1e-6)


# ---- task loss, supervised contrastive, instance InfoNCE, weight decay ----------------------------

def test_mse_task_loss():
  pred, label = jnp.array([[1.0], [-1.0]]), jnp.array([0.5, 1.0])
  assert float(L.task_loss(pred, label, regression_loss="mse")) == pytest.approx((0.25 + 4) / 2)
  assert float(L.task_loss(pred, label)) == pytest.approx((0.5 + 2) / 2)
  with pytest.raises(ValueError, match="regression_loss"):
    L.task_loss(pred, label, regression_loss="huber")


def test_supervised_contrastive_hand_computed():
  z = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])       # rows normalise to e1, e1, e2
  classes = jnp.array([0, 0, 1])
  # rows 0 and 1: logits to the others (1, 0) / T=1; the positive has log-prob 1 - log(e + 1);
  # row 2 has no positive and is left out
  expected = np.log(np.e + 1) - 1.0
  assert float(L.supervised_contrastive_loss(z, classes, 1.0)) == pytest.approx(expected, rel=1e-5)
  # T = 0.5 doubles the logits: log(e^2 + 1) - 2
  assert float(L.supervised_contrastive_loss(z, classes, 0.5)) == pytest.approx(
      np.log(np.e ** 2 + 1) - 2.0, rel=1e-5)
  assert float(L.supervised_contrastive_loss(z, jnp.array([0, 1, 2]), 1.0)) == 0.0
  np.testing.assert_array_equal(L.contrastive_classes(jnp.array([-3.4, 0.4, 2.6, -0.5])),
                                [0, 3, 6, 3])


def test_instance_infonce_hand_computed():
  a = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  b = jnp.array([[3.0, 0.0], [0.0, 1.0]])
  # normalised a = b = I: every row's positive logit 1, negative 0 -> -log(e / (e + 1))
  assert float(L.instance_infonce_loss([a, b], 1.0)) == pytest.approx(np.log(np.e + 1) - 1, rel=1e-5)
  # swapping b's rows makes the positives orthogonal: -log(1 / (e + 1))
  assert float(L.instance_infonce_loss([a, b[::-1]], 1.0)) == pytest.approx(np.log(np.e + 1), rel=1e-5)


def test_weight_decay_is_coupled_l2_after_clipping():
  config = tiny_config(**{"optimizer.weight_decay": 0.5, "optimizer.grad_clip_norm": 1.0,
                          "optimizer.learning_rate": 0.1})
  opt = make_method(config).optimizer()
  params = {"w": jnp.array([2.0, -4.0])}
  grads = {"w": jnp.array([30.0, 40.0])}          # norm 50 -> clipped to (0.6, 0.8)
  updates, _ = opt.update(grads, opt.init(params), params)
  # Adam's first step is -lr * g / (|g| + eps) for g = clipped + 0.5 * w = (1.6, -1.2): -lr * sign
  np.testing.assert_allclose(updates["w"], [-0.1, 0.1], rtol=1e-5)
  zero, _ = opt.update({"w": jnp.zeros(2)}, opt.init(params), params)
  np.testing.assert_allclose(zero["w"], [-0.1, 0.1], rtol=1e-5)   # decay alone moves the weights
  plain = make_method(tiny_config()).optimizer()
  still, _ = plain.update({"w": jnp.zeros(2)}, plain.init(params), params)
  np.testing.assert_array_equal(still["w"], [0.0, 0.0])
  with pytest.raises(ValueError, match="optimizer.weight_decay"):
    make_method(tiny_config(**{"optimizer.weight_decay": -1.0}))


# ---- scale-invariant terms ------------------------------------------------------------------------

@pytest.mark.slow
def test_scale_invariant_terms_cannot_be_paid_by_shrinking():
  key = jax.random.key(5)
  feats = [jax.random.normal(jax.random.fold_in(key, m), (24, 4)) + m for m in range(3)]
  # jitted (norm static): op by op these terms compile every primitive separately
  hete = jax.jit(lambda s, norm: L.heterogeneity_loss([s * f for f in feats], num_prototypes=3,
                                                      normalize=norm)[0], static_argnums=1)
  homo = jax.jit(lambda s, norm: L.homogeneity_loss([s * f for f in feats], normalize=norm)[0],
                 static_argnums=1)
  for term in (hete, homo):
    # without normalisation shrinking all features by 10x lowers the term a lot ...
    assert float(term(0.1, False)) < 0.2 * float(term(1.0, False))
    # ... with it the term is the same at every scale and its derivative along the scale is 0
    assert float(term(0.1, True)) == pytest.approx(float(term(1.0, True)), rel=1e-3, abs=1e-6)
    assert abs(float(jax.grad(lambda s: term(s, True))(1.0))) < 1e-3
    assert abs(float(jax.grad(lambda s: term(s, False))(1.0))) > 1e-2


def test_mmd_loss_refuses_different_widths():
  with pytest.raises(ValueError, match=r"same width: got shapes \(4, 3\) and \(4, 5\)"):
    L.mmd_loss(jnp.zeros((4, 3)), jnp.zeros((4, 5)))
  with pytest.raises(ValueError, match=r"one width: got shapes \[\(4, 3\), \(4, 3\), \(4, 5\)\]"):
    L.homogeneity_loss([jnp.zeros((4, 3)), jnp.ones((4, 3)), jnp.zeros((4, 5))])


# ---- batch larger than the training split ---------------------------------------------------------

def test_batch_larger_than_the_split_fails_before_writing(tmp_path):
  path = str(tmp_path / "mosi.pkl")
  write_mmsa_pickle(path, n=(32, 8, 8))
  config = tiny_config("decalign_mosi.py", **{"data.path": path, "train.batch_size": 64})
  with pytest.raises(ValueError, match="train.batch_size=64 exceeds the 32 training examples"):
    fit(config, str(tmp_path / "run"), quiet=True)
  assert not os.path.exists(tmp_path / "run" / "config.json")


# ---- diagnostics at every evaluation --------------------------------------------------------------

@pytest.mark.slow
def test_diagnostics_are_logged_at_every_evaluation(tmp_path):
  config = tiny_config(**{"train.num_steps": 4, "train.eval_every": 2, "train.plots_at_end": False,
                          "evals.decalign.batch_size": 64})
  result = fit(config, str(tmp_path / "run"), quiet=True)
  rows = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  evals = [r for r in rows if "eval/decalign/unique_norm" in r]
  assert [r["step"] for r in evals] == [2, 4]
  for key in ("unique_norm", "common_norm", "head_std", "probe_unique_to_common", "valid_mae",
              "unique_common_cos2"):
    assert np.isfinite(evals[-1][f"eval/decalign/{key}"]), key
  # the logged values are what they say, recomputed from the final model
  method = result.method
  test, valid = method.data.split("test"), method.data.split("valid")
  feats = method.features(result.state.params, test)
  norm = np.mean([np.linalg.norm(u, axis=1).mean() for u in feats["unique"]])
  std = np.mean([h.std(0).mean() for h in feats["homogeneity"]])
  assert evals[-1]["eval/decalign/unique_norm"] == pytest.approx(norm, rel=1e-5)
  assert evals[-1]["eval/decalign/head_std"] == pytest.approx(std, rel=1e-5)
  out = method.features(result.state.params, valid)["output"].reshape(-1)
  assert evals[-1]["eval/decalign/valid_mae"] == pytest.approx(np.abs(out - valid["label"]).mean(),
                                                               rel=1e-5)


# ---- the official MOSI config ---------------------------------------------------------------------

@pytest.mark.slow
def test_official_mosi_config_holds_the_official_values(tmp_path):
  config = load_config(os.path.join(ROOT, "configs", "decalign_mosi_official.py"))
  # values of taco-group/DecAlign config/dec_mosi_config.json
  assert (config.model.width, config.model.num_heads, config.model.fusion_layers) == (64, 8, 5)
  assert config.model.dropout == 0.1 and config.model.conv_kernel == 1
  loss = config.loss
  assert (loss.regression_loss, loss.decouple_on, loss.prototype_cost_reduction, loss.gmm_init) == (
      "mse", "sequence", "mean", "index")
  assert (loss.heterogeneity_weight, loss.homogeneity_weight, loss.contrastive_weight) == (0.05, 0.07, 0.003)
  assert (loss.num_prototypes, loss.em_steps, loss.ot_epsilon, loss.ot_iterations) == (7, 5, 0.1, 50)
  opt = config.optimizer
  assert (opt.learning_rate, opt.weight_decay, opt.grad_clip_norm) == (6e-5, 0.005, 0.6)
  assert config.train.batch_size == 32 and config.train.num_steps == 722   # 18 epochs of 1,284
  # the MMD bandwidth: our exp(-sq / (2 h^2 d)) with h = 1 / sqrt(64) is the official exp(-sq / 2)
  a, b = jnp.zeros((1, 64)), jnp.full((1, 64), 0.25)        # |a - b|^2 = 4
  expected = 2 - 2 * np.exp(-4 / 2)
  assert float(L.mmd_loss(a, b, bandwidths=tuple(loss.mmd_bandwidths))) == pytest.approx(expected, rel=1e-5)
  # and it trains on an aligned MMSA pickle (shrunk: width 8, 2 fusion layers, 3 steps)
  path = str(tmp_path / "aligned_50.pkl")
  write_mmsa_pickle(path, n=(32, 16, 16), lengths=False)
  small = load_config(os.path.join(ROOT, "configs", "decalign_mosi_official.py"), {
      "data.path": path, "model.width": 8, "model.num_heads": 2, "model.fusion_layers": 2,
      "loss.num_prototypes": 3, "loss.ot_iterations": 10, "train.batch_size": 16,
      "train.num_steps": 3, "train.eval_every": 2, "train.log_every": 1, "train.plots_at_end": False,
      "evals.sentiment.batch_size": 64, "evals.decalign.batch_size": 64})
  fit(small, str(tmp_path / "run"), quiet=True)
  rows = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  last = [r for r in rows if "loss" in r][-1]
  assert {"supervised_contrastive", "decoupling", "ot_cost", "moment", "mmd"} <= set(last)
  assert any("eval/decalign/valid_mae" in r for r in rows)


@pytest.mark.slow
def test_alignment_strategy_variants_compute_what_they_say():
  """The ablation's alignment strategies: each heterogeneity option is the named library term of
  the unique features; homo_moments / homo_mmd drop the other homogeneity part."""
  from launch.decalign_ablation import VARIANTS
  def run(variant):
    method = make_method(tiny_config(**VARIANTS[variant]))
    params, state = method.init(jax.random.key(0))
    batch = method.local_batch(0, 0, 0, 16)
    _, (metrics, _) = jax.jit(lambda p, b: method.loss(p, state, b, None, 0))(params, batch)
    return method, params, batch, metrics
  method, params, batch, m = run("hete_moments")
  # every variant builds the same model from the same key and batch: its outputs, once
  out = jax.jit(method.apply)(params, batch)
  np.testing.assert_allclose(m["heterogeneity"], L.homogeneity_loss(out["unique"], mmd_weight=0.0)[0],
                             rtol=1e-5)
  *_, m = run("hete_mmd")
  np.testing.assert_allclose(m["heterogeneity"], L.homogeneity_loss(out["unique"], moment_weight=0.0)[0],
                             rtol=1e-5)
  *_, m = run("hete_contrastive")
  np.testing.assert_allclose(m["heterogeneity"], L.instance_infonce_loss(out["unique"]), rtol=1e-5)
  *_, m = run("homo_mmd")
  np.testing.assert_allclose(m["homogeneity"], m["mmd"], rtol=1e-6)
  *_, m = run("homo_moments")
  np.testing.assert_allclose(m["homogeneity"], m["moment"], rtol=1e-6)
  *_, m = run("instance_align")
  np.testing.assert_allclose(m["instance_align"], L.instance_infonce_loss(out["common"]), rtol=1e-5)
  assert "heterogeneity" not in m and "decoupling" not in m
  def total(variant):
    method = make_method(tiny_config(**VARIANTS[variant]))
    params, state = method.init(jax.random.key(0))
    batch = method.local_batch(0, 0, 0, 16)
    return jax.jit(lambda p, b: method.loss(p, state, b, None, 0)[0])(params, batch)
  # the stronger positive control differs from instance_align by 0.9 x the same InfoNCE term
  np.testing.assert_allclose(total("instance_align_w1") - total("instance_align"),
                             0.9 * m["instance_align"], rtol=1e-5)


def test_common_head_reads_the_common_features_only():
  """model.head_input='common': the head's input is the M pooled common features, so the output
  does not move when the unique branch's parameters do; 'all' (default) reads both; bad values
  are refused with the choices."""
  method = make_method(tiny_config(**{"model.head_input": "common"}))
  params, _ = method.init(jax.random.key(0))
  batch = method.local_batch(0, 0, 0, 8)
  width, modalities = int(method.config.model.width), len(method.data.names)
  assert params["head_hidden"]["kernel"].shape[0] == width * modalities
  apply = jax.jit(method.apply)   # one compiled program for both calls (op by op: ~10x longer)
  out = apply(params, batch)
  np.testing.assert_array_equal(out["representation"], np.concatenate(out["common"], axis=-1))
  moved = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 1.0 if "unique_encoder" in jax.tree_util.keystr(path) else x, params)
  moved_out = apply(moved, batch)
  assert not np.allclose(moved_out["unique"][0], out["unique"][0])   # the unique branch moved ...
  np.testing.assert_array_equal(moved_out["output"], out["output"])  # ... the head did not see it
  default = make_method(tiny_config())
  params_all, _ = default.init(jax.random.key(0))
  assert params_all["head_hidden"]["kernel"].shape[0] == 2 * width * modalities
  with pytest.raises(ValueError, match=r"model.head_input='unique': choose from \('all', 'common'\)"):
    make_method(tiny_config(**{"model.head_input": "unique"}))
