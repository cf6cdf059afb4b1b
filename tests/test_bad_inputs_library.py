"""Bad input to library calls: each a one-line ValueError / TypeError naming the value and the fix,
or (where a value is legitimately undefined) a documented NaN with a RuntimeWarning; bfloat16 is
accepted wherever numbers are. Small shapes throughout (the compiles dominate the time)."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxdisent import metrics as M
from jaxdisent.data.embeddings import EmbeddingSource
from jaxdisent.io import sae_formats as F
from jaxdisent.losses import sae as L
from jaxdisent.losses import sparse_codes as S
from jaxdisent.metrics import dictionary as D
from jaxdisent.metrics import disentanglement as DD
from jaxdisent.metrics import multimodal as MM


def one_line(error) -> str:
  text = str(error.value)
  assert "\n" not in text, text
  return text


def codes_and_factors(n=60, seed=0):
  rng = np.random.default_rng(seed)
  factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
  codes = factors / 3 + 0.05 * rng.normal(size=factors.shape)
  codes = np.concatenate([codes, rng.normal(size=(n, 1))], axis=1).astype(np.float32)
  return codes, factors


# ---- shared validation layer (metrics._host) -----------------------------------------------------

def test_bfloat16_is_accepted_and_agrees_with_its_float32_value():
  codes, factors = codes_and_factors()
  bf = jnp.asarray(codes, jnp.bfloat16)
  exact = np.asarray(bf).astype(np.float32)      # bfloat16 -> float32 is exact
  assert M.mig(bf, factors) == M.mig(exact, factors)
  assert M.irs(bf, factors) == M.irs(exact, factors)
  assert D.l0(jnp.asarray(np.abs(codes), jnp.bfloat16)) == D.l0(np.abs(exact))
  pred = np.linspace(-2, 2, 40)
  assert (MM.sentiment_regression_metrics(jnp.asarray(pred, jnp.bfloat16), -pred)["mae"] ==
          MM.sentiment_regression_metrics(np.asarray(jnp.asarray(pred, jnp.bfloat16), np.float32),
                                          -pred)["mae"])


def test_non_numeric_complex_ragged_and_none_are_refused_by_name():
  codes, factors = codes_and_factors()
  with pytest.raises(TypeError, match="codes must be real; got dtype complex"):
    M.mig(codes + 1j, factors)
  with pytest.raises(TypeError, match="codes must be numeric"):
    M.mig(codes.astype(str), factors)
  with pytest.raises(ValueError, match="codes is not a rectangular numeric array"):
    M.mig([[1.0, 2.0], [1.0]], factors[:2])
  with pytest.raises(ValueError, match="codes is None"):
    M.modularity(None, factors)


# ---- disentanglement metrics ----------------------------------------------------------------------

def test_histogram_discretize_refuses_nan_when_called_on_concrete_arrays():
  codes, _ = codes_and_factors()
  codes[3, 1] = np.nan
  with pytest.raises(ValueError, match="NaN or inf, which fall in no histogram bin"):
    M.histogram_discretize(codes)
  # traced (inside jit) it cannot see values: the column with NaN gets no valid class
  traced = np.asarray(jax.jit(M.histogram_discretize)(codes))
  assert (traced[:, 1] == -1).all() and (traced[:, 0] >= 0).all()


@pytest.mark.parametrize("fn", [M.mig, M.modularity, M.irs])
def test_one_row_or_constant_factors_is_the_same_clear_error_everywhere(fn):
  codes, factors = codes_and_factors()
  for c, f in ((codes[:1], factors[:1]), (codes, np.zeros_like(factors))):
    with pytest.raises(ValueError, match="every column of factors is constant") as error:
      fn(c, f)
    one_line(error)


def test_supervised_scores_refuse_mismatched_splits_before_fitting():
  codes, factors = codes_and_factors()
  train, test = (codes[:30], factors[:30]), (codes[30:], factors[30:])
  for fn in (M.sap, M.explicitness, M.dci):
    with pytest.raises(ValueError, match="same code dimensions; got 3 and 2") as error:
      fn(*train, test[0][:, :2], test[1], n_jobs=1)
    one_line(error)
    with pytest.raises(ValueError, match="same factors; got 2 and 1"):
      fn(*train, test[0], test[1][:, :1], n_jobs=1)
    with pytest.raises(ValueError, match="codes_test and factors_test must have the same number"):
      fn(*train, test[0], test[1][:5], n_jobs=1)
    with pytest.raises(ValueError, match="codes_test needs at least 1 sample"):
      fn(*train, test[0][:0], test[1][:0], n_jobs=1)
    with pytest.raises(ValueError, match="every column of factors_train is constant"):
      fn(codes[:1], factors[:1], *test, n_jobs=1)
    with pytest.raises(ValueError, match="n_jobs"):
      fn(*train, *test, n_jobs=0)
  # one constant factor: the classifiers of DCI / explicitness cannot be fitted (named column)
  constant_one = factors[:30].copy()
  constant_one[:, 1] = 2
  for fn in (M.explicitness, M.dci):
    with pytest.raises(ValueError, match=r"factor column\(s\) \[1\] take a single value"):
      fn(codes[:30], constant_one, *test, n_jobs=1)
  with pytest.raises(ValueError, match="C must be a finite number > 0"):
    M.sap(*train, *test, C=-1, n_jobs=1)
  with pytest.raises(ValueError, match="SAP needs at least 2 code dimensions"):
    M.sap(codes[:30, :1], factors[:30], codes[30:, :1], factors[30:], n_jobs=1)
  with pytest.raises(ValueError, match="SAP needs at least 2 code dimensions"):
    DD.sap_from_scores(np.ones((1, 3)))


def test_undefined_values_are_nan_with_a_warning():
  codes, factors = codes_and_factors()
  # no test class was seen in training: every macro AUC is undefined
  with pytest.warns(RuntimeWarning, match=r"factor\(s\) \[0, 1\] is undefined on the test split"):
    out = M.explicitness(codes[:30], factors[:30], codes[30:], factors[30:] + 7, n_jobs=1)
  assert np.isnan(out["explicitness"]) and 0.5 < out["explicitness_train"] <= 1.0
  # DCI with one factor: disentanglement (an entropy in base 1) is undefined; completeness is not
  with pytest.warns(RuntimeWarning, match="disentanglement is undefined with a single factor"):
    disentanglement, completeness = M.dci_from_importance(np.array([[1.0], [0.0]]))
  assert np.isnan(disentanglement)
  assert completeness == pytest.approx(1.0, abs=1e-9)   # one code holds all the importance
  # a constant test target has no R^2
  x = np.random.default_rng(0).normal(size=(40, 3))
  y = x @ np.array([1.0, 2.0, 3.0])
  with pytest.warns(RuntimeWarning, match=r"target column\(s\) \[0\] are constant"):
    assert np.isnan(MM.linear_probe_r2(x[:30], y[:30], x[30:], np.ones(10)))
  with pytest.warns(RuntimeWarning, match="corr"):
    assert np.isnan(MM.sentiment_regression_metrics(np.ones(5), np.arange(5.0))["corr"])
  with warnings.catch_warnings():
    warnings.simplefilter("error")                          # a defined R^2 warns about nothing
    assert MM.linear_probe_r2(x[:30], y[:30], x[30:], y[30:]) > 0.99


def test_other_metric_arguments():
  codes, factors = codes_and_factors()
  with pytest.raises(ValueError, match="diff_quantile must be a finite number in \\[0, 1\\]; got 'x'"):
    M.irs(codes, factors, diff_quantile="x")
  with pytest.raises(ValueError, match="mi_DxK holds negative values"):
    M.modularity_from_mi(-np.ones((3, 2)))
  with pytest.raises(ValueError, match="importance_DxK holds negative values"):
    M.dci_from_importance(-np.ones((3, 2)))
  with pytest.raises(ValueError, match="more samples than code dimensions"):
    M.gaussian_total_correlation(codes[:3])
  x = np.random.default_rng(0).normal(size=(40, 3))
  with pytest.raises(ValueError, match="ridge must be a finite number >= 0; got 'a'"):
    MM.linear_probe_r2(x[:30], x[:30, 0], x[30:], x[30:, 0], ridge="a")
  with pytest.raises(ValueError, match="normal equations are singular"):
    MM.linear_probe_r2(np.ones((30, 3)), x[:30, 0], x[30:], x[30:, 0], ridge=0)
  with pytest.raises(ValueError, match="train_x needs at least 2 sample"):
    MM.linear_probe_r2(x[:1], x[:1, 0], x[30:], x[30:, 0])
  with pytest.raises(ValueError, match=r"one value per sample, shape \(N,\) or \(N, 1\)"):
    MM.sentiment_regression_metrics(np.ones((4, 3)), np.ones((4, 3)))


def test_dictionary_measures_refuse_what_they_cannot_measure():
  rng = np.random.default_rng(0)
  z = np.maximum(rng.normal(size=(50, 16)), 0)
  atoms = rng.normal(size=(16, 8))
  with pytest.raises(ValueError, match="image_codes_NxM holds negative values"):
    D.modality_score(-z, z)
  with pytest.raises(ValueError, match="holds negative values"):
    D.modality_dominance(z, -z)
  with pytest.raises(ValueError, match=r"true_atoms_CxD has zero rows \(atom\(s\) \[0, 1\]\)"):
    D.concept_recovery(np.zeros((2, 8)), atoms)
  with pytest.raises(ValueError, match="atoms_b_MxD has zero rows"):
    D.stability(atoms, np.zeros_like(atoms))
  with pytest.raises(ValueError, match="dense_threshold must be a finite number in \\[0, 1\\]; got '0.1'"):
    D.dense_fraction(z, "0.1")
  with pytest.raises(ValueError, match="cutoffs must be 'std' or a \\(low, high\\) pair"):
    D.modality_dominance(z, z, cutoffs=0.5)
  with pytest.raises(ValueError, match="seed must be an integer"):
    D.monosemanticity(z, atoms[:1].repeat(50, 0), top_n=5, seed="a")


# ---- SAE sparsifiers --------------------------------------------------------------------------

def test_sparsifier_k_out_of_range_is_a_clear_error_at_trace_time():
  pre = jnp.asarray(np.random.default_rng(0).random((4, 8)), jnp.float32)
  for k in (0, -1, 9, 2.5, True):
    with pytest.raises(ValueError, match=r"k must be a Python integer in \[1, 8\]"):
      L.topk(pre, k)
    with pytest.raises(ValueError, match=r"k must be a Python integer in \[1, 8\]"):
      jax.jit(lambda p, k=k: L.batchtopk(p, k))(pre)
  with pytest.raises(ValueError, match="2-D"):
    L.topk(pre[0], 2)
  with pytest.raises(ValueError, match="capacity must be a Python integer >= 1"):
    L.batchtopk_list(pre, 2, 0)
  with pytest.raises(ValueError, match="k_aux must be a Python integer >= 1"):
    L.auxk_loss(pre, pre, jnp.ones(8, bool), jnp.ones((8, 8)), 0)
  with pytest.raises(ValueError, match="chunk must be a Python integer >= 1"):
    S.decode(S.from_rows(pre, jnp.zeros((4, 8), jnp.int32)), jnp.ones((8, 3)), 4, chunk=0)
  with pytest.raises(ValueError, match=r"x and x_hat must have the same shape .*\(4, 8\) and \(4, 3\)"):
    L.fraction_of_variance_unexplained(pre, pre[:, :3])
  # the boundary values work: k = M keeps everything positive
  np.testing.assert_array_equal(L.topk(pre, 8), pre)
  np.testing.assert_array_equal(L.batchtopk(pre, 8)[0], pre)


# ---- SAELens / sparsify files -------------------------------------------------------------------

D_IN, D_SAE = 6, 10


def _tensors(seed=0):
  rng = np.random.default_rng(seed)
  return {"W_enc": rng.normal(size=(D_IN, D_SAE)).astype(np.float32),
          "b_enc": rng.normal(size=D_SAE).astype(np.float32),
          "W_dec": rng.normal(size=(D_SAE, D_IN)).astype(np.float32),
          "b_dec": rng.normal(size=D_IN).astype(np.float32)}


def _saelens(path, cfg, tensors=None, raw=None):
  os.makedirs(path)
  weights = os.path.join(path, F.SAELENS_WEIGHTS)
  if raw is not None:
    with open(weights, "wb") as f:
      f.write(raw)
  else:
    save_file(tensors or _tensors(), weights)
  with open(os.path.join(path, F.CFG), "w") as f:
    f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))
  return str(path)


def _sparsify(path, cfg, w_dec_transposed=False):
  os.makedirs(path)
  t = _tensors()
  save_file({"encoder.weight": t["W_enc"].T.copy(), "encoder.bias": t["b_enc"],
             "W_dec": t["W_dec"].T.copy() if w_dec_transposed else t["W_dec"], "b_dec": t["b_dec"]},
            os.path.join(path, F.SPARSIFY_WEIGHTS))
  with open(os.path.join(path, F.CFG), "w") as f:
    json.dump(cfg, f)
  return str(path)


def test_sae_imports_refuse_inconsistent_or_broken_files(tmp_path):
  base = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE}
  ok = _saelens(tmp_path / "ok", base)
  assert F.load(ok).kind == "relu"
  good = open(os.path.join(ok, F.SAELENS_WEIGHTS), "rb").read()
  transposed = dict(_tensors(), W_dec=_tensors()["W_dec"].T.copy())
  nan = _tensors()
  nan["W_enc"][0, 0] = np.nan
  cases = [
      (_saelens(tmp_path / "din", dict(base, d_in=7)), "cfg.json says d_in=7 but the weights have 6"),
      (_saelens(tmp_path / "dsae", dict(base, d_sae=11)), "cfg.json says d_sae=11 but the weights have 10"),
      (_saelens(tmp_path / "tr", base, transposed), "W_dec has shape \\(6, 10\\).*it looks transposed"),
      (_saelens(tmp_path / "nan", base, nan), "W_enc holds 1 NaN/inf value"),
      (_saelens(tmp_path / "s0", dict(base, metadata={"jaxdisent": {"input_scale": 0}})),
       "input_scale=0 must be a finite number > 0"),
      (_saelens(tmp_path / "k", dict(base, architecture="topk", k=50)), "k=50 must be in \\[1, 10\\]"),
      (_saelens(tmp_path / "nok", dict(base, architecture="topk")), "a TopK SAE needs k"),
      (_saelens(tmp_path / "trunc", base, raw=good[:len(good) // 2]),
       "sae_weights.safetensors cannot be read as safetensors .*truncated or corrupt"),
      (_saelens(tmp_path / "json", "{not json"), "cfg.json is not valid JSON"),
      (_sparsify(tmp_path / "spnok", {"d_in": D_IN, "num_latents": D_SAE}), "a TopK SAE needs k"),
      (_sparsify(tmp_path / "spk", {"k": 30}), "k=30 must be in \\[1, 10\\]"),
      (_sparsify(tmp_path / "spd", {"k": 3, "d_in": 8}), "cfg.json says d_in=8 but the weights have 6"),
      (_sparsify(tmp_path / "spT", {"k": 3}, w_dec_transposed=True), "it looks transposed"),
  ]
  for path, message in cases:
    with pytest.raises(ValueError, match=message) as error:
      F.load(path)
    assert os.path.basename(path) in one_line(error)         # names the file
  with pytest.raises(FileNotFoundError, match="is a file, not an SAE directory"):
    F.load(os.path.join(ok, F.CFG))


def test_export_refuses_to_overwrite_and_writes_complete_files(tmp_path):
  ok = _saelens(tmp_path / "ok", {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE})
  sae = F.load(ok)
  before = open(os.path.join(ok, F.CFG)).read()
  with pytest.raises(ValueError, match="already holds cfg.json.*refusing to overwrite"):
    F.export(sae, ok, "saelens")
  assert open(os.path.join(ok, F.CFG)).read() == before       # the user's cfg.json is untouched
  with pytest.raises(ValueError, match="is an existing file"):
    F.export(sae, os.path.join(ok, F.CFG), "saelens")
  out = str(tmp_path / "out")
  F.export(sae, out, "saelens")
  sae.params["W_enc"] = sae.params["W_enc"] * 2
  F.export(sae, out, "saelens", overwrite=True)
  np.testing.assert_array_equal(F.load(out).params["W_enc"], sae.params["W_enc"])
  assert sorted(os.listdir(out)) == [F.CFG, F.SAELENS_WEIGHTS]  # no temporary files left
  no_threshold = F.PortableSAE("jumprelu", 0, dict(sae.params))
  with pytest.raises(ValueError, match=r"lacks parameter\(s\) \['log_threshold'\]"):
    F.export(no_threshold, str(tmp_path / "bad"), "saelens")
  broken = F.PortableSAE("relu", 0, dict(sae.params, b_dec=np.full(D_IN, np.nan, np.float32)))
  with pytest.raises(ValueError, match="b_dec holds 6 NaN/inf"):
    F.export(broken, str(tmp_path / "bad"), "saelens")
  bad = F.PortableSAE("topk", 0, dict(sae.params))
  with pytest.raises(ValueError, match="a TopK SAE needs k"):
    F.export(bad, str(tmp_path / "bad"), "sparsify")
  assert not os.path.exists(tmp_path / "bad")


# ---- embedding files ---------------------------------------------------------------------------

def test_embedding_file_problems_name_the_file(tmp_path):
  x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
  np.save(tmp_path / "a.npy", x)
  os.rename(tmp_path / "a.npy", tmp_path / "renamed.npz")
  np.savez(tmp_path / "ok.npz", x=x)
  raw = (tmp_path / "ok.npz").read_bytes()
  (tmp_path / "trunc.npz").write_bytes(raw[:len(raw) // 2])
  np.savez(tmp_path / "none.npz")
  save_file({"x": x}, str(tmp_path / "ok.safetensors"))
  raw = (tmp_path / "ok.safetensors").read_bytes()
  (tmp_path / "trunc.safetensors").write_bytes(raw[:len(raw) - 20])
  np.save(tmp_path / "nocols.npy", np.zeros((5, 0), np.float32))
  for name, message in (("renamed.npz", "is not a .npz archive"), ("trunc.npz", "is not a .npz archive"),
                        ("none.npz", "holds no arrays"),
                        ("trunc.safetensors", "cannot be read as safetensors"),
                        ("nocols.npy", "has 0 columns")):
    with pytest.raises(ValueError, match=message) as error:
      EmbeddingSource(str(tmp_path / name))
    assert name in one_line(error)
  np.save(tmp_path / "plain.npy", x)
  with pytest.raises(ValueError, match="only for .npz / .safetensors files"):
    EmbeddingSource(str(tmp_path / "plain.npy"), "image")
  with pytest.raises(ValueError, match="is a directory"):
    EmbeddingSource(str(tmp_path))
  with pytest.raises(ValueError, match="has no paired text embeddings"):
    EmbeddingSource(str(tmp_path / "plain.npy")).rows(np.arange(3), "text")
  with pytest.raises(ValueError, match=r"row index out of range \[0, 10\)"):
    EmbeddingSource(str(tmp_path / "plain.npy")).rows(np.array([3, 10]))
  # bfloat16 embeddings (torch exports) are read as float32
  save_file({"x": x.astype(ml_dtypes.bfloat16)}, str(tmp_path / "bf16.safetensors"))
  source = EmbeddingSource(str(tmp_path / "bf16.safetensors"))
  np.testing.assert_array_equal(source.rows(np.arange(10)),
                                x.astype(ml_dtypes.bfloat16).astype(np.float32))


# ---- SAE method config -------------------------------------------------------------------------

def test_sae_config_keys_with_a_domain_are_checked_when_the_method_is_built():
  from jaxdisent.methods import make_method
  from test_sae import sae_config
  cases = {"model.k": (1000, r"model.k=1000 must be an integer in \[1, 64\]"),
           "loss.threshold_beta": (1.5, r"loss.threshold_beta=1.5 must be a finite number in"),
           "loss.jumprelu_bandwidth": (0.0, "loss.jumprelu_bandwidth=0.0 must be a finite number > 0"),
           "loss.auxk_alpha": (float("nan"), "loss.auxk_alpha=nan"),
           "loss.dead_tokens": (0, "loss.dead_tokens=0 must be an integer >= 1"),
           "model.dict_size": (0, "model.dict_size=0 must be an integer >= 1"),
           "model.b_dec_init": ("median", "model.b_dec_init='median' must be one of")}
  for key, (value, message) in cases.items():
    with pytest.raises(ValueError, match=message) as error:
      make_method(sae_config(**{key: value}))
    one_line(error)
  with pytest.raises(ValueError, match=r"model.k=0 must be an integer in \[1, 64\]"):
    make_method(sae_config(**{"model.k": 0}))
  # k is unused by relu / jumprelu SAEs; the boundary k = dict_size is valid
  make_method(sae_config(**{"model.kind": "relu", "model.k": 0}))
  assert make_method(sae_config(**{"model.k": 64})).k == 64


def test_ranking_scores_refuse_undefined_inputs():
  from jaxdisent.metrics import graph
  with pytest.raises(ValueError, match="needs both classes"):
    graph.auroc(np.array([0.1, 0.2]), np.array([1, 1]))
  with pytest.raises(ValueError, match="without a positive"):
    graph.average_precision(np.array([0.1, 0.2]), np.array([0, 0]))
  with pytest.raises(ValueError, match="one length"):
    graph.auroc(np.array([0.1, 0.2]), np.array([1]))
  with pytest.raises(ValueError, match="NaN"):
    graph.auroc(np.array([np.nan, 0.2]), np.array([1, 0]))
  assert graph.auroc(np.array([0.9, 0.1, 0.5]), np.array([1, 0, 0])) == 1.0
  assert graph.auroc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5
  assert graph.average_precision(np.array([0.9, 0.1, 0.5]), np.array([0, 1, 1])) == \
      pytest.approx((1 / 2 + 2 / 3) / 2)
