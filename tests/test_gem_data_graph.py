"""GEM parts 1-3 and 5: graph sources, simulated oracle, scores files, relation discovery, measures."""

import numpy as np
import pytest

from jaxdisent.data.correlated_dsprites import CorrelatedDSprites, parse_edges
from jaxdisent.data.pendulum import Pendulum, geometry
from jaxdisent.oracles import (directed_relations, greedy_assignment, hungarian_assignment,
                              pairwise_correlation, rank_relations, relations_from_correlation)
from jaxdisent.metrics.graph import auroc, average_precision, graph_recovery
from jaxdisent.oracles.base import Scores, load_scores
from jaxdisent.oracles.simulated import SimulatedOracle


def test_correlated_dsprites_marginals_uniform_and_dependencies_follow_edges():
  data = CorrelatedDSprites(pool_size=50_000)
  factors = np.asarray(data.pool_factors(np.arange(20_000)))
  for k, size in enumerate((3, 6, 40, 32, 32)):
    counts = np.bincount(factors[:, k], minlength=size)
    expected = len(factors) / size
    # uniform marginal: every class within 5 binomial standard deviations of its expectation
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), k
  corr = np.corrcoef(factors.T)
  assert corr[0, 1] > 0.3 and corr[1, 4] > 0.3 and corr[2, 3] > 0.3  # edges
  assert abs(corr[0, 3]) < 0.05 and abs(corr[1, 2]) < 0.05             # independent pairs
  images = np.asarray(data.pool_images(np.arange(4)))
  assert images.shape == (4, 64, 64, 1) and set(np.unique(images)) <= {0.0, 1.0}
  # the pool is a pure function of (data seed, index)
  np.testing.assert_array_equal(np.asarray(data.pool_factors(np.array([7, 3]))), factors[[7, 3]])
  w = data.true_adjacency()
  assert w[0, 1] == 0.8 and w[3, 2] == 0.6 and w[2, 3] == 0.3 and w[1, 0] == 0


def test_correlated_dsprites_bad_edges():
  names = ["shape", "scale", "orientation", "posX", "posY"]
  with pytest.raises(ValueError, match=r"unknown factor name\(s\) \['size'\]"):
    parse_edges("shape->size:0.5", names)
  with pytest.raises(ValueError, match="malformed edge"):
    parse_edges("shape-scale", names)
  with pytest.raises(ValueError, match="unstable"):
    CorrelatedDSprites(edges="posX->posY:1.0,posY->posX:1.2")


def test_pendulum_grid_geometry_and_graph():
  data = Pendulum()
  assert data.pool_size == 84 * 87 == 7308
  values = np.asarray(data.pool_values(np.arange(data.pool_size)))
  assert values.min() == 0.0 and values.max() == 1.0
  # angle and light are a full grid: independent; shadow quantities are functions of both
  assert abs(np.corrcoef(values[:, 0], values[:, 1])[0, 1]) < 1e-6
  length, position = (np.asarray(v) for v in geometry(np.array([0.0]), np.array([np.pi / 2])))
  assert abs(position[0] - 10.0) < 1e-4  # pendulum hanging straight down, light straight above
  # ball (width 3) and pivot project from a light 19.5 above ground: the ball's shadow is widest
  assert 3.0 < length[0] < 5.0
  images = np.asarray(data.pool_images(np.array([0, 7307])))
  assert images.shape == (2, 64, 64, 3) and 0 <= images.min() and images.max() <= 1
  assert data.true_adjacency().sum() == 4


def test_simulated_oracle_accuracy_quantisation_and_missing():
  data = CorrelatedDSprites(pool_size=5000)
  perfect = SimulatedOracle(data, accuracy=1.0, noise_std=0.0).score_indices(np.arange(2000))
  truth = np.asarray(data.pool_values(np.arange(2000)))
  np.testing.assert_allclose(perfect.scores, np.round(truth * 10), atol=1e-5)
  noisy = SimulatedOracle(data, accuracy=0.6, noise_std=0.0, missing_rate=0.2).score_indices(
      np.arange(2000))
  rate = noisy.valid.mean()
  assert abs(rate - 0.8) < 5 * np.sqrt(0.16 / noisy.valid.size)
  answered = noisy.scores[noisy.valid]
  assert set(np.unique(answered)) <= set(range(11))
  correct = np.mean(noisy.scores[noisy.valid] == np.round(truth * 10)[noisy.valid])
  # correct = informed (0.6) + uninformed answers that hit the right level by chance (0.4 / 11)
  expected = 0.6 + 0.4 / 11
  assert abs(correct - expected) < 5 * np.sqrt(expected * (1 - expected) / noisy.valid.sum())
  with pytest.raises(ValueError, match="accuracy"):
    SimulatedOracle(data, accuracy=1.5)
  with pytest.raises(ValueError, match="pool index out of range"):
    SimulatedOracle(data).score_indices(np.array([5000]))
  # a second oracle with the same settings reuses the compiled program and answers the same
  from jaxdisent.oracles import simulated  # pylint: disable=g-import-not-at-top
  programs = simulated._simulated_scores_jit._cache_size()  # pylint: disable=protected-access
  again = SimulatedOracle(data, accuracy=0.6, noise_std=0.0, missing_rate=0.2).score_indices(
      np.arange(2000))
  assert simulated._simulated_scores_jit._cache_size() == programs  # pylint: disable=protected-access
  np.testing.assert_array_equal(again.scores, noisy.scores)


@pytest.mark.slow
def test_relations_recover_chain_and_collider():
  rng = np.random.default_rng(0)
  n = 20_000
  # chain a -> b -> c plus collider d -> e <- f
  a = rng.normal(size=n)
  b = 0.8 * a + rng.normal(size=n)
  c = 0.8 * b + rng.normal(size=n)
  d, f = rng.normal(size=n), rng.normal(size=n)
  e = d + f + 0.5 * rng.normal(size=n)
  w = directed_relations(np.stack([a, b, c, d, e, f], 1))
  assert w[0, 2] < 0.05 and w[2, 0] < 0.05        # indirect chain link removed
  assert w[3, 5] < 0.05                            # independent causes of a collider
  assert w[3, 4] > w[4, 3] and w[5, 4] > w[4, 5]   # collider edges oriented into e
  assert w[0, 1] > 0.2 and w[1, 2] > 0.2
  import jax.numpy as jnp
  corr = pairwise_correlation(np.stack([a, b, c, d, e, f], 1), None)
  np.testing.assert_allclose(np.asarray(relations_from_correlation(jnp.asarray(corr), xp=jnp)),
                             relations_from_correlation(corr), atol=1e-4)
  ranked = rank_relations(w, list("abcdef"))
  assert len(ranked) == 30 and ranked[0][2] >= ranked[-1][2]


def test_relations_bad_scores():
  scores = np.random.default_rng(0).normal(size=(50, 3))
  with pytest.raises(ValueError, match="constant"):
    directed_relations(np.concatenate([scores, np.ones((50, 1))], 1))
  valid = np.ones_like(scores, bool)
  bad = scores.copy()
  bad[3, 1] = np.nan
  with pytest.raises(ValueError, match="NaN/inf in entries marked valid"):
    directed_relations(bad, valid)
  valid[:45, 2] = False
  with pytest.raises(ValueError, match="fewer than"):
    directed_relations(scores, valid, names=["x", "y", "z"])


def test_scores_file_roundtrip_and_mismatches(tmp_path):
  data = CorrelatedDSprites(pool_size=1000)
  scores = SimulatedOracle(data, missing_rate=0.1).score_indices(np.arange(100))
  scores.meta.update(dataset=data.name, dataset_fingerprint=data.fingerprint())
  path = scores.save(str(tmp_path / "s.npz"))
  back = load_scores(path, attributes=data.attribute_names, fingerprint=data.fingerprint(),
                     pool_size=data.pool_size)
  np.testing.assert_array_equal(back.valid, scores.valid)
  np.testing.assert_array_equal(back.scores[back.valid], scores.scores[scores.valid])
  other = CorrelatedDSprites(pool_size=1000, edges="shape->scale:0.5")
  with pytest.raises(ValueError, match="fingerprint"):
    load_scores(path, fingerprint=other.fingerprint())
  with pytest.raises(ValueError, match="expects"):
    load_scores(path, attributes=("shape", "scale"))
  with pytest.raises(FileNotFoundError, match="launch.oracle"):
    load_scores(str(tmp_path / "missing.npz"))
  with pytest.raises(ValueError, match="NaN/inf"):
    Scores(np.full((2, 1), np.nan), np.ones((2, 1), bool), ("a",))


def test_graph_measures_known_answers():
  truth = np.zeros((3, 3))
  truth[0, 1] = 1.0
  truth[1, 2] = 0.5
  perfect = graph_recovery(truth, truth)
  assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0 and perfect["shd"] == 0
  assert perfect["tpr"] == 1.0 and perfect["fdr"] == 0.0 and perfect["direction_accuracy"] == 1.0
  reversed_ = graph_recovery(truth.T, truth)
  assert reversed_["shd"] == 2 and reversed_["direction_accuracy"] == 0.0 and reversed_["tpr"] == 0
  assert auroc([1, 1], [True, False]) == 0.5                      # a tie counts 1/2
  assert average_precision([0.9, 0.8, 0.1], [False, True, True]) == pytest.approx((0.5 + 2 / 3) / 2)
  with pytest.raises(ValueError, match="NaN"):
    graph_recovery(np.full((3, 3), np.nan), truth)
  with pytest.raises(ValueError, match="square"):
    graph_recovery(np.zeros((3, 2)), truth)


def test_matching():
  sim = np.array([[0.1, 0.9], [0.8, 0.85], [0.2, 0.1]])
  np.testing.assert_array_equal(hungarian_assignment(sim), [1, 0])
  np.testing.assert_array_equal(np.asarray(greedy_assignment(sim)), [1, 0])
  with pytest.raises(ValueError, match="latent_dim"):
    hungarian_assignment(sim.T)


def test_tfds_attribute_reader_with_mock_data(tempdir_in_tmp_path):
  tmp_path = tempdir_in_tmp_path   # mock_data's metadata folders land here (conftest.py)
  import tensorflow_datasets as tfds
  from jaxdisent.data.attributes import TFDSAttributeSource
  from jaxdisent.oracles import oracle_scores
  import ml_collections
  with tfds.testing.mock_data(num_examples=10):
    data = TFDSAttributeSource("celeb_a")
    assert len(data.attribute_names) == 40 and "Young" in data.attribute_names
    assert data.pool_size == 10 and data.true_adjacency() is None
    values = np.asarray(data.pool_values(np.arange(10)))
    assert set(np.unique(values)) <= {0.0, 1.0}
    images = np.asarray(data.pool_images(np.array([0, 9])))
    assert images.shape == (2, 64, 64, 3) and 0 <= images.min() and images.max() <= 1
    config = ml_collections.ConfigDict({"kind": "labels", "attributes": "Young,Male,Smiling"})
    scores = oracle_scores(data, config, np.arange(10))
    np.testing.assert_array_equal(scores.scores, 10 * values[:, [data.attribute_names.index(a)
                                                                  for a in ("Young", "Male",
                                                                            "Smiling")]])
    config.attributes = "Young,Hat"
    with pytest.raises(ValueError, match=r"unknown attribute name\(s\) \['Hat'\]"):
      oracle_scores(data, config, np.arange(10))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    TFDSAttributeSource("celeb_a", data_dir=str(tmp_path / "nope"))
  with pytest.raises(FileNotFoundError, match="never downloads"):
    TFDSAttributeSource("celeb_a", data_dir=str(tmp_path))


def test_quadratic_basis_sees_u_shaped_relations():
  rng = np.random.default_rng(1)
  x = rng.normal(size=5000)
  y = x ** 2 + 0.3 * rng.normal(size=5000)   # non-monotone: linear correlation ~ 0
  w_ = rng.normal(size=5000)                 # unrelated
  scores = np.stack([x, y, w_], 1)
  linear = directed_relations(scores, basis="linear")
  quadratic = directed_relations(scores, basis="quadratic")
  assert linear[0, 1] < 0.05 and quadratic[0, 1] > 0.3
  assert quadratic[0, 2] < 0.05 and quadratic[1, 2] < 0.05
  with pytest.raises(ValueError, match="unknown relation basis"):
    directed_relations(scores, basis="cubic")


def test_oracle_accuracy_sweep_plot(tmp_path):
  from jaxdisent.viz.graph_plots import save_oracle_accuracy_sweep
  sweep = {str(a): {"auroc": (0.5 + a / 2, 0.01), "auprc": (a, 0.02),
                    "direction_accuracy": (a, 0.0)} for a in (0.5, 0.75, 1.0)}
  path = save_oracle_accuracy_sweep(sweep, str(tmp_path / "sweep.png"), title="dsprites")
  assert (tmp_path / "sweep.png").stat().st_size > 5000 and path.endswith("sweep.png")
