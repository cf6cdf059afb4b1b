import numpy as np
import pytest
from scipy.stats import ortho_group

from jaxdisent.metrics import alignment as A

import reference_alignment as ref


def features(n=300, d=16, seed=0):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(n, d)).astype(np.float32)


def related(x, noise, seed=1, out_dim=12):
  rng = np.random.default_rng(seed)
  y = np.tanh(x @ rng.normal(size=(x.shape[1], out_dim)) / np.sqrt(x.shape[1]))
  return (y + noise * rng.normal(size=y.shape)).astype(np.float32)


def test_identical_inputs_give_one():
  x = features()
  assert A.mutual_knn(x, x, k=10) == 1.0
  # cycle k-NN is not 1 on identical inputs: k-NN is not symmetric (i need not be a neighbour
  # of its neighbours), so it is checked against the reference instead
  for kernel in ("linear", "rbf"):
    for unbiased in (False, True):
      assert A.cka(x, x, kernel=kernel, unbiased=unbiased) == pytest.approx(1.0, abs=1e-5)
  assert A.cknna(x, x, k=10) == pytest.approx(1.0, abs=1e-4)
  assert A.svcca(x, x) == pytest.approx(1.0, abs=1e-4)


def test_invariances():
  x = features()
  rotation = ortho_group.rvs(16, random_state=0).astype(np.float32)
  rotated = 3.0 * x @ rotation  # isotropic scaling + rotation
  assert A.mutual_knn(x, rotated, k=10) == 1.0
  assert A.cka(x, rotated) == pytest.approx(1.0, abs=1e-5)
  assert A.unbiased_cka(x, rotated) == pytest.approx(1.0, abs=1e-5)
  assert A.cka(x, rotated, kernel="rbf") == pytest.approx(1.0, abs=1e-5)
  assert A.cknna(x, rotated, k=10) == pytest.approx(1.0, abs=1e-4)
  # SVCCA standardises each dimension, so it is invariant to per-dimension scaling instead
  assert A.svcca(x, x * np.arange(1, 17, dtype=np.float32)) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_independent_inputs_give_near_zero():
  x, y = features(2000, seed=0), features(2000, seed=1)
  assert A.mutual_knn(x, y, k=10) < 0.02
  assert abs(A.unbiased_cka(x, y)) < 0.01
  assert abs(A.unbiased_cka(x, y, kernel="rbf")) < 0.01
  assert A.cka(x, y) < 0.02           # the biased estimator is positively biased: ~d/n
  assert abs(A.cknna(x, y, k=10)) < 0.05


@pytest.mark.parametrize("noise", [0.1, 1.0])
@pytest.mark.slow
def test_agreement_with_dense_reference(noise):
  x = features(200)
  y = related(x, noise)
  assert A.mutual_knn(x, y, k=10, block_size=64) == pytest.approx(ref.mutual_knn(x, y, 10), abs=1e-6)
  assert A.cycle_knn(x, y, k=10, block_size=64) == pytest.approx(ref.cycle_knn(x, y, 10), abs=1e-6)
  for kernel in ("linear", "rbf"):
    for unbiased in (False, True):
      ours = A.cka(x, y, kernel=kernel, unbiased=unbiased, block_size=64)
      assert ours == pytest.approx(ref.cka(x.astype(np.float64), y.astype(np.float64), kernel,
                                           unbiased), rel=2e-4, abs=1e-5), (kernel, unbiased)
  assert A.cknna(x, y, k=10, block_size=64) == pytest.approx(
      ref.cknna(x.astype(np.float64), y.astype(np.float64), 10), rel=1e-3, abs=1e-5)
  assert A.svcca(x, y) == pytest.approx(ref.svcca_exact(x.astype(np.float64), y.astype(np.float64)),
                                        abs=1e-4)


def test_more_noise_less_alignment():
  x = features(500)
  scores = {name: [] for name in ("mknn", "cka", "ucka", "cknna", "svcca")}
  for noise in (0.05, 0.5, 2.0):
    y = related(x, noise)
    scores["mknn"].append(A.mutual_knn(x, y, k=10))
    scores["cka"].append(A.cka(x, y))
    scores["ucka"].append(A.unbiased_cka(x, y))
    scores["cknna"].append(A.cknna(x, y, k=10))
    scores["svcca"].append(A.svcca(x, y))
  for name, values in scores.items():
    assert values[0] > values[1] > values[2], (name, values)


def test_max_over_layer_pairs_and_errors():
  x = features(200)
  layers_a = [features(200, seed=5), x]
  layers_b = [x @ ortho_group.rvs(16, random_state=1).astype(np.float32), features(200, seed=6)]
  best, where, matrix = A.max_over_layer_pairs(layers_a, layers_b)
  assert where == (1, 0) and best == pytest.approx(1.0, abs=1e-5) and matrix.shape == (2, 2)
  with pytest.raises(ValueError, match="same N samples"):
    A.cka(x, x[:10])
  with pytest.raises(ValueError, match="k must be"):
    A.mutual_knn(x, x, k=200)
  with pytest.raises(ValueError, match="NaN"):
    A.cka(x * np.nan, x)


def test_unbiased_cka_beyond_int32_sample_counts():
  # n (n - 3) > 2^31 from n ~ 46k: the normalisation must not overflow (it did at n = 100k)
  rng = np.random.default_rng(0)
  a = rng.normal(size=(50_000, 4)).astype(np.float32)
  b = a + rng.normal(size=a.shape).astype(np.float32)
  value = float(A.unbiased_cka(a, b))
  assert np.isfinite(value) and abs(value - float(A.cka(a, b))) < 0.01
  assert abs(value - 0.5) < 0.02   # E[CKA] for b = a + equal-variance isotropic noise


def test_bad_inputs_and_undefined_values_are_clear_errors():
  x = features(200)
  y = related(x, 0.5)
  for dim in (-1, 0, 17, 2.0):
    with pytest.raises(ValueError, match="cca_dim"):
      A.svcca(x, y, cca_dim=dim)
  with pytest.raises(ValueError, match="k must be"):
    A.mutual_knn(x, y, k=0)
  with pytest.raises(ValueError, match="k >= 2|k must be"):
    A.cknna(x, y, k=1)
  with pytest.raises(ValueError, match="at least 2 sample"):
    A.mutual_knn(x[:0], y[:0])
  constant = np.ones_like(x)
  for fn in (A.cka, A.unbiased_cka, A.svcca):
    with pytest.raises(ValueError, match="constant"):
      fn(constant, y)
  with pytest.raises(ValueError, match="sigma must be"):
    A.cka(x, y, kernel="rbf", sigma=0.0)


def test_unbiased_rbf_cka_with_a_tiny_sigma_is_an_error_not_nan():
  # sigma = 0.01: exp(-d^2 / (2 sigma^2 median)) underflows to 0 off the diagonal, the unbiased
  # estimator zeroes the diagonal, and the reference returns NaN/inf; we say why.
  x = features(200)
  y = related(x, 0.5)
  with pytest.raises(ValueError, match="larger sigma"):
    A.unbiased_cka(x, y, kernel="rbf", sigma=0.01)
  assert np.isnan(float(A.unbiased_cka_core(x, y, kernel="rbf", sigma=0.01)))   # core: NaN
  value = A.unbiased_cka(x, y, kernel="rbf", sigma=0.5)    # a usable small bandwidth stays finite
  assert np.isfinite(value) and 0 < value <= 1


def test_sequence_dp_known_answers():
  """LCS and Levenshtein of hand-worked neighbour lists."""
  import jax.numpy as jnp
  knn_a = jnp.array([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
  knn_b = jnp.array([[1, 2, 3, 4],      # identical: LCS 4, distance 0
                     [4, 3, 2, 1],      # reversed: LCS 1, distance 4 (two swaps of 2 subs each)
                     [2, 3, 4, 9],      # shifted by one: LCS 3, distance 2 (delete 1, insert 9)
                     [5, 6, 7, 8]])     # disjoint: LCS 0, distance 4
  assert A._sequence_dp(knn_a, knn_b, "lcs").tolist() == [4, 1, 3, 0]
  assert A._sequence_dp(knn_a, knn_b, "edit").tolist() == [0, 4, 2, 4]
  rng = np.random.default_rng(3)
  xs, ys = rng.integers(0, 6, (50, 7)), rng.integers(0, 6, (50, 7))
  assert A._sequence_dp(jnp.asarray(xs), jnp.asarray(ys), "lcs").tolist() == [
      ref.lcs_length(x, y) for x, y in zip(xs, ys)]
  assert A._sequence_dp(jnp.asarray(xs), jnp.asarray(ys), "edit").tolist() == [
      ref.levenshtein(x, y) for x, y in zip(xs, ys)]


@pytest.mark.parametrize("noise", [0.1, 1.0])
def test_lcs_and_edit_knn_match_the_numpy_transcription(noise):
  x = features(120)
  y = related(x, noise)
  assert A.lcs_knn(x, y, k=6, block_size=32) == pytest.approx(ref.lcs_knn(x, y, 6), abs=1e-6)
  assert A.edit_knn(x, y, k=6, block_size=32) == pytest.approx(ref.edit_knn(x, y, 6), abs=1e-6)
  # identical inputs: every neighbour list equal -> LCS = k, edit score 1
  assert A.lcs_knn(x, x, k=6) == 6.0 and A.edit_knn(x, x, k=6) == 1.0


@pytest.mark.slow
def test_cka_is_finite_and_scale_invariant_from_1e_minus_8_to_1e8():
  """The HSIC products overflowed / underflowed float32 (features * 1e-6 gave inf)."""
  x = features(200)
  y = related(x, 0.5)
  for kernel in ("linear", "rbf"):
    for unbiased in (False, True):
      base = A.cka(x, y, kernel=kernel, unbiased=unbiased)
      for scale in (1e-8, 1e-6, 1e-3, 1e3, 1e6, 1e8):
        for a, b in ((x * np.float32(scale), y), (x * np.float32(scale), y * np.float32(scale))):
          value = A.cka(a.astype(np.float32), b.astype(np.float32), kernel=kernel,
                        unbiased=unbiased)
          assert np.isfinite(value) and value == pytest.approx(base, rel=1e-4), (
              kernel, unbiased, scale)
        core = float(A.cka_core(x * np.float32(scale), y, kernel, unbiased))
        assert core == pytest.approx(base, rel=1e-4)
  # float64 input beyond float32's range is rescaled before the cast
  assert A.cka(x.astype(np.float64) * 1e30, y) == pytest.approx(A.cka(x, y), rel=1e-5)
  # CKNNA keeps the reference's absolute 1e-6 in its denominator, so it is not scale-invariant
  # (the papers L2-normalise first); it must stay finite and equal the reference formula
  for scale in (1e-8, 1e8):
    xs = (x * scale).astype(np.float64)
    assert A.cknna(xs.astype(np.float32), y, k=10) == pytest.approx(
        ref.cknna(xs, y.astype(np.float64), 10), rel=1e-3, abs=1e-6)


def test_knn_metrics_and_svcca_survive_extreme_feature_scales():
  """Inner products of features ~1e20 overflow float32 and of ~1e-20 underflow (every similarity
  0: the neighbours became ties); such features are rescaled, ordinary ones are not touched."""
  x = features(200)
  y = related(x, 0.5)
  fns = {"mutual_knn": lambda a, b: A.mutual_knn(a, b, k=5),
         "cycle_knn": lambda a, b: A.cycle_knn(a, b, k=5),
         "lcs_knn": lambda a, b: A.lcs_knn(a, b, k=5),
         "edit_knn": lambda a, b: A.edit_knn(a, b, k=5), "svcca": A.svcca}
  for name, fn in fns.items():
    base = fn(x, y)
    for scale in (1e-30, 1e-20, 1e20, 1e30):
      assert fn(x * np.float32(scale), y) == pytest.approx(base, rel=1e-5), (name, scale)


def test_bfloat16_inputs_are_accepted():
  import jax.numpy as jnp
  import ml_dtypes
  x = features(200)
  y = related(x, 0.5)
  x16 = x.astype(ml_dtypes.bfloat16)
  widened = x16.astype(np.float32)
  for fn in (A.cka, A.unbiased_cka, lambda a, b: A.cka(a, b, kernel="rbf"),
             lambda a, b: A.mutual_knn(a, b, k=5), lambda a, b: A.cknna(a, b, k=5), A.svcca,
             lambda a, b: A.lcs_knn(a, b, k=5), lambda a, b: A.edit_knn(a, b, k=5)):
    assert fn(x16, y) == fn(widened, y)
    assert fn(jnp.asarray(x, jnp.bfloat16), y) == fn(widened, y)


def test_knn_metrics_refuse_all_identical_rows():
  x = features(50)
  same = np.ones_like(x)
  for fn in (A.mutual_knn, A.cycle_knn, A.lcs_knn, A.edit_knn, A.cknna):
    with pytest.raises(ValueError, match="feats_b has every row identical"):
      fn(x, same, k=5)
    with pytest.raises(ValueError, match="k must be"):
      fn(x, x, k=50)          # k >= N
    with pytest.raises(ValueError, match="same N samples"):
      fn(x, x[:10], k=5)
    with pytest.raises(ValueError, match="NaN"):
      fn(x, np.where(x > 2, np.nan, x), k=5)


def test_max_over_layer_pairs_with_an_all_nan_metric_is_a_clear_error():
  x = features(50)
  with pytest.raises(ValueError, match="NaN for every one of the 4 layer pairs"):
    A.max_over_layer_pairs([x, x], [x, x], metric=lambda a, b: float("nan"))
  # a NaN pair among finite ones is skipped by the arg-max
  values = iter([np.nan, 0.2, 0.7, 0.1])
  best, where, _ = A.max_over_layer_pairs([x, x], [x, x], metric=lambda a, b: next(values))
  assert (best, where) == (0.7, (1, 0))


def test_rbf_cka_with_a_small_bandwidth_is_finite():
  """Unbiased RBF CKA with sigma = 0.1 was inf (the reference: 0.3885 on its inputs): the product
  HSIC(K, K) HSIC(L, L) underflowed while each factor is a normal float32."""
  x = features(200)
  y = related(x, 0.5)
  for unbiased in (False, True):
    value = A.cka(x, y, kernel="rbf", sigma=0.1, unbiased=unbiased)
    assert np.isfinite(value) and -1 <= value <= 1
  # the ratio itself: HSIC terms ~1e-30 (their product, 1e-60, is 0 in float32) and ~1e30
  import jax.numpy as jnp
  for h in (1e-30, 1e30):
    terms = [jnp.float32(h * 0.5), jnp.float32(h), jnp.float32(h)]
    assert float(A._cka_ratio(*terms)) == pytest.approx(0.5, rel=1e-6)
    old = float(terms[0] / jnp.sqrt(terms[1] * terms[2]))   # the old formula: inf, or 0
    assert old in (0.0, float("inf"))
