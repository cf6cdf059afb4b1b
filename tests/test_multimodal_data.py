import jax
import numpy as np
import pytest

from jaxdisent.data.multimodal import bayes_accuracy, make_bimodal


def test_layout_and_balance():
  data = make_bimodal(jax.random.key(0), 20_000, num_unique=3)
  x1, x2, y = map(np.asarray, (data["x1"], data["x2"], data["y"]))
  assert x1.shape == x2.shape == (20_000, 12) and y.shape == (20_000,)
  assert set(np.unique(x1)) == {-1.0, 1.0}
  np.testing.assert_array_equal(x1[:, :8], x2[:, :8])          # shared bits, no heterogeneity
  counts = np.bincount(y, minlength=4) / len(y)
  np.testing.assert_allclose(counts, 0.25, atol=0.02)           # rebalanced to uniform p(y)
  assert bayes_accuracy(data["label_bits"], data["label_weights"], data["label_bias"]) > 0.9


def test_label_bits_follow_uniqueness():
  data = make_bimodal(jax.random.key(1), 500, num_unique=5)
  bits = np.asarray(data["label_bits"])
  shared, u1, u2 = (np.asarray(data[k]) for k in ("shared", "unique1", "unique2"))
  np.testing.assert_array_equal(bits[:, :3], shared[:, :3])    # 8 - 5 redundant bits
  expected = np.stack([u1[:, 0], u2[:, 0], u1[:, 1], u2[:, 1], u1[:, 2]], axis=1)
  np.testing.assert_array_equal(bits[:, 3:], expected)          # alternating unique bits
  zero = make_bimodal(jax.random.key(1), 500, num_unique=0)
  np.testing.assert_array_equal(np.asarray(zero["label_bits"]), np.asarray(zero["shared"]))


def test_uniqueness_hides_label_information_from_one_modality():
  """With U = 8 each modality sees only half the label bits; with U = 0 it sees all of them."""
  def best_single_modality_accuracy(num_unique):
    data = make_bimodal(jax.random.key(2), 40_000, num_unique=num_unique)
    x1, y = np.asarray(data["x1"]), np.asarray(data["y"])
    keys = [tuple(row) for row in x1.astype(int)]
    table = {}
    for key, label in zip(keys, y):
      table.setdefault(key, np.zeros(4))[label] += 1
    return sum(v.max() for v in table.values()) / len(y)
  assert best_single_modality_accuracy(0) > 0.9
  assert best_single_modality_accuracy(8) < best_single_modality_accuracy(0) - 0.15


def test_synergy_bits_are_invisible_to_each_modality_alone():
  data = make_bimodal(jax.random.key(3), 50_000, num_unique=4, synergy=True)
  bits, u1, u2 = (np.asarray(data[k]) for k in ("label_bits", "unique1", "unique2"))
  np.testing.assert_array_equal(bits[:, 4:], u1 * u2)
  for j in range(4):
    assert abs(np.corrcoef(bits[:, 4 + j], u1[:, j])[0, 1]) < 0.02
    assert abs(np.corrcoef(bits[:, 4 + j], u2[:, j])[0, 1]) < 0.02
  with pytest.raises(ValueError, match="num_unique <= 4"):
    make_bimodal(jax.random.key(3), 10, num_unique=5, synergy=True)


def test_heterogeneity_is_a_fixed_map_shared_by_train_and_eval():
  task = jax.random.key(7)
  train = make_bimodal(jax.random.key(10), 2000, num_unique=2, heterogeneity_depth=3, task_key=task)
  evals = make_bimodal(jax.random.key(11), 2000, num_unique=2, heterogeneity_depth=3, task_key=task)
  x2 = np.asarray(train["x2"])
  assert not np.allclose(x2[:, :8], np.asarray(train["shared"]))
  assert np.abs(x2).max() < 1.0                                 # tanh output
  # identical observed bits map to identical features across the two sets
  raw_t = np.concatenate([train["shared"], train["unique2"]], axis=1)
  raw_e = np.concatenate([evals["shared"], evals["unique2"]], axis=1)
  index_e = {tuple(r): i for i, r in enumerate(raw_e.astype(int))}
  matches = [(i, index_e[tuple(r)]) for i, r in enumerate(raw_t.astype(int)) if tuple(r) in index_e]
  assert len(matches) > 100
  for i, j in matches[:50]:
    np.testing.assert_allclose(x2[i], np.asarray(evals["x2"])[j], atol=1e-6)
  np.testing.assert_array_equal(train["label_weights"], evals["label_weights"])
