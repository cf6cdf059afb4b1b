import math

import jax
import numpy as np
import pytest

from jaxdisent.data import DSprites
from jaxdisent.data.dsprites import render

DATA = DSprites()


def centroid(image):
  rows, cols = np.nonzero(image[..., 0] if image.ndim == 3 else image)
  return np.array([cols.mean(), rows.mean()])


def test_grid_matches_dsprites():
  assert DATA.factor_sizes == (3, 6, 40, 32, 32)
  assert DATA.num_combinations == 737_280
  values = DATA.factor_values()
  np.testing.assert_allclose(values[1], np.linspace(0.5, 1.0, 6), rtol=1e-6)
  np.testing.assert_allclose(values[2], np.linspace(0, 2 * math.pi, 40), rtol=1e-6)
  assert values[2][0] == 0 and math.isclose(values[2][-1], 2 * math.pi, rel_tol=1e-6)
  np.testing.assert_allclose(values[3], np.linspace(0, 1, 32), rtol=1e-6)


def test_index_roundtrip_and_posy_fastest():
  index = np.array([0, 1, 31, 32, 737_279, 123_456])
  factors = DATA.index_to_factors(index)
  np.testing.assert_array_equal(DATA.factors_to_index(factors), index)
  np.testing.assert_array_equal(factors[1], [0, 0, 0, 0, 1])   # posY varies fastest
  np.testing.assert_array_equal(factors[3], [0, 0, 0, 1, 0])
  np.testing.assert_array_equal(factors[4], [2, 5, 39, 31, 31])
  with pytest.raises(ValueError, match="out of range"):
    DATA.index_to_factors([737_280])


def test_images_are_binary_64x64():
  factors, images = DATA.sample(jax.random.key(0), 16)
  images = np.asarray(images)
  assert images.shape == (16, 64, 64, 1) and images.dtype == np.float32
  assert set(np.unique(images)) <= {0.0, 1.0}
  assert (images.sum(axis=(1, 2, 3)) > 10).all()
  assert factors.shape == (16, 5)


def test_shapes_differ_and_scale_grows_area():
  base = np.array([[s, 5, 0, 16, 16] for s in range(3)])
  images = np.asarray(DATA.images_from_factors(base))
  for a in range(3):
    for b in range(a + 1, 3):
      assert np.abs(images[a] - images[b]).sum() > 20
  for shape in range(3):
    scales = np.array([[shape, s, 0, 16, 16] for s in range(6)])
    areas = np.asarray(DATA.images_from_factors(scales)).sum(axis=(1, 2, 3))
    assert (np.diff(areas) > 0).all(), areas
    # area grows ~ quadratically with scale (1.0 / 0.5 -> ~4x)
    assert 3.0 < areas[-1] / areas[0] < 5.0


def test_position_moves_centroid():
  for shape in range(3):
    xs = np.array([[shape, 3, 0, x, 10] for x in (0, 10, 20, 31)])
    cx = [centroid(im)[0] for im in np.asarray(DATA.images_from_factors(xs))]
    assert (np.diff(cx) > 5).all(), cx
    ys = np.array([[shape, 3, 0, 10, y] for y in (0, 10, 20, 31)])
    cy = [centroid(im)[1] for im in np.asarray(DATA.images_from_factors(ys))]
    assert (np.diff(cy) > 5).all(), cy
    # posX does not move the row centroid
    assert np.ptp([centroid(im)[1] for im in np.asarray(DATA.images_from_factors(xs))]) < 0.5


def test_rotation_is_about_the_centre():
  for shape in range(3):
    factors = np.array([[shape, 5, o, 16, 16] for o in range(40)])
    images = np.asarray(DATA.images_from_factors(factors))
    cents = np.stack([centroid(im) for im in images])
    assert np.abs(cents - cents.mean(axis=0)).max() < 0.75, (shape, cents)
    # orientation 0 and 2*pi (first and last class) are the same image, as in dSprites
    np.testing.assert_array_equal(images[0], images[-1])
  # a quarter turn about a centre on the pixel grid equals rotating the image 90 degrees clockwise
  for shape in range(3):
    upright = np.asarray(render(shape, 1.0, 0.0, 0.5, 0.5))
    quarter = np.asarray(render(shape, 1.0, math.pi / 2, 0.5, 0.5))
    agree = (np.rot90(upright, k=-1) == quarter).mean()
    assert agree > 0.998, (shape, agree)
  heart = np.asarray(render(2, 1.0, 0.0, 0.5, 0.5))
  assert np.abs((np.rot90(heart, 2) != heart).sum()) > 30  # the heart is not symmetric


@pytest.mark.slow
def test_batch_is_pure_function_of_seed_step_and_index():
  a = DATA.batch(0, 5, 0, 8)
  b = DATA.batch(0, 5, 0, 8)
  np.testing.assert_array_equal(a["image"], b["image"])
  halves = [DATA.batch(0, 5, 0, 4), DATA.batch(0, 5, 4, 4)]  # two processes' slices
  np.testing.assert_array_equal(np.concatenate([h["factors"] for h in halves]), a["factors"])
  c = DATA.batch(0, 6, 0, 8)
  assert not np.array_equal(a["factors"], c["factors"])
  d = DATA.batch(1, 5, 0, 8)
  assert not np.array_equal(a["factors"], d["factors"])


def test_sampling_is_uniform_over_the_grid():
  factors = np.asarray(DATA.sample_factors(jax.random.key(3), 60_000))
  for j, size in enumerate(DATA.factor_sizes):
    counts = np.bincount(factors[:, j], minlength=size)
    expected = len(factors) / size
    assert np.abs(counts - expected).max() < 6 * math.sqrt(expected)


def test_bad_factors_are_rejected():
  with pytest.raises(ValueError, match="shape \\(N, 5\\)"):
    DATA.images_from_factors(np.zeros((2, 4), int))
  with pytest.raises(ValueError, match="out of range"):
    DATA.images_from_factors(np.array([[3, 0, 0, 0, 0]]))
  with pytest.raises(TypeError, match="integer"):
    DATA.images_from_factors(np.zeros((1, 5), np.float32))


def test_every_instance_shares_the_batch_program():
  """DSprites has no state: instances are equal, so a new one (each new method builds its own)
  reuses the compiled batch program instead of tracing it again, and gives the same batch."""
  from jaxdisent.data import dsprites  # pylint: disable=g-import-not-at-top
  first, second = DSprites(), DSprites()
  assert first == second and hash(first) == hash(second) and first is not second
  assert first != object() and DSprites() != type("Other", (DSprites,), {})()
  want = first.batch(3, 1, 0, 4)
  programs = dsprites._batch_jit._cache_size()  # pylint: disable=protected-access
  got = second.batch(3, 1, 0, 4)
  assert dsprites._batch_jit._cache_size() == programs  # pylint: disable=protected-access
  for key in want:
    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))


def test_the_written_heart_centroid_is_the_computed_one():
  from jaxdisent.data import dsprites  # pylint: disable=g-import-not-at-top
  assert dsprites._heart_centroid_y() == dsprites.HEART_CENTROID_Y  # pylint: disable=protected-access
