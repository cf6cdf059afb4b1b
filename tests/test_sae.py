import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxdisent.evals.dictionary import dictionary_scores
from jaxdisent.losses import sae as L
from jaxdisent.methods import make_method
from jaxdisent.runs import fit
from jaxdisent.train.config import load_config
from jaxdisent.train.parallel import make_mesh

from conftest import ROOT, Traces


def sae_config(**overrides):
  base = {"data.synthetic.dim": 16, "data.synthetic.num_shared": 6, "data.synthetic.num_image_only": 5,
          "data.synthetic.num_text_only": 5, "model.dict_size": 64, "model.k": 3,
          "model.init_batch": 256, "train.batch_size": 64, "train.num_steps": 4, "train.log_every": 1,
          "train.checkpoint_every": 100, "evals.dictionary.num_pairs": 256, "loss.dead_tokens": 128,
          "loss.threshold_start_step": 1, "evals.dictionary.plots": False}
  base.update(overrides)
  return load_config(os.path.join(ROOT, "configs", "sae_vlm_synthetic.py"), base)


@pytest.mark.slow
def test_batchtopk_is_exact_across_shards():
  pre = jax.nn.relu(jax.random.normal(jax.random.key(0), (32, 50)))
  codes_one, kth_one = L.batchtopk(pre, 4)
  assert int(jnp.sum(codes_one > 0)) == 4 * 32          # k * B over the whole batch
  counts = jnp.sum(codes_one > 0, axis=1)
  assert counts.min() != counts.max()                   # per-sample L0 varies
  mesh = make_mesh(jax.devices()[:4])
  sharded = jax.jit(jax.shard_map(lambda p: L.batchtopk(p, 4, "data"), mesh=mesh,
                                  in_specs=P("data"), out_specs=(P("data"), P()), check_vma=False))
  codes_four, kth_four = sharded(pre)
  np.testing.assert_array_equal(np.asarray(codes_four), np.asarray(codes_one))
  assert float(kth_four) == float(kth_one)
  # a per-shard top (k * B / n) would differ on this batch
  naive = jnp.concatenate([L.batchtopk(pre[i * 8:(i + 1) * 8], 4)[0] for i in range(4)])
  assert not np.array_equal(np.asarray(naive), np.asarray(codes_one))


@pytest.mark.parametrize("dominant_row", [False, True])
def test_batchtopk_fast_path_and_fallback_are_exact(dominant_row):
  pre = jax.nn.relu(jax.random.normal(jax.random.key(1), (32, 64)))
  if dominant_row:  # one row holds far more than row_cap of the batch's top entries -> fallback
    pre = pre.at[5].multiply(100.0)
  flat = np.sort(np.asarray(pre).reshape(-1))[::-1][4 * 32 - 1]
  for cap in (None, 2, 4, 64):
    assert float(L.batchtopk_threshold(pre, 4, row_cap=cap)) == pytest.approx(flat)
  mesh = make_mesh(jax.devices()[:4])
  sharded = jax.jit(jax.shard_map(lambda p: L.batchtopk(p, 4, "data", row_cap=8), mesh=mesh,
                                  in_specs=P("data"), out_specs=(P("data"), P()), check_vma=False))
  codes, kth = sharded(pre)
  assert float(kth) == pytest.approx(flat)
  assert int(jnp.sum(codes > 0)) == 4 * 32
  if dominant_row:
    assert int(jnp.sum(codes[5] > 0)) > 8   # more than the row cap: only the fallback gets this


def test_auxk_matches_a_dense_numpy_transcription():
  rng = np.random.default_rng(0)
  pre = np.maximum(rng.normal(size=(6, 10)), 0).astype(np.float32)
  residual = rng.normal(size=(6, 3)).astype(np.float32)
  w_dec = rng.normal(size=(10, 3)).astype(np.float32)
  dead = np.zeros(10, bool)
  dead[[1, 4, 7]] = True
  got = float(L.auxk_loss(jnp.asarray(pre), jnp.asarray(residual), jnp.asarray(dead),
                          jnp.asarray(w_dec), k_aux=2))
  recon = np.zeros_like(residual)
  for b in range(6):
    idx = np.where(dead)[0][np.argsort(-pre[b, dead])[:2]]
    recon[b] = pre[b, idx] @ w_dec[idx]
  variance = np.mean(np.sum((residual - residual.mean(0)) ** 2, 1))
  expected = np.mean(np.sum((residual - recon) ** 2, 1)) / variance
  assert got == pytest.approx(expected, rel=1e-5)
  # fewer dead latents than k_aux: only the dead ones decode
  dead_one = np.zeros(10, bool)
  dead_one[4] = True
  got_one = float(L.auxk_loss(jnp.asarray(pre), jnp.asarray(residual), jnp.asarray(dead_one),
                              jnp.asarray(w_dec), k_aux=3))
  recon_one = pre[:, 4:5] * w_dec[4][None]
  assert got_one == pytest.approx(np.mean(np.sum((residual - recon_one) ** 2, 1)) / variance, rel=1e-5)


def test_topk_and_threshold_codes():
  pre = jnp.array([[0.1, 0.5, 0.3, 0.0], [0.9, 0.2, 0.0, 0.4]])
  np.testing.assert_allclose(L.topk(pre, 2), [[0, 0.5, 0.3, 0], [0.9, 0, 0, 0.4]])
  np.testing.assert_allclose(L.threshold_codes(pre, 0.35), [[0, 0.5, 0, 0], [0.9, 0, 0, 0.4]])


def test_jumprelu_pseudo_gradients():
  x = jnp.array([[0.1, 0.2005, 0.5]])
  theta = jnp.array([0.2, 0.2, 0.2])
  grad_theta = jax.grad(lambda t: jnp.sum(L.jumprelu(x, t, 0.01)))(theta)
  assert grad_theta[1] < 0 and grad_theta[0] == 0 and grad_theta[2] == 0
  grad_l0 = jax.grad(lambda t: jnp.sum(L.step_function(x, t, 0.01)))(theta)
  assert grad_l0[1] < 0 and grad_l0[0] == 0


@pytest.mark.slow
def test_init_decoder_norm_and_threshold(tmp_path):
  method = make_method(sae_config())
  params, state = method.init(jax.random.key(0))
  np.testing.assert_allclose(params["W_enc"], params["W_dec"].T)
  np.testing.assert_allclose(np.linalg.norm(params["W_dec"], axis=1), 1.0, rtol=1e-5)
  first = jnp.asarray(method.data.batch(0, 0, 0, 256)["x"]) / state["input_scale"]
  np.testing.assert_allclose(jnp.mean(jnp.sum(first ** 2, axis=1)), 1.0, rtol=1e-4)  # unit MS norm
  diffs = first - params["b_dec"]
  unit_sum = jnp.sum(diffs / jnp.linalg.norm(diffs, axis=1, keepdims=True), axis=0)
  assert float(jnp.linalg.norm(unit_sum)) < 0.05 * 256   # geometric median: unit vectors cancel
  # projected gradients keep rows unit-norm to first order; post_update restores them exactly
  grads = jax.tree.map(jnp.ones_like, params)
  projected = method.transform_grads(grads, params)
  np.testing.assert_allclose(jnp.sum(projected["W_dec"] * params["W_dec"], axis=1), 0.0, atol=1e-5)
  result = fit(sae_config(**{"train.num_steps": 30}), str(tmp_path / "run"), quiet=True)
  np.testing.assert_allclose(np.linalg.norm(result.state.params["W_dec"], axis=1), 1.0, rtol=1e-5)
  assert result.state.model_state["threshold"] > 0
  pairs = method.data.pairs(jax.random.key(5), 512)
  codes = result.method.encode(result.state.params, result.state.model_state,
                               jnp.concatenate([pairs[0], pairs[1]]))
  l0 = float(jnp.mean(jnp.sum(codes > 0, axis=1)))
  assert 0.3 * 3 < l0 < 3 * 3                             # the learned threshold keeps L0 near k


def test_a_new_checkpoint_reuses_the_dictionary_programs():
  """dictionary_scores and encode_batched jit the method's encode / reconstruct with the parameters
  as arguments: scoring other parameters traces (so compiles) nothing again, and scores them."""
  from jaxdisent.evals.dictionary import encode_batched  # pylint: disable=g-import-not-at-top
  method = make_method(sae_config())
  states = []
  for seed in (0, 1):
    params, model_state = method.init(jax.random.key(seed))
    states.append(types.SimpleNamespace(params=params, model_state=model_state))
  x = np.asarray(method.data.pairs(jax.random.key(5), 64)[0])
  first = dictionary_scores(method, states[0], num_pairs=64)
  codes = encode_batched(method, states[0], x, batch=32)
  with Traces() as traces:
    second = dictionary_scores(method, states[1], num_pairs=64)
    codes2 = encode_batched(method, states[1], x, batch=32)
  assert traces.names == []
  assert first["fvu"] != second["fvu"] and not np.array_equal(codes, codes2)
  # bitwise what a freshly jitted encode (the same program) gives for the second parameters
  fresh = jax.jit(method.encode)(states[1].params, states[1].model_state, jnp.asarray(x[:32]))
  np.testing.assert_array_equal(codes2[:32], np.asarray(fresh))


@pytest.mark.parametrize("kind", ["batchtopk", "matryoshka_batchtopk", "topk", "relu", "jumprelu"])
@pytest.mark.slow
def test_every_kind_trains(tmp_path, kind):
  config = sae_config(**{"model.kind": kind, "train.num_steps": 150, "train.log_every": 50,
                         "optimizer.learning_rate": 3e-3})
  result = fit(config, str(tmp_path / kind), quiet=True)
  from jaxdisent.train.logging import read_metrics
  logged = [r for r in read_metrics(str(tmp_path / kind / "metrics.jsonl")) if "fvu" in r]  # training
  assert logged[-1]["fvu"] < 0.6 * logged[0]["fvu"], (kind, logged[0]["fvu"], logged[-1]["fvu"])
  report = dictionary_scores(result.method, result.state, num_pairs=256)
  assert 0 <= report["fvu"] < 1 and report["l0"] > 0


@pytest.mark.slow
def test_synthetic_recovery_with_default_length(tmp_path):
  """The planted concepts are recovered: mean max cosine of true vs learned atoms."""
  config = sae_config(**{"train.num_steps": 400, "train.batch_size": 256, "train.log_every": 100,
                         "optimizer.learning_rate": 3e-3, "data.synthetic.dim": 32})
  result = fit(config, str(tmp_path / "run"), quiet=True)
  report = dictionary_scores(result.method, result.state, num_pairs=1024)
  assert report["concept_recovery"] > 0.9, report
  # a random dictionary of the same size scores far lower
  from jaxdisent.metrics import dictionary as D
  random_atoms = np.random.default_rng(123).normal(size=(64, 32))
  assert D.concept_recovery(result.method.data.truth()["directions"], random_atoms)[
      "mean_max_cosine"] < 0.6


@pytest.mark.slow
def test_sae_sweep_writes_frontier_and_stability(tmp_path):
  import json
  from launch.sae_sweep import main as sweep_main
  config = os.path.join(ROOT, "configs", "sae_vlm_synthetic.py")
  small = ["--config.data.synthetic.dim=16", "--config.data.synthetic.num_shared=6",
           "--config.data.synthetic.num_image_only=5", "--config.data.synthetic.num_text_only=5",
           "--config.model.dict_size=32", "--config.model.init_batch=128",
           "--config.train.batch_size=64", "--config.train.num_steps=5",
           "--config.train.log_every=5", "--config.evals.dictionary.num_pairs=128",
           "--config.evals.dictionary.plots=false"]
  assert sweep_main([f"--config={config}", f"--root={tmp_path}", "--kinds=batchtopk,relu",
                     "--ks=2,3", "--l1=0.01", "--seeds=0,1", *small]) == 0
  points = json.loads((tmp_path / "frontier.json").read_text())
  assert [(p["kind"], p["seed"]) for p in points] == [("batchtopk", 0), ("batchtopk", 1),
                                                     ("batchtopk", 0), ("batchtopk", 1), ("relu", 0)]
  assert (tmp_path / "frontier.png").stat().st_size > 1000
  assert (tmp_path / "stability_vs_energy.png").stat().st_size > 1000
  assert sweep_main([f"--config={config}", f"--root={tmp_path}", "--kinds=gated"]) == 2


@pytest.mark.slow
def test_jumprelu_threshold_learns_sparsity(tmp_path):
  """The L0 penalty's pseudo-gradient must move the thresholds: L0 falls well below its start."""
  def l0_after(steps):
    config = sae_config(**{"model.kind": "jumprelu", "train.num_steps": steps, "train.log_every": 1,
                           "optimizer.learning_rate": 3e-3, "loss.jumprelu_l0_coeff": 0.01})
    result = fit(config, str(tmp_path / f"run{steps}"), quiet=True)
    return dictionary_scores(result.method, result.state, num_pairs=256)["l0"]
  assert l0_after(300) < 0.6 * l0_after(1)
