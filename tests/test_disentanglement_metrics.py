"""Known answers, invariances, and agreement with straightforward transcriptions of
disentanglement_lib's definitions (NumPy + scikit-learn, written here independently)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import mutual_info_score

from jaxdisent import metrics as M
from jaxdisent.data.ground_truth import GroundTruthData
from reference_disentanglement import discretize as ref_discretize, irs as ref_irs, mi_matrix as ref_mi_matrix, mig as ref_mig, modularity as ref_modularity

SIZES = (3, 6, 10, 8)


def make_factors(n=6000, seed=0, sizes=SIZES):
  rng = np.random.default_rng(seed)
  return np.stack([rng.integers(0, s, n) for s in sizes], axis=1)


def perfect_codes(factors, seed=1, noise=0.01):
  """Each code is one factor (rescaled) plus tiny noise, plus two pure-noise codes."""
  rng = np.random.default_rng(seed)
  scaled = factors / np.maximum(factors.max(axis=0), 1)
  codes = scaled + noise * rng.normal(size=factors.shape)
  return np.concatenate([codes, rng.normal(size=(len(factors), 2))], axis=1).astype(np.float32)


# ---- building blocks ---------------------------------------------------------------------------

def test_discretize_and_mutual_info_match_numpy_sklearn():
  rng = np.random.default_rng(0)
  codes = rng.normal(size=(3000, 5)).astype(np.float32) * [1, 10, 0.1, 3, 1] + [0, 5, -2, 0, 0]
  ours = np.asarray(M.histogram_discretize(codes)) + 1  # ours is 0-based
  np.testing.assert_array_equal(ours, ref_discretize(codes))
  factors = make_factors(3000)
  codes[:, 0] += factors[:, 1]
  np.testing.assert_allclose(M.mutual_info_matrix(codes, factors),
                             ref_mi_matrix(ref_discretize(codes), factors), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(M.discrete_entropy(factors),
                             [mutual_info_score(f, f) for f in factors.T], rtol=1e-5)
  np.testing.assert_allclose(M.discrete_entropy(factors[:, :1]), [np.log(3)], rtol=1e-2)


# ---- MIG / modularity ---------------------------------------------------------------------------

def test_mig_known_answers_and_reference():
  factors = make_factors()
  perfect = perfect_codes(factors)
  assert M.mig(perfect, factors) > 0.97
  noise = np.random.default_rng(5).normal(size=(len(factors), 6)).astype(np.float32)
  assert M.mig(noise, factors) < 0.03
  for codes in (perfect, noise):
    np.testing.assert_allclose(M.mig(codes, factors), ref_mig(codes, factors), rtol=1e-4, atol=1e-6)


def test_mig_invariant_to_permuting_and_rescaling_codes():
  factors = make_factors()
  codes = perfect_codes(factors, noise=0.2)
  base = M.mig(codes, factors)
  permuted = codes[:, ::-1] * np.array([3.0, 0.5, 7.0, 1.0, 2.0, 10.0], np.float32) + 4.0
  np.testing.assert_allclose(M.mig(permuted, factors), base, rtol=1e-3)


def test_mig_penalises_a_code_mixing_two_factors():
  factors = make_factors()
  codes = perfect_codes(factors)
  mixed = codes.copy()
  mixed[:, 1] = codes[:, 1] + codes[:, 2]   # code 1 now carries factors 1 and 2 ...
  mixed[:, 2] = codes[:, 2] - codes[:, 1]   # ... and so does code 2
  assert M.mig(mixed, factors) < M.mig(codes, factors) - 0.2
  # (first 4 codes: the pure-noise codes have near-random modularity either way)
  assert M.modularity(mixed[:, :4], factors) < M.modularity(codes[:, :4], factors) - 0.03


def test_modularity_known_answers_and_reference():
  factors = make_factors()
  perfect = perfect_codes(factors)[:, :4]
  assert M.modularity(perfect, factors) > 0.99
  np.testing.assert_allclose(M.modularity(perfect, factors), ref_modularity(perfect, factors),
                             rtol=1e-4)
  one_code_all_factors = np.sum(perfect, axis=1, keepdims=True)
  low = np.concatenate([one_code_all_factors, perfect[:, :1]], axis=1)
  np.testing.assert_allclose(M.modularity(low, factors), ref_modularity(low, factors), rtol=1e-4)
  assert M.modularity(low, factors) < 0.9
  np.testing.assert_allclose(M.modularity_from_mi(np.zeros((3, 2))), 0.0)


# ---- SAP / DCI / explicitness ------------------------------------------------------------------

@pytest.mark.slow
def test_sap_known_answers():
  # binary factors: a 1-D linear SVM separates them perfectly, so the gap is ~1 - 0.5
  factors = make_factors(3000, sizes=(2, 2, 2))
  codes = perfect_codes(factors)
  high = M.sap(codes[:2000], factors[:2000], codes[2000:], factors[2000:])
  noise = np.random.default_rng(3).normal(size=codes.shape).astype(np.float32)
  low = M.sap(noise[:2000], factors[:2000], noise[2000:], factors[2000:])
  assert high > 0.4 and low < 0.05, (high, low)
  np.testing.assert_allclose(M.disentanglement.sap_from_scores(np.array([[0.9, 0.2], [0.3, 0.6]])),
                             np.mean([0.6, 0.4]))


def test_dci_from_importance_matches_definition():
  identity = np.eye(4)
  d, c = M.dci_from_importance(identity)
  assert d > 0.999 and c > 0.999
  uniform = np.ones((4, 4))
  d, c = M.dci_from_importance(uniform)
  assert abs(d) < 1e-6 and abs(c) < 1e-6
  rng = np.random.default_rng(0)
  r = rng.random((5, 3))
  per_code = 1 - scipy.stats.entropy(r.T + 1e-11, base=3)
  per_factor = 1 - scipy.stats.entropy(r + 1e-11, base=5)
  d, c = M.dci_from_importance(r)
  np.testing.assert_allclose(d, np.sum(per_code * r.sum(1) / r.sum()))
  np.testing.assert_allclose(c, np.sum(per_factor * r.sum(0) / r.sum()))


def test_dci_end_to_end():
  factors = make_factors(1200, sizes=(3, 4, 5))
  codes = perfect_codes(factors)
  codes = codes[:, :3]  # no pure-noise codes: forests give noise features impurity importance
  good = M.dci(codes[:800], factors[:800], codes[800:], factors[800:], importance="random_forest")
  assert good["dci_disentanglement"] > 0.75 and good["dci_informativeness"] > 0.95
  mixed = codes @ np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
  bad = M.dci(mixed[:800], factors[:800], mixed[800:], factors[800:], importance="random_forest")
  assert bad["dci_disentanglement"] < good["dci_disentanglement"] - 0.3
  gbt = M.dci(codes[:400, :3], factors[:400, :2], codes[400:600, :3], factors[400:600, :2])
  assert gbt["dci_disentanglement"] > 0.8 and gbt["dci_importance"].shape == (3, 2)


def test_explicitness():
  factors = make_factors(2000, sizes=(3, 4))
  codes = perfect_codes(factors)
  good = M.explicitness(codes[:1500], factors[:1500], codes[1500:], factors[1500:])
  noise = np.random.default_rng(1).normal(size=codes.shape)
  bad = M.explicitness(noise[:1500], factors[:1500], noise[1500:], factors[1500:])
  assert good["explicitness"] > 0.97 and 0.4 < bad["explicitness"] < 0.6


# ---- unsupervised ------------------------------------------------------------------------------

def test_gaussian_total_correlation_known_answer():
  rng = np.random.default_rng(0)
  rho = 0.8
  cov = np.array([[1.0, rho], [rho, 1.0]])
  x = rng.multivariate_normal([0, 0], cov, size=200_000)
  np.testing.assert_allclose(M.gaussian_total_correlation(x), -0.5 * np.log(1 - rho ** 2), rtol=0.02)
  assert abs(M.gaussian_total_correlation(rng.normal(size=(100_000, 4)))) < 1e-3


def test_mutual_info_between_codes():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(20_000, 3))
  assert M.mutual_info_between_codes(x) < 0.02
  dup = np.concatenate([x[:, :1], x[:, :1]], axis=1)
  assert M.mutual_info_between_codes(dup) > 2.0


# ---- IRS ---------------------------------------------------------------------------------------

def test_irs_known_answer_and_reference():
  factors = make_factors()
  codes = perfect_codes(factors, noise=0.0)[:, :4]
  assert M.irs(codes, factors)["irs"] > 0.999
  noisy = perfect_codes(factors, noise=0.1)
  np.testing.assert_allclose(M.irs(noisy, factors)["irs"], ref_irs(noisy.astype(np.float64), factors),
                             rtol=1e-5)
  assert M.irs(noisy, factors)["irs"] < 0.9


# ---- sampling-based ----------------------------------------------------------------------------

class ToyFactors(GroundTruthData):
  """A grid whose 'images' are the factor values themselves (1 x 1 x K)."""
  name = "toy"

  @property
  def factor_names(self):
    return ("a", "b", "c")

  @property
  def factor_sizes(self):
    return (4, 5, 6)

  @property
  def observation_shape(self):
    return (1, 1, 3)

  def images_from_factors(self, factors):
    return jnp.asarray(factors, jnp.float32)[:, None, None, :]


def flat(images):
  return images.reshape(images.shape[0], -1)


@pytest.mark.slow
def test_factor_vae_and_beta_vae_scores():
  data = ToyFactors()
  rng = jax.random.key(0)
  perfect = lambda x: flat(x) / jnp.array([3.0, 4.0, 5.0])
  extra = lambda x: jnp.concatenate([perfect(x), jnp.zeros((x.shape[0], 2))], axis=1)  # 2 dead dims
  fv = M.factor_vae_score(data, extra, rng, num_train=300, num_eval=200, num_variance_estimate=2000)
  assert fv["factor_vae_score"] == 1.0 and fv["factor_vae_active_dims"] == 3
  mixing = jnp.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
  entangled = lambda x: perfect(x) @ mixing
  fv_bad = M.factor_vae_score(data, entangled, rng, num_train=300, num_eval=200,
                              num_variance_estimate=2000)
  assert fv_bad["factor_vae_score"] < 0.8
  bv = M.beta_vae_score(data, perfect, rng, num_train=300, num_eval=200)
  assert bv["beta_vae_score"] > 0.95
  noise_rep = lambda x: jax.random.normal(jax.random.fold_in(rng, x.shape[0]), (x.shape[0], 3))
  bv_bad = M.beta_vae_score(data, noise_rep, rng, num_train=300, num_eval=200)
  assert bv_bad["beta_vae_score"] < 0.6


def test_sample_codes_and_factors_and_bad_input():
  data = ToyFactors()
  codes, factors = M.sample_codes_and_factors(data, flat, 100, jax.random.key(0), batch_size=32)
  np.testing.assert_array_equal(codes, factors.astype(np.float32))
  with pytest.raises(ValueError, match="NaN"):
    M.sample_codes_and_factors(data, lambda x: flat(x) * jnp.nan, 10, jax.random.key(0))
  with pytest.raises(ValueError, match="same number of samples|shape \\(N, K\\)"):
    M.mig(np.zeros((5, 3)), np.zeros((4, 2), int))
  with pytest.raises(TypeError, match="integer"):
    M.mig(np.zeros((5, 3)), np.zeros((5, 2)))
  # sizes, keys and the encoder's output are checked before anything is encoded
  with pytest.raises(ValueError, match="num_points must be an integer >= 1"):
    M.sample_codes_and_factors(data, flat, 0, jax.random.key(0))
  with pytest.raises(TypeError, match="rng must be one JAX PRNG key"):
    M.sample_codes_and_factors(data, flat, 10, 0)
  with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
    M.factor_vae_score(data, flat, jax.random.key(0), batch_size=1)
  with pytest.raises(ValueError, match="num_variance_estimate must be an integer >= 2"):
    M.factor_vae_score(data, flat, jax.random.key(0), num_variance_estimate=1)
  with pytest.raises(ValueError, match="prune_threshold must be a finite number >= 0"):
    M.factor_vae_score(data, flat, jax.random.key(0), prune_threshold=float("nan"))
  with pytest.raises(ValueError, match="num_train must be an integer >= 1"):
    M.beta_vae_score(data, flat, jax.random.key(0), num_train=0)
  with pytest.raises(ValueError, match=r"\(B, D\) codes; got \(10,\)"):
    M.sample_codes_and_factors(data, lambda x: flat(x)[:, 0], 10, jax.random.key(0))
  class OneFactor(ToyFactors):
    factor_names, factor_sizes, observation_shape = ("a",), (4,), (1, 1, 1)
  with pytest.raises(ValueError, match="needs a dataset with >= 2 factors"):
    M.factor_vae_score(OneFactor(), flat, jax.random.key(0))
  # bfloat16 codes from the encoder are accepted (as float32)
  codes_bf, _ = M.sample_codes_and_factors(data, lambda x: flat(x).astype(jnp.bfloat16), 10,
                                           jax.random.key(0))
  assert codes_bf.dtype == np.float32


def test_explicitness_matches_sklearn_macro_auc_when_all_classes_present():
  from sklearn import linear_model, metrics, preprocessing
  factors = make_factors(1500, sizes=(3, 5))
  codes = perfect_codes(factors, noise=0.3)
  ours = M.explicitness(codes[:1000], factors[:1000], codes[1000:], factors[1000:])
  mean, std = codes[:1000].mean(0), codes[:1000].std(0)
  expected = []
  for k in range(2):
    clf = linear_model.LogisticRegression().fit((codes[:1000] - mean) / std, factors[:1000, k])
    labels = preprocessing.MultiLabelBinarizer().fit_transform(factors[1000:, k:k + 1])
    expected.append(metrics.roc_auc_score(labels, clf.predict_proba((codes[1000:] - mean) / std)))
  np.testing.assert_allclose(ours["explicitness"], np.mean(expected), rtol=1e-6)


def test_factor_vae_score_agrees_with_reference_loop():
  """Different random draws, so compare the mean over seeds of both (seed-to-seed std ~0.02)."""
  import reference_disentanglement as ref
  data = ToyFactors()
  mixing = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
  scale = np.array([3.0, 4.0, 5.0])
  represent_np = lambda f: (np.asarray(f, np.float64) / scale) @ mixing
  represent = lambda x: jnp.asarray(represent_np(flat(np.asarray(x))))
  sample = lambda n, rs: np.stack([rs.randint(0, s, n) for s in (4, 5, 6)], 1)
  sizes = dict(num_train=1500, num_eval=1500, num_variance_estimate=5000)
  ours = np.mean([M.factor_vae_score(data, represent, jax.random.key(s), **sizes)["factor_vae_score"]
                  for s in range(4)])
  theirs = np.mean([ref.factor_vae_score(sample, represent_np, 3, np.random.RandomState(s), **sizes)
                    for s in range(4)])
  assert 0.3 < theirs < 0.95  # a partially entangled representation: not a trivial answer
  assert abs(ours - theirs) < 0.04, (ours, theirs)


# ---- defects found against the reference implementations ----------------------------------------

from reference_disentanglement import histogram_discretize_dl, mig_dl, modularity_dl  # noqa: E402


def test_mutual_info_of_a_constant_is_exactly_zero_and_modularity_ignores_it():
  # n = 400, 7 codes, one exactly constant: the float32 MI used to come out ~1.2e-7 and
  # modularity then scored that code from rounding noise (0.869 vs the reference's 0.762).
  rng = np.random.default_rng(0)
  factors = make_factors(400, sizes=(3, 6, 10, 8))
  codes = np.concatenate([perfect_codes(factors, noise=0.3)[:, :6],
                          np.full((400, 1), 0.37, np.float32)], axis=1)
  mi = M.mutual_info_matrix(codes, factors)
  assert np.all(mi[6] == 0.0)
  np.testing.assert_allclose(M.modularity(codes, factors), modularity_dl(codes, factors), rtol=1e-6)
  assert M.discrete_mutual_info(np.zeros((50, 1), int), rng.integers(0, 4, (50, 1)))[0, 0] == 0.0
  # under jit, without x64, too
  const = jnp.zeros((64, 1), jnp.int32)
  other = jnp.asarray(rng.integers(0, 5, (64, 2)), jnp.int32)
  assert np.all(np.asarray(jax.jit(M.discrete_mutual_info_core, static_argnums=(2, 3))(
      const, other, 1, 5)) == 0.0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float64])
def test_integer_valued_codes_bin_exactly_as_np_histogram(dtype):
  # values 0..26 lie exactly on 20-bin edges (e.g. 13 = 10 * 26 / 20): float32 edge arithmetic
  # put them in another bin than np.histogram (MIG off by 0.01, MI entries by up to 0.13)
  rng = np.random.default_rng(1)
  factors = np.stack([rng.integers(0, 27, 2000), rng.integers(0, 5, 2000)], axis=1)
  codes = np.stack([factors[:, 0], rng.integers(0, 27, 2000), factors[:, 1] * 3 + 1,
                    rng.integers(0, 26, 2000), rng.integers(-7, 14, 2000)], axis=1).astype(dtype)
  np.testing.assert_array_equal(np.asarray(M.histogram_discretize(codes)) + 1,
                                histogram_discretize_dl(codes.T).T)
  np.testing.assert_allclose(M.mig(codes, factors), mig_dl(codes, factors), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(M.mutual_info_matrix(codes, factors), ref_mi_matrix(
      histogram_discretize_dl(codes.T).T, factors), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("x64", [False, True])
def test_integer_binning_matches_np_histogram_under_jit_with_and_without_x64(x64):
  """The jitted core, without x64 (integer arithmetic reproducing float64 edge rounding) and with
  x64 (float64 edges), against np.histogram on factors with 27/37/43/53 classes, shifted and
  negative ranges, constant columns and several bin counts. Same shapes, few compilations."""
  rng = np.random.default_rng(2)
  columns = []
  # 21, 26, 31, 41 classes: values on an edge that float32 edge arithmetic misplaced at 20 bins
  for classes in (27, 37, 43, 53, 21, 26, 31, 41, 2, 3, 7, 99, 256):
    for offset in (0, -classes // 2, 1000, -(2 ** 20)):
      columns.append(np.concatenate([np.arange(classes), rng.integers(0, classes, 256 - classes)])
                     + offset)
  columns.append(np.full(256, 5))
  columns.append(np.full(256, -(2 ** 23)))
  columns.append(rng.integers(-(2 ** 23), 2 ** 23, 256))
  x = np.stack(columns, axis=1)
  for num_bins in (20, 1, 7, 10, 64, 100):
    want = histogram_discretize_dl(x.T, num_bins).T - 1
    with jax.enable_x64(x64):
      got = np.asarray(jax.jit(M.histogram_discretize, static_argnums=1)(
          x.astype(np.int64 if x64 else np.int32), num_bins))
    np.testing.assert_array_equal(got, want, err_msg=f"num_bins={num_bins}")


def test_irs_factor_discretisation_matches_np_histogram_for_27_to_53_classes():
  rng = np.random.default_rng(3)
  factors = np.stack([rng.integers(0, s, 3000) for s in (27, 37, 43, 53)], axis=1)
  codes = (factors / factors.max(axis=0) + 0.05 * rng.normal(size=factors.shape)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(M.histogram_discretize(factors)) + 1,
                                histogram_discretize_dl(factors.T).T)
  np.testing.assert_allclose(M.irs(codes, factors)["irs"],
                             ref_irs(codes.astype(np.float64), factors), rtol=1e-9)


def test_float32_codes_bin_exactly_as_np_histogram():
  rng = np.random.default_rng(4)
  scale = np.array([1, 0.1, 0.37, 1e-3, 7.3, 1e4], np.float32)
  codes = (rng.integers(-30, 30, (500, 6)) * scale).astype(np.float32)
  codes[:, 5] += rng.normal(size=500).astype(np.float32)
  for num_bins in (20, 3, 64):
    np.testing.assert_array_equal(np.asarray(M.histogram_discretize(codes, num_bins)) + 1,
                                  histogram_discretize_dl(codes.T, num_bins).T)


# ---- bad input: a ValueError naming the problem --------------------------------------------------

def test_bad_inputs_are_clear_errors():
  factors = make_factors(300)
  codes = perfect_codes(factors)
  for bins in (0, -3, 2.5, True):
    with pytest.raises(ValueError, match="num_bins must be an integer"):
      M.mig(codes, factors, num_bins=bins)
  with pytest.raises(ValueError, match="num_bins"):
    M.modularity(codes, factors, num_bins=0)
  nan_codes = codes.copy()
  nan_codes[3, 1] = np.nan
  for fn in (M.mig, M.modularity, M.irs, M.mutual_info_matrix):
    with pytest.raises(ValueError, match="NaN"):
      fn(nan_codes, factors)
  with pytest.raises(ValueError, match="NaN"):
    M.gaussian_total_correlation(nan_codes)
  with pytest.raises(ValueError, match="at least 1 sample"):
    M.mig(codes[:0], factors[:0])
  with pytest.raises(ValueError, match="at least 1 sample"):
    M.irs(codes[:0], factors[:0])
  with pytest.raises(ValueError, match="every column of factors is constant"):
    M.mig(codes, np.zeros_like(factors))
  with pytest.raises(ValueError, match="constant"):
    M.gaussian_total_correlation(np.concatenate([codes, np.ones((300, 1))], axis=1))
  with pytest.raises(ValueError, match="same number of samples"):
    M.irs(codes, factors[:10])
  with pytest.raises(TypeError, match="integer class labels"):
    M.mig(codes, factors.astype(np.float32))
  with pytest.raises(ValueError, match="diff_quantile"):
    M.irs(codes, factors, diff_quantile=99)


def test_defined_values_on_constant_inputs():
  factors = make_factors(300)
  constant = np.full((300, 4), 2.0, np.float32)
  assert M.mig(constant, factors) == 0.0                  # no code carries information
  assert M.modularity(constant, factors) == 0.0           # reference: 0 for codes without MI
  assert M.irs(constant, factors) == {"irs": 0.0, "irs_num_active_dims": 0}   # as the reference
  assert M.mutual_info_between_codes(constant) == 0.0


def test_code_table_gives_the_same_scores_as_encoding_every_draw():
  """Encoding each grid image once and looking draws up is the same computation per image: with an
  element-wise representation of correctly rounded operations (no batch-dependent rounding) every
  score is bitwise equal."""
  data = ToyFactors()
  rng = jax.random.key(3)
  scale = jnp.array([3.0, 4.0, 5.0])
  represent = lambda x: flat(x) / scale + flat(x)[:, ::-1] / (1.0 + flat(x) * flat(x))
  table = M.CodeTable(data, represent)
  assert table.codes.shape == (data.num_combinations, 3)
  assert M.CodeTable.worth_it(data, data.num_combinations + 1)
  assert not M.CodeTable.worth_it(data, data.num_combinations)
  for fn, kwargs in ((M.factor_vae_score, {"num_variance_estimate": 500}),
                     (M.beta_vae_score, {})):
    direct = fn(data, represent, rng, num_train=200, num_eval=100, **kwargs)
    looked_up = fn(data, table, rng, num_train=200, num_eval=100, **kwargs)
    assert direct == looked_up, fn.__name__
  codes, factors = M.sample_codes_and_factors(data, represent, 300, rng)
  codes_t, factors_t = M.sample_codes_and_factors(data, table, 300, rng)
  np.testing.assert_array_equal(factors, factors_t)
  np.testing.assert_array_equal(codes, codes_t)
  # called on images it is the wrapped function; built for one dataset only
  images = data.images_from_factors(factors[:4])
  np.testing.assert_array_equal(table(images), represent(images))
  with pytest.raises(ValueError, match="another dataset"):
    M.sample_codes_and_factors(ToyFactors(), table, 10, rng)
